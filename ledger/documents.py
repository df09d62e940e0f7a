"""Entry documents: one TypedDict per entry kind, validated at run time from the same type hints.

A document is a JSON object; its RFC 8785 canonical bytes are hashed into the leaf (formats.md).
The TypedDicts below are the single source of truth for each kind's fields: mypy checks code that
builds them, and `validate_document` walks the same hints at run time (exact key sets, types,
ranges), so a document is refused before it is hashed, and again when it is read back.

Every document carries the envelope `format` (1), `kind` (the entry kind's name), `ledger_id`
(0x hex bytes32) and `created` (unix seconds). Amounts are integer minor units beside a lowercase
ISO 4217 `currency`; token amounts (terms) are decimal strings because they exceed 2**53.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    TypedDict,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

from ledger import limits
from ledger.errors import FloatNotAllowed, InvalidDocument, LedgerError
from ledger.hexutil import from_hex, require_address
from ledger.money import currency_code
from ledger.terms import Terms

Check = Callable[[Any, str], None]


def _int_range(low: int, high: int) -> Check:
    def check(value: Any, path: str) -> None:
        if not low <= value <= high:
            raise InvalidDocument(f"{path} must be in [{low}, {high}], got {value}", param=path)

    return check


def _text(chars_min: int, chars_max: int, pattern: str | None = None) -> Check:
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any, path: str) -> None:
        if not chars_min <= len(value) <= chars_max:
            raise InvalidDocument(f"{path} must have {chars_min}..{chars_max} chars", param=path)
        if compiled is not None and compiled.fullmatch(value) is None:
            raise InvalidDocument(f"{path} must match {pattern}", param=path)

    return check


def _hex32(value: Any, path: str) -> None:
    from_hex(value, length=32, error=InvalidDocument)


def _address(value: Any, path: str) -> None:
    try:
        require_address(value, path)
    except LedgerError as error:
        raise InvalidDocument(f"{path}: {error.message}", param=path) from error


def _currency(value: Any, path: str) -> None:
    if currency_code(value) != value:
        raise InvalidDocument(f"{path} must be a lowercase ISO 4217 code", param=path)


def _terms(value: Any, path: str) -> None:
    try:
        Terms.from_document(value)
    except LedgerError as error:
        raise InvalidDocument(f"{path}: {error.message}", param=path) from error


# Field types. Annotated metadata are the run-time checks; mypy sees the plain base type.
Hex32 = Annotated[str, _hex32]
Address = Annotated[str, _address]
Identifier = Annotated[str, _text(1, limits.identifier_chars_max, r"[A-Za-z0-9_\-.:]+")]
Text = Annotated[str, _text(0, limits.text_chars_max)]
Currency = Annotated[str, _currency]
AmountMinor = Annotated[int, _int_range(0, limits.amount_minor_abs_max)]
Timestamp = Annotated[int, _int_range(0, limits.json_integer_max)]
Bps = Annotated[int, _int_range(0, limits.tax_bps_max)]
Quantity = Annotated[int, _int_range(1, limits.line_quantity_max)]
TokenDecimals = Annotated[int, _int_range(0, limits.token_decimals_max)]
DunningLevel = Annotated[int, _int_range(1, 100)]
ChainId = Annotated[int, _int_range(1, limits.json_integer_max)]
LogIndex = Annotated[int, _int_range(0, limits.json_integer_max)]
TokenAmount = Annotated[str, _text(1, 78, r"0|[1-9][0-9]*")]
TermsDocument = Annotated[dict[str, Any], _terms]


class _Envelope(TypedDict):
    format: Literal[1]
    ledger_id: Hex32
    created: Timestamp


class _InvoiceEnvelope(_Envelope):
    invoice_id: Identifier
    salt: Hex32  # per-invoice random salt of the invoice key (formats.md "Invoice key")


class LineItemDocument(TypedDict):
    description: Text
    quantity: Quantity
    unit_amount_minor: AmountMinor
    tax_bps: Bps
    net_minor: AmountMinor  # quantity * unit_amount_minor
    tax_minor: AmountMinor  # per line, rounded half up (ledger.invoices)


class ChainPaymentDocument(TypedDict):
    chain_id: ChainId
    tx_hash: Hex32
    log_index: LogIndex
    token: Address
    amount_token: TokenAmount


class InvoiceIssuedDocument(_InvoiceEnvelope):
    kind: Literal["invoice_issued"]
    customer_id: Identifier
    currency: Currency
    lines: list[LineItemDocument]
    subtotal_minor: AmountMinor
    tax_minor: AmountMinor
    total_minor: AmountMinor
    due_date: Timestamp
    token_decimals: TokenDecimals
    terms: TermsDocument


class CreditNoteDocument(_InvoiceEnvelope):
    kind: Literal["credit_note"]
    credit_note_id: Identifier
    currency: Currency
    amount_minor: AmountMinor
    applied_minor: AmountMinor  # taken off the invoice balance
    to_customer_credit_minor: AmountMinor  # the excess, credited to the customer
    reason: Text
    terms: TermsDocument


class DebitNoteDocument(_InvoiceEnvelope):
    kind: Literal["debit_note"]
    debit_note_id: Identifier
    currency: Currency
    amount_minor: AmountMinor
    reason: Text
    terms: TermsDocument


class InvoiceVoidedDocument(_InvoiceEnvelope):
    kind: Literal["invoice_voided"]
    reason: Text


class PaymentBookedDocument(_InvoiceEnvelope):
    kind: Literal["payment_booked"]
    payment_id: Identifier
    currency: Currency
    amount_minor: AmountMinor
    source: Literal["onchain", "offchain"]
    reference: Text
    chain: NotRequired[ChainPaymentDocument]  # present exactly when source is "onchain"


class PaymentReversedDocument(_InvoiceEnvelope):
    kind: Literal["payment_reversed"]
    payment_id: Identifier  # the payment being reversed
    reversal_id: Identifier
    currency: Currency
    amount_minor: AmountMinor
    reason: Text


class WriteOffDocument(_InvoiceEnvelope):
    kind: Literal["write_off"]
    currency: Currency
    amount_minor: AmountMinor
    reason: Text


class DunningNoticeDocument(_InvoiceEnvelope):
    kind: Literal["dunning_notice"]
    notice_id: Identifier
    level: DunningLevel
    currency: Currency
    amount_due_minor: AmountMinor
    message: Text


class CreditLimitChangedDocument(_Envelope):
    kind: Literal["credit_limit_changed"]
    customer_id: Identifier
    currency: Currency
    limit_minor: AmountMinor
    previous_limit_minor: AmountMinor
    reason: Text


class TermsUpdatedDocument(_InvoiceEnvelope):
    kind: Literal["terms_updated"]
    reason: Text
    terms: TermsDocument


class CustomerCreatedDocument(_Envelope):
    kind: Literal["customer_created"]
    customer_id: Identifier
    currency: Currency


def _fail(path: str, expected: str, value: object) -> InvalidDocument:
    return InvalidDocument(f"{path} must be {expected}, got {type(value).__name__}", param=path)


@functools.cache
def _object_hints(typed_dict: type) -> dict[str, Any]:
    return get_type_hints(typed_dict, include_extras=True)


def _validate_object(value: object, typed_dict: type, path: str) -> None:
    if not isinstance(value, dict):
        raise _fail(path, "an object", value)
    hints = _object_hints(typed_dict)
    # Not __required_keys__: with postponed annotations Python 3.11 counts NotRequired keys in it.
    required = {key for key, hint in hints.items() if get_origin(hint) is not NotRequired}
    extra = set(value) - set(hints)
    missing = required - set(value)
    if extra or missing:
        raise InvalidDocument(f"{path}: unexpected keys {sorted(extra)}, missing keys {sorted(missing)}", param=path)
    for key, item in value.items():
        validate_value(item, hints[key], f"{path}.{key}")


def validate(value: object, hint: Any) -> None:
    """`validate_value(value, hint, "$")`, fast: a compiled check of the common case (exact
    builtin types, no paths built), and the walk below only to name what is wrong."""
    if not _fast_check(hint)(value):
        validate_value(value, hint, "$")  # raises with the path (or accepts what the fast check left to it)


Fast = Callable[[object], bool]


@functools.cache
def _fast_check(hint: Any) -> Fast:
    """A check of `value` against `hint` that answers True only where `validate_value` accepts;
    False means "let validate_value decide" (an error, or an unusual type such as a str subclass)."""
    origin = get_origin(hint)
    if origin is NotRequired:
        return _fast_check(get_args(hint)[0])
    if origin is Annotated:
        base, *checks = get_args(hint)
        base_ok = _fast_check(base)

        def annotated(value: object) -> bool:
            if not base_ok(value):
                return False
            try:
                for check in checks:
                    check(value, "$")
            except LedgerError:
                return False
            return True

        return annotated
    if origin is Literal:
        options = get_args(hint)
        return lambda value: any(type(value) is type(option) and value == option for option in options)
    if origin is list:
        item_ok = _fast_check(get_args(hint)[0])
        return lambda value: type(value) is list and len(value) <= limits.invoice_lines_max and all(map(item_ok, value))
    if origin is dict:
        return lambda value: type(value) is dict
    if is_typeddict(hint):
        hints = _object_hints(hint)
        fields = tuple((key, _fast_check(item)) for key, item in hints.items())
        keys = frozenset(hints)
        required = frozenset(key for key, item in hints.items() if get_origin(item) is not NotRequired)

        def typed_dict(value: object) -> bool:
            if type(value) is not dict or not required <= value.keys() <= keys:
                return False
            return all(ok(value[key]) for key, ok in fields if key in value)

        return typed_dict
    if hint is str or hint is bool or hint is int:
        return lambda value: type(value) is hint
    raise TypeError(f"documents.py has no validator for {hint!r}")  # a bug in this module


def validate_value(value: object, hint: Any, path: str) -> None:
    """Check `value` against a type hint of this module (Annotated, Literal, list, TypedDict)."""
    origin = get_origin(hint)
    if isinstance(value, float):
        raise FloatNotAllowed(f"{path}: floats are not allowed in documents", param=path)
    if origin is NotRequired:
        validate_value(value, get_args(hint)[0], path)
    elif origin is Annotated:
        base, *checks = get_args(hint)
        validate_value(value, base, path)
        for check in checks:
            check(value, path)
    elif origin is Literal:
        if not any(type(value) is type(option) and value == option for option in get_args(hint)):
            raise InvalidDocument(f"{path} must be one of {get_args(hint)}", param=path)
    elif origin is list:
        if not isinstance(value, list):
            raise _fail(path, "an array", value)
        if len(value) > limits.invoice_lines_max:
            raise InvalidDocument(f"{path} has more than {limits.invoice_lines_max} items")
        for position, item in enumerate(value):
            validate_value(item, get_args(hint)[0], f"{path}[{position}]")
    elif origin is dict:
        if not isinstance(value, dict):
            raise _fail(path, "an object", value)
    elif is_typeddict(hint):
        _validate_object(value, hint, path)
    elif hint is str or hint is bool:
        if not isinstance(value, hint):
            raise _fail(path, hint.__name__, value)
    elif hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(path, "an integer", value)
    else:
        raise TypeError(f"documents.py has no validator for {hint!r}")  # a bug in this module
