"""Settlement terms and the terms math (formats.md "Settlement terms", "Terms math").

`Terms` mirrors the Solidity struct field by field; `abi_tuple()` gives the values in struct order
for `eth_abi.encode([TERMS_ABI_TYPE], ...)`. Addresses are held in lowercase `0x` hex (use
`ledger.hexutil.normalize_address` to accept checksummed input first).

`amount_due_at` and `remaining_at` are the normative math: integer only, floors exactly where
formats.md states them. `SettlementMath.amountDueAt` in Solidity must agree on every input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ledger import limits
from ledger.errors import FloatNotAllowed, InvalidTerms
from ledger.hexutil import ZERO_ADDRESS, require_address

TERMS_ABI_COMPONENTS = (
    "address", "address", "uint256", "uint64", "uint16", "uint64",
    "uint16", "uint32", "uint16", "bool", "address", "uint32",
)  # fmt: skip
TERMS_ABI_TYPE = "(" + ",".join(TERMS_ABI_COMPONENTS) + ")"
# formats.md: a voided or written-off invoice's current version is type(uint32).max.
CANCELLED_VERSION = 2**32 - 1
TERMS_VERSION_MAX = CANCELLED_VERSION - 1

UINT16_MAX = 2**16 - 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1

# field name -> inclusive upper bound; every one of these is an unsigned int field.
_UINT_BOUNDS: dict[str, int] = {
    "amount_due": limits.terms_amount_due_max,
    "due_date": UINT64_MAX,
    "discount_bps": limits.discount_bps_max,
    "discount_deadline": UINT64_MAX,
    "late_fee_bps": UINT16_MAX,
    "late_fee_period": UINT32_MAX,
    "late_fee_periods_max": UINT16_MAX,
    "version": TERMS_VERSION_MAX,
}


def require_uint(value: object, name: str, upper: int) -> int:
    """An int (never bool or float) in [0, upper]; raise InvalidTerms otherwise."""
    if isinstance(value, float):
        raise FloatNotAllowed(f"{name} must be an int, not a float", param=name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidTerms(f"{name} must be an int, got {type(value).__name__}", param=name)
    if value < 0 or value > upper:
        raise InvalidTerms(f"{name} must be in [0, {upper}], got {value}", param=name)
    return value


@dataclass(frozen=True, kw_only=True)
class Terms:
    """One version of an invoice's settlement terms; validated on construction."""

    payee: str
    token: str
    amount_due: int
    due_date: int
    discount_bps: int = 0
    discount_deadline: int = 0
    late_fee_bps: int = 0
    late_fee_period: int = 0
    late_fee_periods_max: int = 0
    partial_allowed: bool = False
    payer: str = ZERO_ADDRESS
    version: int = 1

    def __post_init__(self) -> None:
        require_address(self.payee, "payee")
        require_address(self.token, "token")
        require_address(self.payer, "payer")
        if self.payee == ZERO_ADDRESS:
            raise InvalidTerms("payee must not be the zero address", param="payee")
        for name, upper in _UINT_BOUNDS.items():
            require_uint(getattr(self, name), name, upper)
        if not isinstance(self.partial_allowed, bool):
            raise InvalidTerms("partial_allowed must be a bool", param="partial_allowed")
        if self.version < 1:
            raise InvalidTerms("version starts at 1", param="version")
        if self.late_fee_bps > 0 and self.late_fee_period == 0:
            raise InvalidTerms("late_fee_period must be > 0 when late_fee_bps > 0", param="late_fee_period")

    def abi_tuple(self) -> tuple[str, str, int, int, int, int, int, int, int, bool, str, int]:
        """The struct's values in Solidity field order, for `eth_abi.encode([TERMS_ABI_TYPE])`."""
        return (
            self.payee,
            self.token,
            self.amount_due,
            self.due_date,
            self.discount_bps,
            self.discount_deadline,
            self.late_fee_bps,
            self.late_fee_period,
            self.late_fee_periods_max,
            self.partial_allowed,
            self.payer,
            self.version,
        )

    @classmethod
    def from_abi_tuple(cls, values: tuple[Any, ...]) -> Terms:
        """Inverse of `abi_tuple` (addresses as eth_abi decodes them, normalized to lowercase)."""
        if len(values) != 12:
            raise InvalidTerms(f"terms tuple has 12 fields, got {len(values)}")
        names = [field.name for field in dataclasses.fields(cls)]
        kwargs = dict(zip(names, values, strict=True))
        for name in ("payee", "token", "payer"):
            if isinstance(kwargs[name], str):
                kwargs[name] = kwargs[name].lower()
        return cls(**kwargs)

    def to_document(self) -> dict[str, Any]:
        """JSON form for entry documents. `amount_due` is a decimal string: token units exceed
        the 2**53 integer range that RFC 8785 allows."""
        # Fields read directly: dataclasses.asdict deep-copies recursively, and every value here is
        # an int, str or bool already.
        document: dict[str, Any] = {name: getattr(self, name) for name in _FIELD_NAMES}
        document["amount_due"] = str(self.amount_due)
        return document

    @classmethod
    def from_document(cls, document: object) -> Terms:
        """Parse `to_document`'s output strictly (exact key set, canonical decimal amount)."""
        if not isinstance(document, dict):
            raise InvalidTerms("terms must be a JSON object")
        if document.keys() != _FIELD_SET:
            raise InvalidTerms(f"terms keys differ: {sorted(set(document) ^ _FIELD_SET)}")
        kwargs = dict(document)
        kwargs["amount_due"] = parse_uint_string(document["amount_due"], "amount_due")
        return cls(**kwargs)

    def next_version(self, *, amount_due: int) -> Terms:
        """The next terms version with a new amount due (credit note, debit note, payment)."""
        if self.version >= TERMS_VERSION_MAX:
            raise InvalidTerms("terms version space exhausted", param="version")
        return dataclasses.replace(self, amount_due=amount_due, version=self.version + 1)

    def without_late_fee(self) -> Terms:
        """These terms charging no late fee (same version): what a version carries once a late fee
        has been booked into its `amount_due` (formats.md, "Invoice arithmetic")."""
        return dataclasses.replace(self, late_fee_bps=0, late_fee_period=0, late_fee_periods_max=0)

    def with_late_fee_of(self, source: Terms) -> Terms:
        """These terms charging the late fee of `source` (same version): a booked late fee that is
        reversed gives it back."""
        return dataclasses.replace(
            self,
            late_fee_bps=source.late_fee_bps,
            late_fee_period=source.late_fee_period,
            late_fee_periods_max=source.late_fee_periods_max,
        )

    def without_discount(self) -> Terms:
        """These terms granting no early-payment discount (same version): what a version carries
        once the discount a payment took has been booked (formats.md, "Invoice arithmetic")."""
        return dataclasses.replace(self, discount_bps=0, discount_deadline=0)

    def with_discount_of(self, source: Terms) -> Terms:
        """These terms granting the early-payment discount of `source` (same version): a booked
        discount that is reversed gives it back."""
        return dataclasses.replace(self, discount_bps=source.discount_bps, discount_deadline=source.discount_deadline)


def parse_uint_string(value: object, name: str) -> int:
    """A canonical unsigned decimal string ("0" or no leading zeros) to int."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise InvalidTerms(f"{name} must be a decimal string of digits", param=name)
    if len(value) > 78 or (len(value) > 1 and value[0] == "0"):
        raise InvalidTerms(f"{name} must be canonical (no leading zeros, <= 78 digits)", param=name)
    return int(value)


def amount_due_at(terms: Terms, t: int) -> int:
    """What is due at unix time `t` under `terms`, before deducting payments (formats.md).

    Discount rounds down (payee's favour); late fee rounds down (payer's favour); simple fee.
    """
    require_uint(t, "t", UINT64_MAX)
    base = terms.amount_due
    if terms.discount_bps > 0 and t <= terms.discount_deadline:
        return base - base * terms.discount_bps // limits.bps_denominator
    if terms.late_fee_bps > 0 and t > terms.due_date:
        late_s = t - terms.due_date
        periods_started = (late_s + terms.late_fee_period - 1) // terms.late_fee_period
        periods = min(periods_started, terms.late_fee_periods_max)
        return base + base * terms.late_fee_bps * periods // limits.bps_denominator
    return base


def remaining_at(terms: Terms, t: int, paid: int) -> int:
    """What is still to pay at `t` after `paid` token units already paid under the invoice key."""
    require_uint(paid, "paid", limits.token_amount_max)
    due = amount_due_at(terms, t)
    return due - paid if due > paid else 0


_FIELD_NAMES = tuple(field.name for field in dataclasses.fields(Terms))
_FIELD_SET = frozenset(_FIELD_NAMES)
