"""LedgerAnchor accepts only append-only heads, keeps every root, and obeys its roles and pause."""

from __future__ import annotations

import secrets

from contract_kit import CANCELLED, ZERO_ADDRESS, Book, deploy, expect_revert, send
from web3 import Web3
from web3.logs import DISCARD

ANCHORER_ROLE = Web3.keccak(text="ANCHORER_ROLE")
PAUSER_ROLE = Web3.keccak(text="PAUSER_ROLE")
ZERO_ROOT = b"\x00" * 32


def _book(entries: int) -> Book:
    book = Book()
    book.add_filler(entries)
    return book


def test_first_head_needs_no_proof_and_later_heads_need_a_consistency_proof(fresh) -> None:
    anchor, w3 = fresh.anchor, fresh.w3
    assert anchor.functions.latest().call() == [0, ZERO_ROOT]
    book = _book(5)
    receipt = book.anchor(w3, anchor, fresh.anchorer)
    (event,) = anchor.events.HeadAnchored().process_receipt(receipt, errors=DISCARD)
    assert (event.args.treeSize, event.args.root, event.args.previousSize) == (5, book.log.root(), 0)

    book.add_filler(8)
    receipt = book.anchor(w3, anchor, fresh.anchorer)
    (event,) = anchor.events.HeadAnchored().process_receipt(receipt, errors=DISCARD)
    assert (event.args.treeSize, event.args.previousSize) == (13, 5)
    assert anchor.functions.latest().call() == [13, book.log.root()]
    # Every anchored size keeps its root; sizes never anchored read as zero.
    assert anchor.functions.rootAt(5).call() == book.log.root(5)
    assert anchor.functions.rootAt(13).call() == book.log.root(13)
    assert anchor.functions.rootAt(7).call() == ZERO_ROOT


def test_refuses_zero_root_and_sizes_that_do_not_grow(fresh) -> None:
    anchor, tx = fresh.anchor, {"from": fresh.anchorer}
    book = _book(4)
    expect_revert(anchor.functions.anchor(4, ZERO_ROOT, [], []), tx, "LedgerAnchorZeroRoot")
    expect_revert(anchor.functions.anchor(0, book.log.root(), [], []), tx, "LedgerAnchorSizeNotIncreasing", 0, 0)
    book.anchor(fresh.w3, anchor, fresh.anchorer)
    proof = book.log.consistency_proof(2, 4)
    expect_revert(anchor.functions.anchor(4, book.log.root(), [], []), tx, "LedgerAnchorSizeNotIncreasing", 4, 4)
    expect_revert(anchor.functions.anchor(2, book.log.root(2), proof, []), tx, "LedgerAnchorSizeNotIncreasing", 2, 4)


def test_first_head_with_a_proof_is_refused(fresh) -> None:
    book = _book(3)
    expect_revert(
        fresh.anchor.functions.anchor(3, book.log.root(), [secrets.token_bytes(32)], []),
        {"from": fresh.anchorer},
        "LedgerAnchorUnexpectedProof",
        1,
    )


def test_a_rewritten_history_is_refused_even_with_a_well_formed_proof(fresh) -> None:
    anchor, tx = fresh.anchor, {"from": fresh.anchorer}
    honest = _book(6)
    honest.anchor(fresh.w3, anchor, fresh.anchorer)
    # A different log of the same first 6 sizes: its proof is well formed but for other roots.
    forged = _book(10)
    proof = forged.log.consistency_proof(6, 10)
    expect_revert(anchor.functions.anchor(10, forged.log.root(), proof, []), tx, "LedgerAnchorInconsistentHead", 6, 10)
    honest.add_filler(4)
    # The honest new root with a proof missing its last node, or with a node changed.
    good = honest.log.consistency_proof(6, 10)
    expect_revert(anchor.functions.anchor(10, honest.log.root(), good[:-1], []), tx, "LedgerAnchorInconsistentHead")
    tampered = [good[0], secrets.token_bytes(32), *good[2:]] if len(good) > 1 else [secrets.token_bytes(32)]
    expect_revert(anchor.functions.anchor(10, honest.log.root(), tampered, []), tx, "LedgerAnchorInconsistentHead")
    expect_revert(anchor.functions.anchor(10, honest.log.root(), [], []), tx, "LedgerAnchorInconsistentHead")
    expect_revert(
        anchor.functions.anchor(10, honest.log.root(), [secrets.token_bytes(32)] * 66, []),
        tx,
        "MerkleLogProofTooLong",
        66,
        65,
    )
    honest.anchor(fresh.w3, anchor, fresh.anchorer)
    assert anchor.functions.latest().call() == [10, honest.log.root()]


def test_only_the_anchorer_anchors_and_the_admin_rotates_it(fresh) -> None:
    anchor, w3 = fresh.anchor, fresh.w3
    book = _book(2)
    call = anchor.functions.anchor(2, book.log.root(), [], [])
    for outsider in (fresh.admin, fresh.other):
        expect_revert(call, {"from": outsider}, "AccessControlUnauthorizedAccount", outsider, ANCHORER_ROLE)
    # Only the admin grants roles.
    expect_revert(
        anchor.functions.grantRole(ANCHORER_ROLE, fresh.other),
        {"from": fresh.anchorer},
        "AccessControlUnauthorizedAccount",
        fresh.anchorer,
        b"\x00" * 32,
    )
    send(w3, anchor.functions.revokeRole(ANCHORER_ROLE, fresh.anchorer), fresh.admin)
    send(w3, anchor.functions.grantRole(ANCHORER_ROLE, fresh.other), fresh.admin)
    expect_revert(call, {"from": fresh.anchorer}, "AccessControlUnauthorizedAccount")
    book.anchor(w3, anchor, fresh.other)
    assert anchor.functions.rootAt(2).call() == book.log.root()


def test_pause_stops_anchoring_only_for_the_pauser_and_keeps_roots_readable(fresh) -> None:
    anchor, w3 = fresh.anchor, fresh.w3
    book = _book(3)
    book.anchor(w3, anchor, fresh.anchorer)
    expect_revert(
        anchor.functions.pause(),
        {"from": fresh.anchorer},
        "AccessControlUnauthorizedAccount",
        fresh.anchorer,
        PAUSER_ROLE,
    )
    send(w3, anchor.functions.pause(), fresh.admin)
    assert anchor.functions.paused().call() is True
    book.add_filler(2)
    proof = book.log.consistency_proof(3, 5)
    call = anchor.functions.anchor(5, book.log.root(), proof, [])
    expect_revert(call, {"from": fresh.anchorer}, "EnforcedPause")
    assert anchor.functions.rootAt(3).call() == book.log.root(3)
    expect_revert(anchor.functions.pause(), {"from": fresh.admin}, "EnforcedPause")
    expect_revert(anchor.functions.unpause(), {"from": fresh.other}, "AccessControlUnauthorizedAccount")
    send(w3, anchor.functions.unpause(), fresh.admin)
    expect_revert(anchor.functions.unpause(), {"from": fresh.admin}, "ExpectedPause")
    book.anchor(w3, anchor, fresh.anchorer)
    assert anchor.functions.latest().call()[0] == 5


def test_terms_versions_only_go_up_and_cancelled_stays_cancelled(fresh) -> None:
    anchor, w3, tx = fresh.anchor, fresh.w3, {"from": fresh.anchorer}
    key, other_key = secrets.token_bytes(32), secrets.token_bytes(32)
    book = _book(2)
    receipt = book.anchor(w3, anchor, fresh.anchorer, [(key, 2), (other_key, 1)])
    events = anchor.events.TermsVersionSet().process_receipt(receipt, errors=DISCARD)
    assert [(e.args.invoiceKey, e.args.version) for e in events] == [(key, 2), (other_key, 1)]
    assert anchor.functions.termsVersion(key).call() == 2
    assert anchor.functions.rootAndTermsVersion(2, key).call() == [book.log.root(), 2]

    def anchor_with(updates):
        book.add_filler(1)
        proof = book.log.consistency_proof(book.anchored_size, book.log.size)
        return anchor.functions.anchor(book.log.size, book.log.root(), proof, updates)

    expect_revert(anchor_with([(key, 1)]), tx, "LedgerAnchorTermsVersionDecreased", key, 2, 1)
    expect_revert(anchor_with([(key, 0)]), tx, "LedgerAnchorZeroTermsVersion", key)
    expect_revert(anchor_with([(key, 3)] * 257), tx, "LedgerAnchorTooManyUpdates", 257, 256)
    book.log = _rebuild(book, book.anchored_size)
    book.add_filler(1)
    book.anchor(w3, anchor, fresh.anchorer, [(key, 2), (key, CANCELLED)])  # equal is a no-op
    assert anchor.functions.termsVersion(key).call() == CANCELLED
    book.add_filler(1)
    proof = book.log.consistency_proof(book.anchored_size, book.log.size)
    expect_revert(
        anchor.functions.anchor(book.log.size, book.log.root(), proof, [(key, 3)]),
        tx,
        "LedgerAnchorTermsVersionDecreased",
        key,
        CANCELLED,
        3,
    )


def _rebuild(book: Book, size: int):
    """The book's log cut back to `size` leaves (the refused anchors added filler beyond it)."""
    from ledger.merkle import MerkleLog

    log = MerkleLog()
    for index in range(size):
        log.append_leaf_hash(book.log.store.get_nodes([(0, index)])[0])
    return log


def test_verify_inclusion_answers_false_for_unanchored_sizes_and_bad_proofs(fresh) -> None:
    anchor = fresh.anchor
    book = _book(9)
    book.anchor(fresh.w3, anchor, fresh.anchorer)
    leaf = book.log.store.get_nodes([(0, 4)])[0]
    proof = book.log.inclusion_proof(4, 9)
    assert anchor.functions.verifyInclusion(9, 4, leaf, proof).call() is True
    assert anchor.functions.verifyInclusion(8, 4, leaf, book.log.inclusion_proof(4, 8)).call() is False
    assert anchor.functions.verifyInclusion(9, 5, leaf, proof).call() is False
    assert anchor.functions.verifyInclusion(9, 9, leaf, proof).call() is False
    assert anchor.functions.verifyInclusion(9, 4, leaf, proof[:-1]).call() is False
    assert anchor.functions.verifyInclusion(9, 4, leaf, [*proof, leaf]).call() is False
    expect_revert(
        anchor.functions.verifyInclusion(9, 4, leaf, [leaf] * 65),
        {"from": fresh.other},
        "MerkleLogProofTooLong",
        65,
        64,
    )


def test_constructor_refuses_zero_addresses(fresh) -> None:
    from contract_kit import artifact

    data = artifact("LedgerAnchor")
    factory = fresh.w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
    expect_revert(factory.constructor(ZERO_ADDRESS, fresh.anchorer), {"from": fresh.admin}, "LedgerAnchorZeroAddress")
    expect_revert(factory.constructor(fresh.admin, ZERO_ADDRESS), {"from": fresh.admin}, "LedgerAnchorZeroAddress")
    fresh_anchor = deploy(fresh.w3, "LedgerAnchor", fresh.admin, fresh.anchorer, sender=fresh.admin)
    assert fresh_anchor.functions.hasRole(PAUSER_ROLE, fresh.admin).call() is True
    assert fresh_anchor.functions.hasRole(ANCHORER_ROLE, fresh.anchorer).call() is True
