"""Hex and address helpers: formats.md says hex is `0x`-prefixed lowercase, everywhere."""

from __future__ import annotations

import re

from eth_utils.address import is_checksum_address

from ledger.errors import InvalidAddress, LedgerError

_HEX_RE = re.compile(r"0x(?:[0-9a-f]{2})*")
_ADDRESS_ANY_CASE_RE = re.compile(r"0x[0-9a-fA-F]{40}")
ZERO_ADDRESS = "0x" + "00" * 20
ZERO_BYTES32 = b"\x00" * 32


def to_hex(data: bytes) -> str:
    """`0x` + lowercase hex of `data`."""
    return "0x" + data.hex()


def from_hex(text: object, *, length: int | None = None, error: type[LedgerError]) -> bytes:
    """Parse strict `0x` lowercase hex (even length); raise `error` on anything else."""
    if not isinstance(text, str) or _HEX_RE.fullmatch(text) is None:
        raise error(f"expected 0x-prefixed lowercase hex, got {text!r:.80}")
    data = bytes.fromhex(text[2:])
    if length is not None and len(data) != length:
        raise error(f"expected {length} bytes of hex, got {len(data)}")
    return data


def require_bytes32(value: object, name: str, *, error: type[LedgerError]) -> bytes:
    """Check that `value` is exactly 32 bytes (not bytearray, not str)."""
    if not isinstance(value, bytes) or len(value) != 32:
        raise error(f"{name} must be 32 bytes, got {type(value).__name__}", param=name)
    return value


def normalize_address(value: object, name: str = "address") -> str:
    """Return the lowercase `0x` form of an address given lowercase or EIP-55 checksummed.

    Mixed case that is not a valid checksum is refused: it is most likely a typo.
    """
    if not isinstance(value, str) or _ADDRESS_ANY_CASE_RE.fullmatch(value) is None:
        raise InvalidAddress(f"{name} must be a 0x-prefixed 20-byte hex address", param=name)
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise InvalidAddress(f"{name} has an invalid EIP-55 checksum", param=name)
    return value.lower()


def require_address(value: object, name: str) -> str:
    """Check that `value` is already in canonical lowercase form (what documents and Terms hold)."""
    normalized = normalize_address(value, name)
    if normalized != value:
        raise InvalidAddress(f"{name} must be lowercase 0x hex", param=name)
    return normalized
