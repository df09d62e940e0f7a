"""Built receipts match docs/receipt.schema.json and verify offline; every tampering is refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ledger_samples import invoice_issued_document, payment_booked_document, sample_terms

from ledger.entries import Entry
from ledger.errors import ReceiptInvalid
from ledger.hexutil import to_hex
from ledger.merkle import MerkleLog
from ledger.receipts import (
    OFFLINE_CHECKS,
    Anchor,
    build_receipt,
    receipt_leaf_hash,
    verify_receipt_offline,
)

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "receipt.schema.json").read_text())
ANCHOR = Anchor(chain_id=31337, contract="0x" + "cc" * 20, tx_hash=b"\x0e" * 32, block_number=12)


def _receipts() -> list[dict[str, Any]]:
    log = MerkleLog()
    entries = []
    for sequence in range(11):
        if sequence % 3 == 0:
            document = invoice_issued_document(invoice_id=f"inv_{sequence}")
        else:
            document = payment_booked_document(payment_id=f"pay_{sequence}")
        entry = Entry(sequence, document)
        assert log.append(entry.leaf_input()) == sequence
        entries.append(entry)
    return [
        build_receipt(
            entry,
            tree_size=log.size,
            root=log.root(),
            inclusion_proof=log.inclusion_proof(entry.sequence),
            anchor=ANCHOR,
        )
        for entry in entries
    ]


RECEIPTS = _receipts()


def test_receipts_validate_against_the_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for receipt in RECEIPTS:
        validator.validate(json.loads(json.dumps(receipt)))
    bad = copy.deepcopy(RECEIPTS[0])
    bad["root"] = bad["root"].upper()
    assert not validator.is_valid(bad)


def test_receipts_verify_offline_after_a_json_round_trip() -> None:
    for receipt in RECEIPTS:
        assert verify_receipt_offline(json.loads(json.dumps(receipt))) == list(OFFLINE_CHECKS)
        assert receipt_leaf_hash(receipt) == Entry(receipt["leaf_index"], receipt["document"]).leaf_hash()


def _set(path: str, value: Any) -> Any:
    def mutate(receipt: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = receipt
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _flip_hex(text: str, position: int = -1) -> str:
    digit = text[position]
    return text[:position] + ("0" if digit != "0" else "1") + (text[position + 1 :] if position != -1 else "")


TAMPERINGS = [
    ("version", _set("version", 2), "unsupported_version"),
    ("extra key", _set("note", "hi"), "shape"),
    ("amount", _set("document.total_minor", 11_001), "document"),
    ("customer", _set("document.customer_id", "cus_other"), "document_hash"),
    ("doc hash", lambda r: r.update(document_hash=_flip_hex(r["document_hash"])), "document_hash"),
    (
        "leaf input byte",
        lambda r: r.update(leaf_input=_flip_hex(r["leaf_input"], 300)),
        "leaf_input",
    ),
    (
        "leaf sequence",
        lambda r: r.update(leaf_input=_flip_hex(r["leaf_input"], 2 + 3 * 64 - 1)),
        "leaf_index",
    ),
    ("leaf index", lambda r: r.update(leaf_index=r["leaf_index"] + 1), "leaf_index"),
    ("kind", _set("kind", "credit_note"), "kind"),
    ("subject", lambda r: r.update(subject=_flip_hex(r["subject"])), "subject"),
    ("salt", lambda r: r["document"].update(salt="0x" + "00" * 32), "document_hash"),
    ("root", lambda r: r.update(root=_flip_hex(r["root"])), "inclusion_proof"),
    (
        "proof",
        lambda r: r["inclusion_proof"].__setitem__(0, _flip_hex(r["inclusion_proof"][0])),
        "inclusion_proof",
    ),
    ("proof cut", lambda r: r["inclusion_proof"].pop(), "inclusion_proof"),
    ("proof garbage", lambda r: r["inclusion_proof"].append("0x1234"), "inclusion_proof"),
    ("tree size", lambda r: r.update(tree_size=r["tree_size"] * 2), "inclusion_proof"),
    ("contract", _set("anchor.contract", "0x" + "CC" * 20), "shape"),
    ("tx hash", _set("anchor.tx_hash", "0x12"), "shape"),
    ("float", _set("leaf_index", 0.0), "shape"),
]


@pytest.mark.parametrize(("name", "mutate", "reason"), TAMPERINGS, ids=[t[0] for t in TAMPERINGS])
def test_tampered_receipts_are_refused(name: str, mutate: Any, reason: str) -> None:
    receipt = copy.deepcopy(RECEIPTS[0])
    mutate(receipt)
    with pytest.raises(ReceiptInvalid) as raised:
        verify_receipt_offline(receipt)
    assert raised.value.reason == reason, raised.value.message


def test_leaf_input_with_other_terms_is_refused() -> None:
    receipt = copy.deepcopy(RECEIPTS[0])
    other = Entry(0, invoice_issued_document(invoice_id="inv_0", terms=sample_terms(amount_due=1)))
    receipt["leaf_input"] = to_hex(other.leaf_input())
    with pytest.raises(ReceiptInvalid) as raised:
        verify_receipt_offline(receipt)
    assert raised.value.reason == "leaf_input"  # its document hash differs first


def test_build_refuses_a_wrong_head() -> None:
    entry = Entry(0, payment_booked_document())
    with pytest.raises(ReceiptInvalid):
        build_receipt(entry, tree_size=1, root=b"\x00" * 32, inclusion_proof=[], anchor=ANCHOR)
