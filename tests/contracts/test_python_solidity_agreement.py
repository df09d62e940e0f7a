"""ledger/ (Python) and the contracts agree: Merkle proofs, consistency, and the terms math."""

from __future__ import annotations

import secrets

from contract_kit import Book, decode_revert, send, snapshot, terms_tuple
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from web3.exceptions import ContractCustomError

from ledger.errors import InvalidProof, InvalidTreeRange
from ledger.merkle import (
    _consistency_roots,
    consistency_ranges,
    inclusion_ranges,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from ledger.terms import Terms, amount_due_at, remaining_at

UINT64_MAX = 2**64 - 1
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
hashes = st.binary(min_size=32, max_size=32)


def _tampered_proofs(proof: list[bytes]) -> list[list[bytes]]:
    variants = [proof[:-1], [*proof, secrets.token_bytes(32)]] if proof else [[secrets.token_bytes(32)]]
    for position in range(min(len(proof), 3)):
        changed = list(proof)
        changed[position] = bytes([changed[position][0] ^ 1]) + changed[position][1:]
        variants.append(changed)
    if len(proof) > 1:
        variants.append(list(reversed(proof)))
    return variants


@SETTINGS
@given(size=st.integers(1, 3000), data=st.data())
def test_ledger_inclusion_proofs_verify_through_ledger_anchor_and_tampered_ones_fail(deployment, size, data):
    d = deployment
    book = Book()
    book.add_filler(size, raw=True)
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf = book.log.store.get_nodes([(0, index)])[0]
    root = book.log.root()
    proof = book.log.inclusion_proof(index, size)
    with snapshot(d.w3):
        book.anchor(d.w3, d.anchor, d.anchorer)
        verify = d.anchor.functions.verifyInclusion
        assert verify(size, index, leaf, proof).call() is True
        assert verify_inclusion(leaf, index, size, proof, root) is True
        for bad in _tampered_proofs(proof):
            assert verify(size, index, leaf, bad).call() is verify_inclusion(leaf, index, size, bad, root) is False
        other_index = data.draw(st.integers(0, size), label="other_index")
        # Another index (or one past the end) with this proof: both sides decide the same.
        expected = verify_inclusion(leaf, other_index, size, proof, root)
        assert verify(size, other_index, leaf, proof).call() is expected
        assert verify(size, index, secrets.token_bytes(32), proof).call() is False


@SETTINGS
@given(
    size=st.one_of(st.integers(1, 2**20), st.integers(1, UINT64_MAX)),
    data=st.data(),
    leaf=hashes,
)
def test_inclusion_roots_agree_for_any_uint64_tree_size(deployment, size, data, leaf):
    """For sizes too large to build, random proof nodes of the right count: same root both sides."""
    index = data.draw(st.integers(0, size - 1), label="index")
    length = len(inclusion_ranges(index, size))
    length += data.draw(st.sampled_from([0, 0, 0, -1, 1]), label="length_change")
    assume(0 <= length <= 64)
    proof = data.draw(st.lists(hashes, min_size=length, max_size=length), label="proof")
    well_formed, root = deployment.harness.functions.rootFromInclusionProof(index, size, leaf, proof).call()
    try:
        expected = root_from_inclusion_proof(leaf, index, size, proof)
    except (InvalidProof, InvalidTreeRange):
        assert well_formed is False
    else:
        assert (well_formed, root) == (True, expected)


@SETTINGS
@given(new_size=st.integers(2, 2000), data=st.data())
def test_ledger_consistency_proofs_are_accepted_and_refused_identically_by_anchor(deployment, new_size, data):
    d = deployment
    old_size = data.draw(st.integers(1, new_size - 1), label="old_size")
    book = Book()
    book.add_filler(new_size, raw=True)
    old_root, new_root = book.log.root(old_size), book.log.root()
    proof = book.log.consistency_proof(old_size, new_size)
    with snapshot(d.w3):
        send(d.w3, d.anchor.functions.anchor(old_size, old_root, [], []), d.anchorer)
        anchor_call = d.anchor.functions.anchor

        def accepted(root: bytes, candidate: list[bytes]) -> bool:
            try:
                anchor_call(new_size, root, candidate, []).call({"from": d.anchorer})
            except ContractCustomError as error:
                found = decode_revert(error.data)
                assert found.name == "LedgerAnchorInconsistentHead", found
                return False
            return True

        assert accepted(new_root, proof) is verify_consistency(old_size, new_size, old_root, new_root, proof) is True
        for bad in _tampered_proofs(proof):
            assert accepted(new_root, bad) is verify_consistency(old_size, new_size, old_root, new_root, bad)
        wrong_root = secrets.token_bytes(32)
        assert accepted(wrong_root, proof) is verify_consistency(old_size, new_size, old_root, wrong_root, proof)


@SETTINGS
@given(new_size=st.integers(2, UINT64_MAX), data=st.data())
def test_consistency_agrees_for_any_uint64_sizes(deployment, new_size, data):
    """Random proof nodes of the right count make a valid instance (the roots they imply);
    both sides accept it, and both refuse it once a node, a root or the length changes."""
    old_size = data.draw(st.one_of(st.integers(1, new_size - 1), st.just(new_size - 1)), label="old_size")
    length = len(consistency_ranges(old_size, new_size))
    proof = data.draw(st.lists(hashes, min_size=length, max_size=length), label="proof")
    seed_root = data.draw(hashes, label="old_root_if_power_of_two")
    old_root, new_root = _consistency_roots(old_size, new_size, seed_root, proof)
    verify = deployment.harness.functions.verifyConsistency
    assert verify(old_size, new_size, old_root, new_root, proof).call() is True
    assert verify_consistency(old_size, new_size, old_root, new_root, proof) is True
    for bad in _tampered_proofs(proof):
        if len(bad) > 65:
            continue
        expected = verify_consistency(old_size, new_size, old_root, new_root, bad)
        assert verify(old_size, new_size, old_root, new_root, bad).call() is expected
    flipped = bytes([new_root[0] ^ 0x80]) + new_root[1:]
    assert verify(old_size, new_size, old_root, flipped, proof).call() is False
    assert verify_consistency(old_size, new_size, old_root, flipped, proof) is False


ADDRESS = "0x" + "ab" * 20


@st.composite
def terms_and_time(draw):
    due_date = draw(st.integers(0, 2**40))
    late_fee_bps = draw(st.one_of(st.just(0), st.integers(1, 2**16 - 1)))
    terms = Terms(
        payee=ADDRESS,
        token="0x" + "00" * 20,
        amount_due=draw(st.one_of(st.integers(0, 10**12), st.integers(0, 2**200 - 1))),
        due_date=due_date,
        discount_bps=draw(st.one_of(st.just(0), st.integers(1, 10_000))),
        discount_deadline=draw(st.integers(max(0, due_date - 2**25), due_date + 2**10)),
        late_fee_bps=late_fee_bps,
        late_fee_period=draw(st.integers(1, 2**32 - 1)) if late_fee_bps else draw(st.integers(0, 2**32 - 1)),
        late_fee_periods_max=draw(st.integers(0, 2**16 - 1)),
        partial_allowed=draw(st.booleans()),
        payer="0x" + "00" * 20,
        version=draw(st.integers(1, 2**32 - 2)),
    )
    t = draw(
        st.one_of(
            st.integers(max(0, due_date - 2**26), due_date + 2**26),
            st.sampled_from([due_date, due_date + 1, terms.discount_deadline, terms.discount_deadline + 1]),
            st.integers(0, UINT64_MAX),
        )
    )
    return terms, t


@settings(max_examples=50, deadline=None)
@given(case=terms_and_time(), paid=st.one_of(st.integers(0, 10**13), st.integers(0, 2**256 - 1)))
def test_terms_math_agrees_on_random_amounts_dates_and_rates(deployment, case, paid):
    terms, t = case
    harness = deployment.harness.functions
    assert harness.amountDueAt(terms_tuple(terms), t).call() == amount_due_at(terms, t)
    assert harness.remainingAt(terms_tuple(terms), t, paid).call() == remaining_at(terms, t, paid)
