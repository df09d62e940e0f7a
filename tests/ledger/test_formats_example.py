"""The worked example in docs/formats.md is recomputed byte for byte from the values in the doc."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from ledger.canonical import canonical_json, document_hash
from ledger.entries import Entry, EntryKind, invoice_key, leaf_input, parse_leaf_input
from ledger.hexutil import to_hex
from ledger.merkle import MerkleLog, leaf_hash

FORMATS = (Path(__file__).parents[2] / "docs" / "formats.md").read_text(encoding="utf-8")


def block(name: str) -> str:
    found = re.findall(rf"```\w+ worked-example:{name}\n(.*?)\n```", FORMATS, flags=re.DOTALL)
    assert len(found) == 1, f"formats.md must hold exactly one worked-example:{name} block"
    return found[0]


def values() -> dict[str, str]:
    pairs = (line.split(" = ", 1) for line in block("values").splitlines())
    return {key.strip(): value.strip() for key, value in pairs}


def words(name: str) -> bytes:
    lines = block(name).split()
    assert all(re.fullmatch(r"[0-9a-f]{64}", line) for line in lines)
    return bytes.fromhex("".join(lines))


def test_canonical_bytes_and_document_hash() -> None:
    document = json.loads(block("document"))
    canonical = block("canonical").encode("utf-8")
    assert canonical_json(document) == canonical
    assert to_hex(hashlib.sha256(canonical).digest()) == values()["document_hash"]
    assert to_hex(document_hash(document)) == values()["document_hash"]


def test_invoice_key() -> None:
    document = json.loads(block("document"))
    ledger_id = bytes.fromhex(document["ledger_id"][2:])
    salt = bytes.fromhex(document["salt"][2:])
    preimage = words("invoice-key-preimage")
    assert encode(["bytes32", "string", "bytes32"], [ledger_id, document["invoice_id"], salt]) == preimage
    assert to_hex(keccak(preimage)) == values()["invoice_key"]
    assert to_hex(invoice_key(ledger_id, document["invoice_id"], salt)) == values()["invoice_key"]


def test_leaf_input_and_leaf_hash() -> None:
    document = json.loads(block("document"))
    sequence = int(values()["sequence"])
    expected = words("leaf-input")
    entry = Entry(sequence, document)
    assert entry.leaf_input() == expected and len(expected) == 544
    fields = parse_leaf_input(expected)
    assert fields.kind is EntryKind.INVOICE_ISSUED and fields.sequence == sequence
    assert to_hex(fields.subject) == values()["invoice_key"]
    assert to_hex(fields.document_hash) == values()["document_hash"]
    assert leaf_input(fields.kind, sequence, fields.subject, fields.document_hash, entry.terms) == expected
    assert to_hex(leaf_hash(expected)) == values()["leaf_hash"]
    assert to_hex(hashlib.sha256(b"\x00" + expected).digest()) == values()["leaf_hash"]
    log = MerkleLog()
    log.append(expected)
    assert to_hex(log.root()) == values()["leaf_hash"]
