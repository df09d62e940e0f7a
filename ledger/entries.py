"""Ledger entries: kinds, documents, the leaf input and the invoice key (formats.md).

An entry is `(sequence, document)`. Everything else is derived from those two, so it cannot
disagree with them: the kind is the document's `kind`, the subject is the invoice key (or
customer key) recomputed from the document, the terms are the document's `terms`, and the leaf
input is the ABI encoding of `(leafVersion, kind, sequence, subject, documentHash[, terms])`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from ledger import limits
from ledger.canonical import canonical_json
from ledger.documents import (
    CreditLimitChangedDocument,
    CreditNoteDocument,
    CustomerCreatedDocument,
    DebitNoteDocument,
    DunningNoticeDocument,
    InvoiceIssuedDocument,
    InvoiceVoidedDocument,
    PaymentBookedDocument,
    PaymentReversedDocument,
    TermsUpdatedDocument,
    WriteOffDocument,
    validate,
)
from ledger.errors import InvalidDocument, InvalidEntry, InvalidLeafInput, LedgerError
from ledger.hexutil import from_hex, require_bytes32, to_hex
from ledger.terms import TERMS_ABI_TYPE, Terms, require_uint


class EntryKind(IntEnum):
    """Entry kind codes (formats.md "Entry kinds"). Codes are never reused."""

    INVOICE_ISSUED = 1
    CREDIT_NOTE = 2
    DEBIT_NOTE = 3
    INVOICE_VOIDED = 4
    PAYMENT_BOOKED = 5
    PAYMENT_REVERSED = 6
    WRITE_OFF = 7
    DUNNING_NOTICE = 8
    CREDIT_LIMIT_CHANGED = 9
    TERMS_UPDATED = 10
    CUSTOMER_CREATED = 11

    @property
    def document_kind(self) -> str:
        """The `kind` string in documents: the lowercase member name."""
        return self.name.lower()

    @classmethod
    def from_document_kind(cls, name: object) -> EntryKind:
        if not isinstance(name, str) or name.upper() not in cls.__members__ or name != name.lower():
            raise InvalidDocument(f"unknown entry kind {name!r:.40}", param="kind")
        return cls[name.upper()]


KINDS_WITH_TERMS = frozenset(
    {EntryKind.INVOICE_ISSUED, EntryKind.CREDIT_NOTE, EntryKind.DEBIT_NOTE, EntryKind.TERMS_UPDATED}
)
# Kinds whose subject is the invoice key (formats.md: kinds 1-8 and 10).
INVOICE_KINDS = frozenset(EntryKind) - {EntryKind.CREDIT_LIMIT_CHANGED, EntryKind.CUSTOMER_CREATED}
# Kinds whose subject is the customer key.
CUSTOMER_KINDS = frozenset({EntryKind.CREDIT_LIMIT_CHANGED, EntryKind.CUSTOMER_CREATED})

DOCUMENT_TYPES: dict[EntryKind, type] = {
    EntryKind.INVOICE_ISSUED: InvoiceIssuedDocument,
    EntryKind.CREDIT_NOTE: CreditNoteDocument,
    EntryKind.DEBIT_NOTE: DebitNoteDocument,
    EntryKind.INVOICE_VOIDED: InvoiceVoidedDocument,
    EntryKind.PAYMENT_BOOKED: PaymentBookedDocument,
    EntryKind.PAYMENT_REVERSED: PaymentReversedDocument,
    EntryKind.WRITE_OFF: WriteOffDocument,
    EntryKind.DUNNING_NOTICE: DunningNoticeDocument,
    EntryKind.CREDIT_LIMIT_CHANGED: CreditLimitChangedDocument,
    EntryKind.TERMS_UPDATED: TermsUpdatedDocument,
    EntryKind.CUSTOMER_CREATED: CustomerCreatedDocument,
}

DOCUMENT_FORMAT = 1
LEAF_VERSION = 1
LEAF_HEAD_ABI_TYPES = ("uint8", "uint16", "uint64", "bytes32", "bytes32")
LEAF_INPUT_BYTES = 5 * 32
LEAF_INPUT_WITH_TERMS_BYTES = 17 * 32
# documentHash is word 4 of the leaf input (0-based): bytes [128, 160).
DOCUMENT_HASH_OFFSET = 4 * 32
SEQUENCE_MAX = limits.tree_size_max - 1


def carries_terms(kind: EntryKind) -> bool:
    return kind in KINDS_WITH_TERMS


def invoice_key(ledger_id: bytes, invoice_id: str, salt: bytes) -> bytes:
    """`keccak256(abi.encode(bytes32 ledgerId, string invoiceId, bytes32 salt))`."""
    require_bytes32(ledger_id, "ledger_id", error=InvalidEntry)
    require_bytes32(salt, "salt", error=InvalidEntry)
    if not isinstance(invoice_id, str) or not invoice_id:
        raise InvalidEntry("invoice_id must be a non-empty string", param="invoice_id")
    # abi.encode(bytes32, string, bytes32): head words ledgerId, offset of the string (3 words), salt;
    # then the string's length and its bytes padded to whole words.
    return keccak(ledger_id + _word(3 * 32) + salt + _string_tail(invoice_id))


def customer_key(ledger_id: bytes, customer_id: str) -> bytes:
    """`keccak256(abi.encode(bytes32 ledgerId, string customerId))`: subject of customer kinds."""
    require_bytes32(ledger_id, "ledger_id", error=InvalidEntry)
    if not isinstance(customer_id, str) or not customer_id:
        raise InvalidEntry("customer_id must be a non-empty string", param="customer_id")
    # abi.encode(bytes32, string): ledgerId, offset of the string (2 words), then the string's tail.
    return keccak(ledger_id + _word(2 * 32) + _string_tail(customer_id))


def _word(value: int) -> bytes:
    """One ABI word: an unsigned integer (already range-checked), big-endian, 32 bytes."""
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    """One ABI word for a validated lowercase 0x address: 20 bytes right-aligned."""
    return bytes(12) + bytes.fromhex(address[2:])


def _string_tail(text: str) -> bytes:
    """The tail of an ABI-encoded string: its byte length, then the UTF-8 bytes zero-padded."""
    data = text.encode()
    return _word(len(data)) + data + bytes(-len(data) % 32)


def _terms_words(terms: Terms) -> bytes:
    """The Terms tuple as 12 static ABI words, in Solidity field order (formats.md)."""
    return b"".join(
        (
            _address_word(terms.payee),
            _address_word(terms.token),
            _word(terms.amount_due),
            _word(terms.due_date),
            _word(terms.discount_bps),
            _word(terms.discount_deadline),
            _word(terms.late_fee_bps),
            _word(terms.late_fee_period),
            _word(terms.late_fee_periods_max),
            _word(int(terms.partial_allowed)),
            _address_word(terms.payer),
            _word(terms.version),
        )
    )


def new_salt() -> bytes:
    """A fresh random 32-byte invoice salt."""
    return secrets.token_bytes(32)


@functools.cache
def _abi_types(with_terms: bool) -> tuple[str, ...]:
    return (*LEAF_HEAD_ABI_TYPES, TERMS_ABI_TYPE) if with_terms else LEAF_HEAD_ABI_TYPES


def leaf_input(kind: EntryKind, sequence: int, subject: bytes, document_hash: bytes, terms: Terms | None) -> bytes:
    """ABI encoding of `(uint8 1, uint16 kind, uint64 sequence, bytes32 subject,
    bytes32 documentHash[, Terms terms])`: 160 bytes, or 544 with terms (formats.md)."""
    kind = EntryKind(kind)
    require_uint(sequence, "sequence", SEQUENCE_MAX)
    require_bytes32(subject, "subject", error=InvalidEntry)
    require_bytes32(document_hash, "document_hash", error=InvalidEntry)
    if carries_terms(kind) != (terms is not None):
        raise InvalidEntry(
            f"{kind.document_kind} {'needs' if carries_terms(kind) else 'takes no'} terms",
            param="terms",
        )
    # Every field is static, so the encoding is the words themselves (tests hold it to eth_abi's).
    head = _word(LEAF_VERSION) + _word(int(kind)) + _word(sequence) + subject + document_hash
    return head if terms is None else head + _terms_words(terms)


@dataclass(frozen=True)
class LeafFields:
    """The decoded fields of a leaf input."""

    leaf_version: int
    kind: EntryKind
    sequence: int
    subject: bytes
    document_hash: bytes
    terms: Terms | None


def parse_leaf_input(data: bytes) -> LeafFields:
    """Decode a leaf input strictly: known version and kind, length matching the kind, and the
    bytes must re-encode identically (no alternative encodings of the same fields)."""
    if not isinstance(data, bytes) or len(data) not in (
        LEAF_INPUT_BYTES,
        LEAF_INPUT_WITH_TERMS_BYTES,
    ):
        raise InvalidLeafInput("leaf input must be 160 or 544 bytes")
    with_terms = len(data) == LEAF_INPUT_WITH_TERMS_BYTES
    try:
        decoded = abi_decode(list(_abi_types(with_terms)), data)
        version, kind_code, sequence, subject, hash_ = decoded[:5]
        if version != LEAF_VERSION:
            raise InvalidLeafInput(f"unsupported leaf version {version}")
        kind = EntryKind(kind_code)
        terms = Terms.from_abi_tuple(tuple(decoded[5])) if with_terms else None
        fields = LeafFields(version, kind, sequence, subject, hash_, terms)
        reencoded = leaf_input(kind, sequence, subject, hash_, terms)
    except (DecodingError, ValueError, LedgerError) as error:
        if isinstance(error, InvalidLeafInput):
            raise
        raise InvalidLeafInput(f"cannot decode leaf input: {error}") from error
    if reencoded != data:
        raise InvalidLeafInput("leaf input is not in canonical ABI encoding")
    return fields


def _cross_field_checks(kind: EntryKind, document: dict[str, Any]) -> None:
    if kind is EntryKind.PAYMENT_BOOKED and (document["source"] == "onchain") != ("chain" in document):
        raise InvalidDocument("payment_booked has `chain` exactly when source is onchain")
    if kind is EntryKind.CREDIT_NOTE and (
        document["applied_minor"] + document["to_customer_credit_minor"] != document["amount_minor"]
    ):
        raise InvalidDocument("credit_note: applied + to_customer_credit must equal amount")
    if kind is EntryKind.INVOICE_ISSUED:
        lines = document["lines"]
        if document["subtotal_minor"] != sum(line["net_minor"] for line in lines) or document["tax_minor"] != sum(
            line["tax_minor"] for line in lines
        ):
            raise InvalidDocument("invoice_issued: totals do not match the lines")
        if document["total_minor"] != document["subtotal_minor"] + document["tax_minor"]:
            raise InvalidDocument("invoice_issued: total != subtotal + tax")


def validate_document(document: object) -> EntryKind:
    """Validate a document against its kind's TypedDict; return the kind."""
    return _validated(document)[0]


def _validated(document: object) -> tuple[EntryKind, bytes]:
    """Validate a document; return its kind and canonical JSON (which enforces the size, depth and
    integer-range limits of the canonical form)."""
    return _checked_kind(document), canonical_json(document)


def _checked_kind(document: object) -> EntryKind:
    if not isinstance(document, dict):
        raise InvalidDocument("a document is a JSON object")
    kind = EntryKind.from_document_kind(document.get("kind"))
    validate(document, DOCUMENT_TYPES[kind])
    _cross_field_checks(kind, document)
    return kind


def build_document(kind: EntryKind, *, ledger_id: bytes, created: int, **fields: Any) -> dict[str, Any]:
    """Assemble and validate a document: envelope + the kind's fields (`Terms` and bytes32
    values are converted to their JSON forms)."""
    require_bytes32(ledger_id, "ledger_id", error=InvalidDocument)
    document: dict[str, Any] = {
        "format": DOCUMENT_FORMAT,
        "kind": EntryKind(kind).document_kind,
        "ledger_id": to_hex(ledger_id),
        "created": created,
    }
    for name, value in fields.items():
        if isinstance(value, Terms):
            value = value.to_document()
        elif isinstance(value, bytes):
            value = to_hex(value)
        document[name] = value
    validate_document(document)
    return document


def document_terms(document: dict[str, Any]) -> Terms | None:
    """The terms a document carries (kinds with terms), else None."""
    kind = EntryKind.from_document_kind(document.get("kind"))
    return Terms.from_document(document["terms"]) if carries_terms(kind) else None


def document_subject(document: dict[str, Any]) -> bytes:
    """The leaf's subject: the invoice key or the customer key, recomputed from the document."""
    kind = EntryKind.from_document_kind(document.get("kind"))
    ledger_id = from_hex(document["ledger_id"], length=32, error=InvalidDocument)
    if kind in INVOICE_KINDS:
        salt = from_hex(document["salt"], length=32, error=InvalidDocument)
        return invoice_key(ledger_id, document["invoice_id"], salt)
    if kind in CUSTOMER_KINDS:
        return customer_key(ledger_id, document["customer_id"])
    return b"\x00" * 32


def leaf_hash_of(data: bytes) -> bytes:
    """RFC 9162 leaf hash `SHA-256(0x00 || leaf_input)` (same as ledger.merkle.leaf_hash)."""
    return hashlib.sha256(b"\x00" + data).digest()


@dataclass(frozen=True)
class Entry:
    """One ledger entry. Built from `(sequence, document)`; every other field is derived from
    them at construction (and the document validated), so they cannot disagree."""

    sequence: int
    document: dict[str, Any]
    kind: EntryKind = field(init=False)
    canonical_document: bytes = field(init=False, repr=False)
    document_hash: bytes = field(init=False, repr=False)
    subject: bytes = field(init=False, repr=False)
    terms: Terms | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        require_uint(self.sequence, "sequence", SEQUENCE_MAX)
        # Own a copy, parsed back from the canonical bytes (a JSON document round-trips exactly,
        # and the C parser copies faster than deepcopy): a caller mutating its dict later must
        # not desync the derived fields. The copy is what is validated and hashed.
        canonical = canonical_json(self.document)
        document = json.loads(canonical)
        object.__setattr__(self, "document", document)
        kind = _checked_kind(document)
        derived = {
            "kind": kind,
            "canonical_document": canonical,
            "document_hash": hashlib.sha256(canonical).digest(),
            "subject": document_subject(self.document),
            "terms": document_terms(self.document),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def leaf_input(self) -> bytes:
        return leaf_input(self.kind, self.sequence, self.subject, self.document_hash, self.terms)

    def leaf_hash(self) -> bytes:
        return leaf_hash_of(self.leaf_input())
