"""Receipts: what a trading partner gets for an entry, and its offline verification (DESIGN.md).

A receipt holds the entry's document, its hash, the leaf input, the leaf index, an anchored head
(tree size, root), the inclusion proof and where the head was anchored. Offline verification
recomputes everything recomputable from the receipt itself; what remains is one RPC call:
`LedgerAnchor.rootAt(tree_size)` on `anchor.chain_id` / `anchor.contract` must equal `root`.

Every receipt is verified before `build_receipt` returns it (checked on write and on read).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger import limits
from ledger.entries import (
    DOCUMENT_HASH_OFFSET,
    Entry,
    parse_leaf_input,
)
from ledger.errors import LedgerError, ReceiptInvalid
from ledger.hexutil import from_hex, normalize_address, to_hex
from ledger.merkle import leaf_hash, root_from_inclusion_proof

RECEIPT_VERSION = limits.receipt_version
RECEIPT_KEYS = frozenset(
    {
        "version",
        "kind",
        "subject",
        "document",
        "document_hash",
        "leaf_input",
        "leaf_index",
        "tree_size",
        "root",
        "inclusion_proof",
        "anchor",
    }
)
ANCHOR_KEYS = frozenset({"chain_id", "contract", "tx_hash", "block_number"})

# Names of the offline checks, in the order `verify_receipt_offline` runs them.
OFFLINE_CHECKS = (
    "shape",
    "document",
    "document_hash",
    "leaf_input",
    "leaf_index",
    "kind",
    "subject",
    "terms",
    "inclusion_proof",
)
ONCHAIN_CHECK = "anchor_root"  # rootAt(tree_size) == root, done by the caller with one RPC call


@dataclass(frozen=True)
class Anchor:
    """Where a head was anchored: the chain, the LedgerAnchor contract and the transaction."""

    chain_id: int
    contract: str
    tx_hash: bytes
    block_number: int

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "contract": normalize_address(self.contract, "contract"),
            "tx_hash": to_hex(self.tx_hash),
            "block_number": self.block_number,
        }


def build_receipt(
    entry: Entry,
    *,
    tree_size: int,
    root: bytes,
    inclusion_proof: Sequence[bytes],
    anchor: Anchor,
) -> dict[str, Any]:
    """Assemble a receipt for `entry` under the anchored head `(tree_size, root)`; it is
    verified offline before it is returned (ReceiptInvalid if the inputs disagree)."""
    receipt: dict[str, Any] = {
        "version": RECEIPT_VERSION,
        "kind": entry.kind.document_kind,
        "subject": to_hex(entry.subject),
        "document": copy.deepcopy(entry.document),
        "document_hash": to_hex(entry.document_hash),
        "leaf_input": to_hex(entry.leaf_input()),
        "leaf_index": entry.sequence,
        "tree_size": tree_size,
        "root": to_hex(root),
        "inclusion_proof": [to_hex(hash_) for hash_ in inclusion_proof],
        "anchor": anchor.to_json(),
    }
    verify_receipt_offline(receipt)
    return receipt


def _hex(receipt: dict[str, Any], key: str, length: int | None) -> bytes:
    try:
        return from_hex(receipt[key], length=length, error=LedgerError)
    except LedgerError as error:
        raise ReceiptInvalid("shape", f"{key}: {error.message}") from error


def _uint(value: object, key: str, upper: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= upper:
        raise ReceiptInvalid("shape", f"{key} must be an integer in [0, {upper}]")
    return value


def _check_shape(receipt: object) -> dict[str, Any]:
    if not isinstance(receipt, dict) or set(receipt) != RECEIPT_KEYS:
        keys = sorted(receipt) if isinstance(receipt, dict) else type(receipt).__name__
        raise ReceiptInvalid("shape", f"receipt keys must be {sorted(RECEIPT_KEYS)}, got {keys}")
    if receipt["version"] != RECEIPT_VERSION or isinstance(receipt["version"], bool):
        raise ReceiptInvalid("unsupported_version", f"receipt version {receipt['version']!r}")
    anchor = receipt["anchor"]
    if not isinstance(anchor, dict) or set(anchor) != ANCHOR_KEYS:
        raise ReceiptInvalid("shape", f"anchor keys must be {sorted(ANCHOR_KEYS)}")
    _uint(anchor["chain_id"], "anchor.chain_id", limits.json_integer_max)
    _uint(anchor["block_number"], "anchor.block_number", limits.json_integer_max)
    _hex(anchor, "tx_hash", 32)
    try:
        if normalize_address(anchor["contract"], "contract") != anchor["contract"]:
            raise ReceiptInvalid("shape", "anchor.contract must be lowercase hex")
    except ReceiptInvalid:
        raise
    except LedgerError as error:
        raise ReceiptInvalid("shape", f"anchor.contract: {error.message}") from error
    proof = receipt["inclusion_proof"]
    if not isinstance(proof, list) or len(proof) > limits.inclusion_proof_hashes_max:
        raise ReceiptInvalid("shape", "inclusion_proof must be a list of at most 64 hashes")
    return receipt


def verify_receipt_offline(receipt: object) -> list[str]:
    """Run every offline check; return their names (OFFLINE_CHECKS) or raise ReceiptInvalid
    whose `reason` names the first check that failed. The on-chain check is the caller's."""
    checked = _check_shape(receipt)
    try:
        entry = Entry(
            _uint(checked["leaf_index"], "leaf_index", limits.tree_size_max - 2),
            checked["document"],
        )
    except ReceiptInvalid:
        raise
    except LedgerError as error:
        raise ReceiptInvalid("document", error.message) from error
    if _hex(checked, "document_hash", 32) != entry.document_hash:
        raise ReceiptInvalid("document_hash", "document_hash is not SHA-256 of the document")
    leaf = _hex(checked, "leaf_input", None)
    try:
        fields = parse_leaf_input(leaf)
    except LedgerError as error:
        raise ReceiptInvalid("leaf_input", error.message) from error
    if leaf[DOCUMENT_HASH_OFFSET : DOCUMENT_HASH_OFFSET + 32] != entry.document_hash:
        raise ReceiptInvalid("leaf_input", "the leaf input does not hold the document hash")
    if fields.sequence != entry.sequence:
        raise ReceiptInvalid("leaf_index", "leaf_index differs from the leaf's sequence number")
    if fields.kind is not entry.kind or checked["kind"] != entry.kind.document_kind:
        raise ReceiptInvalid("kind", "kind differs between receipt, document and leaf input")
    if not (fields.subject == entry.subject == _hex(checked, "subject", 32)):
        raise ReceiptInvalid("subject", "subject differs from the key the document yields")
    if fields.terms != entry.terms or leaf != entry.leaf_input():
        raise ReceiptInvalid("terms", "the leaf's terms differ from the document's terms")
    _verify_proof(checked, leaf)
    return list(OFFLINE_CHECKS)


def _verify_proof(receipt: dict[str, Any], leaf: bytes) -> None:
    tree_size = _uint(receipt["tree_size"], "tree_size", limits.tree_size_max)
    root = _hex(receipt, "root", 32)
    try:
        proof = [from_hex(item, length=32, error=LedgerError) for item in receipt["inclusion_proof"]]
        index = receipt["leaf_index"]
        computed = root_from_inclusion_proof(leaf_hash(leaf), index, tree_size, proof)
    except LedgerError as error:
        raise ReceiptInvalid("inclusion_proof", error.message) from error
    if computed != root:
        raise ReceiptInvalid("inclusion_proof", "the proof does not reproduce the root")


def receipt_leaf_hash(receipt: dict[str, Any]) -> bytes:
    """The leaf hash to pass to `LedgerAnchor.verifyInclusion` for this receipt."""
    return leaf_hash(_hex(receipt, "leaf_input", None))
