"""Money: integer minor units and an ISO 4217 code; exact decimal parsing and token conversion.

Floats are refused everywhere money enters (`FloatNotAllowed`, a `TypeError`): a float cannot
hold 0.10 exactly, and a ledger that rounds silently cannot be audited. Decimal strings are parsed
with string and integer operations only. Currency codes are held lowercase (as in documents and
the API); the exponent table is `ledger.currencies.ISO_4217_EXPONENTS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ledger import limits
from ledger.currencies import ISO_4217_EXPONENTS
from ledger.errors import (
    AmountOutOfRange,
    CurrencyMismatch,
    FloatNotAllowed,
    InexactConversion,
    InvalidAmount,
    UnknownCurrency,
)

_DECIMAL_RE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
# Powers of ten by exponent, typed as int (mypy types int ** variable as Any).
_POW10: tuple[int, ...] = tuple(10**power for power in range(limits.token_decimals_max + 1))


def _refuse_float(value: object, name: str) -> None:
    if isinstance(value, float):
        raise FloatNotAllowed(
            f"{name} is a float ({value!r}); pass integer minor units or a decimal string",
            param=name,
        )


def require_int(value: object, name: str) -> int:
    """An int that is not a bool; floats get `FloatNotAllowed`, other types `InvalidAmount`."""
    _refuse_float(value, name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidAmount(f"{name} must be an int, got {type(value).__name__}", param=name)
    return value


def currency_code(code: object) -> str:
    """Lowercase ISO 4217 code; refuse unknown codes and codes without a minor unit."""
    if not isinstance(code, str) or len(code) != 3 or not code.isascii():
        raise UnknownCurrency(f"not an ISO 4217 code: {code!r:.20}", param="currency")
    upper = code.upper()
    if upper not in ISO_4217_EXPONENTS:
        raise UnknownCurrency(f"not an active ISO 4217 code: {code!r}", param="currency")
    if ISO_4217_EXPONENTS[upper] is None:
        raise UnknownCurrency(f"{upper} has no minor unit in ISO 4217", param="currency")
    return upper.lower()


def currency_exponent(code: str) -> int:
    """Minor-unit exponent of a currency (2 for usd, 0 for jpy, 3 for kwd)."""
    exponent = ISO_4217_EXPONENTS[currency_code(code).upper()]
    if exponent is None:  # currency_code refuses these; checked twice on purpose
        raise UnknownCurrency(f"{code} has no minor unit", param="currency")
    return exponent


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of one currency. Arithmetic only within the same currency."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        amount = require_int(self.amount_minor, "amount_minor")
        if abs(amount) > limits.amount_minor_abs_max:
            raise AmountOutOfRange(f"|amount_minor| must be <= {limits.amount_minor_abs_max}", param="amount_minor")
        object.__setattr__(self, "currency", currency_code(self.currency))

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Parse a decimal string such as "12.34" or "-0.5" exactly into minor units."""
        return cls(parse_decimal(text, currency_exponent(currency)), currency)

    def format(self) -> str:
        """The plain decimal string ("12.34", "-0.05", "1000" for jpy); inverse of `parse`."""
        return format_decimal(self.amount_minor, currency_exponent(self.currency))

    def _same_currency(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}", param="currency")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __str__(self) -> str:
        return f"{self.format()} {self.currency.upper()}"

    def to_document(self) -> dict[str, int | str]:
        """`{"amount_minor": int, "currency": "usd"}` for entry documents."""
        return {"amount_minor": self.amount_minor, "currency": self.currency}


def parse_decimal(text: object, exponent: int) -> int:
    """Decimal string -> integer minor units for `exponent` decimals, exactly, without floats.

    Accepts `-?digits(.digits)?`; more fractional digits than the exponent are accepted only if
    the extra ones are zeros (exact), otherwise `InvalidAmount`.
    """
    _refuse_float(text, "amount")
    if not isinstance(text, str):
        raise InvalidAmount(f"amount must be a decimal string, got {type(text).__name__}")
    if len(text) > limits.decimal_string_chars_max:
        raise InvalidAmount(f"amount string longer than {limits.decimal_string_chars_max} chars")
    match = _DECIMAL_RE.fullmatch(text)
    if match is None or not text.isascii():
        raise InvalidAmount(f"not a plain decimal amount: {text!r}", param="amount")
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    kept, extra = fraction[:exponent], fraction[exponent:]
    if extra.strip("0"):
        raise InvalidAmount(f"{text!r} has more than {exponent} decimal places", param="amount")
    minor = int(whole) * _POW10[exponent] + int(kept.ljust(exponent, "0") or "0")
    return -minor if sign else minor


def format_decimal(amount_minor: int, exponent: int) -> str:
    """Integer minor units -> decimal string with exactly `exponent` decimals."""
    amount = require_int(amount_minor, "amount_minor")
    sign = "-" if amount < 0 else ""
    digits = str(abs(amount)).rjust(exponent + 1, "0")
    if exponent == 0:
        return sign + digits
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


def _check_scale(currency_exponent: int, token_decimals: int) -> tuple[int, int]:
    exponent = require_int(currency_exponent, "currency_exponent")
    decimals = require_int(token_decimals, "token_decimals")
    if not 0 <= exponent <= limits.currency_exponent_max:
        raise InvalidAmount(f"currency_exponent out of range: {exponent}")
    if not 0 <= decimals <= limits.token_decimals_max:
        raise InvalidAmount(f"token_decimals out of range: {decimals}")
    return exponent, decimals


def to_token_units(amount_minor: int, currency_exponent: int, token_decimals: int) -> int:
    """Currency minor units -> token base units, exactly; `InexactConversion` if it would round.

    The result must fit a uint256 (0 <= result < 2**256).
    """
    amount = require_int(amount_minor, "amount_minor")
    exponent, decimals = _check_scale(currency_exponent, token_decimals)
    if amount < 0:
        raise AmountOutOfRange("token amounts cannot be negative", param="amount_minor")
    if decimals >= exponent:
        result = amount * _POW10[decimals - exponent]
    else:
        quotient, remainder = divmod(amount, _POW10[exponent - decimals])
        if remainder:
            raise InexactConversion(
                f"{amount} minor units (exponent {exponent}) is not a whole number of token "
                f"units with {decimals} decimals",
                param="amount_minor",
            )
        result = quotient
    if result > limits.token_amount_max:
        raise AmountOutOfRange("token amount does not fit uint256", param="amount_minor")
    return result


def from_token_units(amount_token: int, currency_exponent: int, token_decimals: int) -> int:
    """Token base units -> currency minor units, exactly; `InexactConversion` if it would round."""
    amount = require_int(amount_token, "amount_token")
    exponent, decimals = _check_scale(currency_exponent, token_decimals)
    if not 0 <= amount <= limits.token_amount_max:
        raise AmountOutOfRange("token amount must be in [0, 2**256)", param="amount_token")
    if exponent >= decimals:
        return amount * _POW10[exponent - decimals]
    quotient, remainder = divmod(amount, _POW10[decimals - exponent])
    if remainder:
        raise InexactConversion(
            f"{amount} token units ({decimals} decimals) is not a whole number of minor units (exponent {exponent})",
            param="amount_token",
        )
    return quotient
