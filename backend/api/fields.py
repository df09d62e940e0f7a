"""Reusable request field types: ids, amounts, currencies, addresses, bounded safe text.

Amounts are JSON integers only (strict: `1.5`, `"15"` and `true` are refused), in
`0 <= x < 2**256`; the ledger then applies its own, tighter bound for document amounts
(`amount_out_of_range`). Text refuses NUL, other C0 controls but tab/newline, and lone
surrogates, which no database column can store.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from backend.services.common import (
    ID_PATTERN,
    metadata_keys_max,
    metadata_value_chars_max,
)
from ledger import limits
from ledger.hexutil import normalize_address
from ledger.money import currency_code

UINT256_MAX = 2**256 - 1
_UNSAFE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Strict(BaseModel):
    """Request bodies: unknown fields refused, nothing coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _safe_text(value: str) -> str:
    if _UNSAFE_TEXT.search(value):
        raise ValueError("control characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from error
    return value


def text(chars_max: int, chars_min: int = 0) -> object:
    return Annotated[
        str,
        StringConstraints(min_length=chars_min, max_length=chars_max),
        AfterValidator(_safe_text),
    ]


def id_of(prefix: str) -> object:
    return Annotated[str, StringConstraints(pattern=rf"^{prefix}_{ID_PATTERN}$")]


CustomerId = id_of("cus")
InvoiceId = id_of("inv")
ApiKeyId = id_of("key")

AmountMinor = Annotated[
    int,
    Field(
        ge=0,
        le=UINT256_MAX,
        strict=True,
        description="Integer in minor units (cents for usd); JSON integers only.",
        examples=[1999],
    ),
]
Bps = Annotated[int, Field(ge=0, le=limits.tax_bps_max, strict=True, examples=[2000])]
Timestamp = Annotated[int, Field(ge=0, le=limits.json_integer_max, strict=True, examples=[1767225600])]


def _currency(value: str) -> str:
    return currency_code(value)  # raises UnknownCurrency (code unknown_currency)


Currency = Annotated[
    str,
    StringConstraints(min_length=3, max_length=3),
    AfterValidator(_currency),
    Field(description="ISO 4217 code, lowercase in responses.", examples=["usd"]),
]


def _address(value: str) -> str:
    return normalize_address(value)  # raises InvalidAddress (code invalid_address)


Address = Annotated[
    str,
    StringConstraints(min_length=42, max_length=42),
    AfterValidator(_address),
    Field(
        description="0x + 40 hex digits; lowercase, or mixed case with a valid EIP-55 checksum. "
        "Responses show lowercase.",
        examples=["0x70997970c51812dc3a010c7d01b50e0d17dc79c8"],
    ),
]

MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_\-.]+$")]
Metadata = Annotated[
    dict[MetadataKey, text(metadata_value_chars_max)],  # type: ignore[valid-type]
    Field(
        max_length=metadata_keys_max,
        description=f"Up to {metadata_keys_max} string pairs for your own use.",
        examples=[{"crm_account": "A-1042"}],
    ),
]
