r"""RFC 8785 canonical JSON of entry documents and their SHA-256 `document_hash` (formats.md).

We walk a document once to refuse what a ledger document must never hold: floats (amounts are
integer minor units), integers outside the exact IEEE-754 range, non-string keys, and types JSON
does not have. Depth and size are bounded.

What passes that walk is canonicalized by the standard library's C encoder: for such values RFC
8785 is exactly sorted keys, no whitespace, UTF-8, integers in decimal, and the escapes of
ECMAScript's JSON.stringify (which `json.dumps` shares: \b \t \n \f \r, \" and \\, other control
characters as lowercase \u00xx). The one difference is key order: RFC 8785 sorts by UTF-16 code
units, Python by code points, and the two agree unless a key holds a character above U+FFFF; such a
document goes through the `rfc8785` library instead. A property test holds both paths to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import rfc8785

from ledger import limits
from ledger.errors import FloatNotAllowed, InvalidDocument


def _check_value(value: object, depth: int, path: str) -> bool:
    """Refuse what no document may hold; return whether every key sorts the same by code point
    as by UTF-16 code unit (no key has a character above U+FFFF)."""
    if depth > limits.document_depth_max:
        raise InvalidDocument(f"document nests deeper than {limits.document_depth_max}", param=path)
    if value is None or isinstance(value, bool | str):
        return True
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
        return True
    if isinstance(value, Mapping):
        bmp_keys = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidDocument(f"{path}: object keys must be strings", param=path)
            if key and max(key) > "\uffff":
                bmp_keys = False
            bmp_keys = _check_value(item, depth + 1, f"{path}.{key}") and bmp_keys
        return bmp_keys
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        bmp_keys = True
        for position, item in enumerate(value):
            bmp_keys = _check_value(item, depth + 1, f"{path}[{position}]") and bmp_keys
        return bmp_keys
    raise InvalidDocument(f"{path}: {type(value).__name__} is not a JSON type", param=path)


class _Unusual(Exception):
    """Raised by `_scan` for anything it leaves to `_check_value` (errors, and uncommon types)."""


def _scan(value: object, depth: int) -> bool:
    """`_check_value` for exact dicts, lists, strs, ints, bools and None, without building the
    paths only an error message needs; anything else raises `_Unusual`."""
    if depth > limits.document_depth_max:
        raise _Unusual
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        if abs(value) > limits.json_integer_max:  # type: ignore[arg-type]  # kind is int
            raise _Unusual
        return True
    bmp_keys = True
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]  # kind is dict
            if type(key) is not str:
                raise _Unusual
            if key and max(key) > "\uffff":
                bmp_keys = False
            bmp_keys = _scan(item, depth + 1) and bmp_keys
        return bmp_keys
    if kind is list:
        for item in value:  # type: ignore[attr-defined]  # kind is list
            bmp_keys = _scan(item, depth + 1) and bmp_keys
        return bmp_keys
    raise _Unusual


def canonical_json(obj: object) -> bytes:
    """RFC 8785 (JCS) canonical UTF-8 bytes of `obj`; refuses floats with `FloatNotAllowed`."""
    try:
        bmp_keys = _scan(obj, 0)
    except _Unusual:
        bmp_keys = _check_value(obj, 0, "$")  # names the error, or accepts a tuple or a Mapping
    try:
        if bmp_keys:
            encoded = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        else:
            encoded = rfc8785.dumps(obj)  # type: ignore[arg-type]  # checked to be JSON just above
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as error:
        # A lone surrogate in a string has no UTF-8 form on either path.
        raise InvalidDocument(f"cannot canonicalize: {error}") from error
    if len(encoded) > limits.document_bytes_max:
        raise InvalidDocument(f"canonical document is {len(encoded)} bytes, more than {limits.document_bytes_max}")
    return encoded


def document_hash(document: object) -> bytes:
    """SHA-256 of the canonical JSON of `document` (32 bytes)."""
    return hashlib.sha256(canonical_json(document)).digest()
