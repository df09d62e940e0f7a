"""RFC 8785 canonical JSON of entry documents and their SHA-256 `document_hash` (formats.md).

Before handing a document to the `rfc8785` library we walk it once to refuse what a ledger
document must never hold: floats (amounts are integer minor units), integers outside the exact
IEEE-754 range, non-string keys, and types JSON does not have. Depth and size are bounded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import rfc8785

from ledger import limits
from ledger.errors import FloatNotAllowed, InvalidDocument


def _check_value(value: object, depth: int, path: str) -> None:
    if depth > limits.document_depth_max:
        raise InvalidDocument(f"document nests deeper than {limits.document_depth_max}", param=path)
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, float):
        raise FloatNotAllowed(
            f"{path}: floats are not allowed in documents; use integer minor units or a decimal string",
            param=path,
        )
    if isinstance(value, int):
        if abs(value) > limits.json_integer_max:
            raise InvalidDocument(
                f"{path}: integer {value} exceeds 2**53-1; encode it as a decimal string",
                param=path,
            )
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidDocument(f"{path}: object keys must be strings", param=path)
            _check_value(item, depth + 1, f"{path}.{key}")
        return
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for position, item in enumerate(value):
            _check_value(item, depth + 1, f"{path}[{position}]")
        return
    raise InvalidDocument(f"{path}: {type(value).__name__} is not a JSON type", param=path)


def canonical_json(obj: object) -> bytes:
    """RFC 8785 (JCS) canonical UTF-8 bytes of `obj`; refuses floats with `FloatNotAllowed`."""
    _check_value(obj, 0, "$")
    try:
        encoded = rfc8785.dumps(obj)  # type: ignore[arg-type]  # checked to be JSON just above
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as error:
        raise InvalidDocument(f"cannot canonicalize: {error}") from error
    if len(encoded) > limits.document_bytes_max:
        raise InvalidDocument(f"canonical document is {len(encoded)} bytes, more than {limits.document_bytes_max}")
    return encoded


def document_hash(document: object) -> bytes:
    """SHA-256 of the canonical JSON of `document` (32 bytes)."""
    return hashlib.sha256(canonical_json(document)).digest()
