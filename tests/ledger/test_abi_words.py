"""The hand-written static ABI words (leaf input, invoice and customer keys) equal eth_abi's bytes."""

from __future__ import annotations

from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.entries import KINDS_WITH_TERMS, EntryKind, customer_key, invoice_key, leaf_input
from ledger.terms import TERMS_ABI_TYPE, Terms

addresses = st.binary(min_size=20, max_size=20).map(lambda raw: "0x" + raw.hex())
words = st.binary(min_size=32, max_size=32)
uint16, uint32, uint64 = (st.integers(0, 2**bits - 1) for bits in (16, 32, 64))


@st.composite
def terms(draw: st.DrawFn) -> Terms:
    late_fee_bps = draw(uint16)
    return Terms(
        payee=draw(addresses.filter(lambda address: int(address, 16) != 0)),
        token=draw(addresses),
        amount_due=draw(st.integers(0, 2**200 - 1)),
        due_date=draw(uint64),
        discount_bps=draw(st.integers(0, 10_000)),
        discount_deadline=draw(uint64),
        late_fee_bps=late_fee_bps,
        late_fee_period=draw(st.integers(1, 2**32 - 1) if late_fee_bps else uint32),
        late_fee_periods_max=draw(uint16),
        partial_allowed=draw(st.booleans()),
        payer=draw(addresses),
        version=draw(st.integers(1, 2**32 - 2)),
    )


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(list(EntryKind)), sequence=st.integers(0, 2**64 - 2), subject=words, document_hash=words,
       data=st.data())  # fmt: skip
def test_leaf_input_equals_abi_encode(
    kind: EntryKind, sequence: int, subject: bytes, document_hash: bytes, data: st.DataObject
) -> None:
    head_types = ["uint8", "uint16", "uint64", "bytes32", "bytes32"]
    head_values = [1, int(kind), sequence, subject, document_hash]
    if kind in KINDS_WITH_TERMS:
        drawn = data.draw(terms())
        expected = encode([*head_types, TERMS_ABI_TYPE], [*head_values, drawn.abi_tuple()])
        assert leaf_input(kind, sequence, subject, document_hash, drawn) == expected
    else:
        assert leaf_input(kind, sequence, subject, document_hash, None) == encode(head_types, head_values)


@settings(max_examples=300, deadline=None)
@given(ledger_id=words, identifier=st.text(min_size=1, max_size=80), salt=words)
def test_keys_equal_keccak_of_abi_encode(ledger_id: bytes, identifier: str, salt: bytes) -> None:
    assert invoice_key(ledger_id, identifier, salt) == keccak(
        encode(["bytes32", "string", "bytes32"], [ledger_id, identifier, salt])
    )
    assert customer_key(ledger_id, identifier) == keccak(encode(["bytes32", "string"], [ledger_id, identifier]))
