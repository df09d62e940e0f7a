"""canonical_json is RFC 8785 (key order, escapes, numbers); it refuses floats and unsafe ints."""

from __future__ import annotations

import hashlib

import pytest

from ledger.canonical import canonical_json, document_hash
from ledger.errors import FloatNotAllowed, InvalidDocument


def test_rfc8785_ordering_and_escapes() -> None:
    document = {"b": [True, None, -1], "a": "é\n\u2028", "€": 1, "\u0080": 2, "10": 0, "1": 0}
    # Keys sort by UTF-16 code units; non-ASCII stays literal UTF-8; only controls are escaped.
    assert canonical_json(document) == ('{"1":0,"10":0,"a":"é\\n\u2028","b":[true,null,-1],"\u0080":2,"€":1}'.encode())


def test_document_hash_is_sha256_of_canonical_bytes() -> None:
    document = {"z": 1, "a": {"y": "x"}}
    assert document_hash(document) == hashlib.sha256(b'{"a":{"y":"x"},"z":1}').digest()
    assert document_hash({"a": {"y": "x"}, "z": 1}) == document_hash(document)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"amount": 1.0}, FloatNotAllowed),
        ({"amount": [0.5]}, FloatNotAllowed),
        ({"amount": 2**53}, InvalidDocument),
        ({"amount": -(2**53)}, InvalidDocument),
        ({1: "non-string key"}, InvalidDocument),
        ({"bytes": b"\x00"}, InvalidDocument),
        ({"set": {1}}, InvalidDocument),
        ({"surrogate": "\ud800"}, InvalidDocument),
        ({"big": "x" * 70_000}, InvalidDocument),
    ],
)
def test_refusals(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        canonical_json(value)


def test_depth_limit() -> None:
    nested: object = 1
    for _ in range(17):
        nested = [nested]
    with pytest.raises(InvalidDocument):
        canonical_json(nested)
    assert canonical_json(2**53 - 1) == b"9007199254740991"
