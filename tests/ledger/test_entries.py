"""Leaf inputs follow the formats.md ABI layout, parse back strictly; documents are checked."""

from __future__ import annotations

import copy

import pytest
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_samples import (
    LEDGER_ID,
    SALT,
    invoice_issued_document,
    payment_booked_document,
    sample_terms,
)

from ledger.canonical import canonical_json, document_hash
from ledger.entries import (
    DOCUMENT_HASH_OFFSET,
    DOCUMENT_TYPES,
    KINDS_WITH_TERMS,
    Entry,
    EntryKind,
    build_document,
    customer_key,
    invoice_key,
    leaf_input,
    parse_leaf_input,
)
from ledger.errors import (
    FloatNotAllowed,
    InvalidDocument,
    InvalidEntry,
    InvalidLeafInput,
    UnknownCurrency,
)
from ledger.merkle import leaf_hash
from ledger.terms import TERMS_ABI_TYPE, Terms


def test_kind_codes_are_the_formats_table() -> None:
    assert {kind.document_kind: int(kind) for kind in EntryKind} == {
        "invoice_issued": 1,
        "credit_note": 2,
        "debit_note": 3,
        "invoice_voided": 4,
        "payment_booked": 5,
        "payment_reversed": 6,
        "write_off": 7,
        "dunning_notice": 8,
        "credit_limit_changed": 9,
        "terms_updated": 10,
        "customer_created": 11,
    }
    assert {int(kind) for kind in KINDS_WITH_TERMS} == {1, 2, 3, 10}
    assert set(DOCUMENT_TYPES) == set(EntryKind)


def test_leaf_input_without_terms_is_five_words() -> None:
    subject, hash_ = b"\x07" * 32, b"\x09" * 32
    data = leaf_input(EntryKind.PAYMENT_BOOKED, 42, subject, hash_, None)
    assert data == ((1).to_bytes(32, "big") + (5).to_bytes(32, "big") + (42).to_bytes(32, "big") + subject + hash_)
    assert data[DOCUMENT_HASH_OFFSET : DOCUMENT_HASH_OFFSET + 32] == hash_


def test_leaf_input_with_terms_matches_solidity_abi_encode() -> None:
    terms = sample_terms()
    subject, hash_ = b"\x07" * 32, b"\x09" * 32
    data = leaf_input(EntryKind.INVOICE_ISSUED, 0, subject, hash_, terms)
    expected = encode(
        ["uint8", "uint16", "uint64", "bytes32", "bytes32", TERMS_ABI_TYPE],
        [1, 1, 0, subject, hash_, terms.abi_tuple()],
    )
    assert data == expected and len(data) == 544
    assert data[160:192] == bytes(12) + bytes.fromhex(terms.payee[2:])


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(
    st.sampled_from(list(EntryKind)),
    st.integers(0, 2**64 - 2),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
)
def test_parse_round_trip(kind: EntryKind, sequence: int, subject: bytes, hash_: bytes) -> None:
    terms = sample_terms() if kind in KINDS_WITH_TERMS else None
    data = leaf_input(kind, sequence, subject, hash_, terms)
    fields = parse_leaf_input(data)
    assert (fields.kind, fields.sequence, fields.subject, fields.document_hash, fields.terms) == (
        kind,
        sequence,
        subject,
        hash_,
        terms,
    )


def test_parse_refuses_bad_leaf_inputs() -> None:
    good = leaf_input(EntryKind.PAYMENT_BOOKED, 1, b"\x01" * 32, b"\x02" * 32, None)
    bad_version = bytearray(good)
    bad_version[31] = 2
    bad_kind = bytearray(good)
    bad_kind[63] = 99
    dirty_padding = bytearray(good)
    dirty_padding[32] = 1
    with_terms = leaf_input(EntryKind.CREDIT_NOTE, 1, b"\x01" * 32, b"\x02" * 32, sample_terms())
    terms_on_wrong_kind = bytearray(with_terms)
    terms_on_wrong_kind[63] = 5
    for data in [
        bad_version,
        bad_kind,
        dirty_padding,
        terms_on_wrong_kind,
        good[:-1],
        good + b"\x00",
    ]:
        with pytest.raises(InvalidLeafInput):
            parse_leaf_input(bytes(data))


def test_leaf_input_refuses_mismatched_terms() -> None:
    with pytest.raises(InvalidEntry):
        leaf_input(EntryKind.INVOICE_ISSUED, 0, b"\x00" * 32, b"\x00" * 32, None)
    with pytest.raises(InvalidEntry):
        leaf_input(EntryKind.PAYMENT_BOOKED, 0, b"\x00" * 32, b"\x00" * 32, sample_terms())
    with pytest.raises(InvalidEntry):
        leaf_input(EntryKind.PAYMENT_BOOKED, 0, b"\x00" * 31, b"\x00" * 32, None)


def test_invoice_key_is_keccak_of_abi_encode() -> None:
    expected = keccak(encode(["bytes32", "string", "bytes32"], [LEDGER_ID, "inv_0001", SALT]))
    assert invoice_key(LEDGER_ID, "inv_0001", SALT) == expected
    assert invoice_key(LEDGER_ID, "inv_0001", b"\x00" * 32) != expected
    assert customer_key(LEDGER_ID, "cus_1") == keccak(encode(["bytes32", "string"], [LEDGER_ID, "cus_1"]))


def test_entry_derives_everything_from_sequence_and_document() -> None:
    document = invoice_issued_document()
    entry = Entry(7, document)
    assert entry.kind is EntryKind.INVOICE_ISSUED
    assert entry.subject == invoice_key(LEDGER_ID, "inv_0001", SALT)
    assert entry.terms == sample_terms()
    assert entry.document_hash == document_hash(document)
    assert entry.canonical_document == canonical_json(document)
    fields = parse_leaf_input(entry.leaf_input())
    assert (fields.sequence, fields.document_hash, fields.terms) == (
        7,
        entry.document_hash,
        entry.terms,
    )
    assert entry.leaf_hash() == leaf_hash(entry.leaf_input())
    payment = Entry(8, payment_booked_document())
    assert payment.terms is None and len(payment.leaf_input()) == 160


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda d: d.pop("currency"), InvalidDocument),
        (lambda d: d.update(extra=1), InvalidDocument),
        (lambda d: d.update(currency="USD"), InvalidDocument),
        (lambda d: d.update(currency="zzz"), UnknownCurrency),
        (lambda d: d.update(total_minor=11_001), InvalidDocument),
        (lambda d: d.update(total_minor=110.0), FloatNotAllowed),
        (lambda d: d.update(total_minor=True), InvalidDocument),
        (lambda d: d.update(format=2), InvalidDocument),
        (lambda d: d.update(format=True), InvalidDocument),
        (lambda d: d.update(kind="invoice_paid"), InvalidDocument),
        (lambda d: d.update(salt="0x" + "5A" * 32), InvalidDocument),
        (lambda d: d.update(invoice_id=""), InvalidDocument),
        (lambda d: d["lines"][0].update(quantity=0), InvalidDocument),
        (lambda d: d["terms"].update(amount_due=5), InvalidDocument),
        (lambda d: d["terms"].update(discount_bps=10_001), InvalidDocument),
        (lambda d: d.pop("terms"), InvalidDocument),
    ],
)
def test_documents_are_validated(mutate, error) -> None:  # type: ignore[no-untyped-def]
    document = copy.deepcopy(invoice_issued_document())
    mutate(document)
    with pytest.raises(error):
        Entry(0, document)


def test_payment_chain_reference_consistency() -> None:
    with pytest.raises(InvalidDocument):
        payment_booked_document(source="onchain")
    chain = {
        "chain_id": 31337,
        "tx_hash": "0x" + "ab" * 32,
        "log_index": 3,
        "token": "0x" + "22" * 20,
        "amount_token": "50000000",
    }
    assert payment_booked_document(source="onchain", chain=chain)["chain"] == chain
    with pytest.raises(InvalidDocument):
        payment_booked_document(chain=chain)


def test_every_kind_builds() -> None:
    invoice = {"invoice_id": "inv_1", "salt": SALT}
    cases = {
        EntryKind.CREDIT_NOTE: {
            **invoice,
            "credit_note_id": "cn_1",
            "currency": "eur",
            "amount_minor": 500,
            "applied_minor": 400,
            "to_customer_credit_minor": 100,
            "reason": "damaged",
            "terms": sample_terms(version=2),
        },
        EntryKind.DEBIT_NOTE: {
            **invoice,
            "debit_note_id": "dn_1",
            "currency": "eur",
            "amount_minor": 500,
            "reason": "shipping",
            "terms": sample_terms(version=3),
        },
        EntryKind.INVOICE_VOIDED: {**invoice, "reason": "duplicate"},
        EntryKind.PAYMENT_REVERSED: {
            **invoice,
            "payment_id": "pay_1",
            "reversal_id": "rev_1",
            "currency": "eur",
            "amount_minor": 5,
            "reason": "chargeback",
        },
        EntryKind.WRITE_OFF: {
            **invoice,
            "currency": "eur",
            "amount_minor": 5,
            "reason": "bankrupt",
        },
        EntryKind.DUNNING_NOTICE: {
            **invoice,
            "notice_id": "dun_1",
            "level": 1,
            "currency": "eur",
            "amount_due_minor": 5,
            "message": "please pay",
        },
        EntryKind.CREDIT_LIMIT_CHANGED: {
            "customer_id": "cus_1",
            "currency": "eur",
            "limit_minor": 10,
            "previous_limit_minor": 0,
            "reason": "",
        },
        EntryKind.TERMS_UPDATED: {
            **invoice,
            "reason": "extension",
            "terms": sample_terms(version=2),
        },
        EntryKind.CUSTOMER_CREATED: {"customer_id": "cus_1", "currency": "eur"},
    }
    for kind, fields in cases.items():
        document = build_document(kind, ledger_id=LEDGER_ID, created=1, **fields)
        entry = Entry(1, document)
        assert entry.kind is kind
        assert (entry.terms is not None) == (kind in KINDS_WITH_TERMS)
        if kind in (EntryKind.CREDIT_LIMIT_CHANGED, EntryKind.CUSTOMER_CREATED):
            assert entry.subject == customer_key(LEDGER_ID, "cus_1")
        else:
            assert entry.subject == invoice_key(LEDGER_ID, "inv_1", SALT)
    with pytest.raises(InvalidDocument):
        build_document(
            EntryKind.CREDIT_NOTE,
            ledger_id=LEDGER_ID,
            created=1,
            **{**cases[EntryKind.CREDIT_NOTE], "applied_minor": 1},
        )


def test_terms_survive_the_document() -> None:
    document = invoice_issued_document(terms=sample_terms(amount_due=2**199))
    assert Terms.from_document(document["terms"]).amount_due == 2**199
