"""`tally verify RECEIPT --rpc-url URL`: a partner checks a receipt with no database and no Tally
server — only `ledger/` and JSON-RPC calls to the chain the receipt names.

Checks, in order: the receipt's shape, the document's hash, the leaf input (it holds the document
hash, the sequence, the kind, the subject and the terms the document gives), the inclusion proof
up to the root (all offline, `ledger.receipts.verify_receipt_offline`); then `eth_chainId` must be
the receipt's chain and `LedgerAnchor.rootAt(tree_size)` (one `eth_call`) must equal the root.

Exit codes (distinct, for scripts): 0 valid; 1 invalid (tampered or forged: a check failed, or the
chain holds a different root at that size, or no contract at that address); 2 not anchored (the
chain has no root at that size yet); 3 chain unreachable; 4 unreadable file or usage error
(including an RPC endpoint serving a different chain than the receipt names).

This module imports nothing from the database layer: a partner installs the package and runs it.
The contract is called by its fixed selector (DESIGN.md fixes the interface), so no compiled
artifacts are needed either.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from ledger import limits
from ledger.errors import ReceiptInvalid
from ledger.hexutil import to_hex
from ledger.receipts import OFFLINE_CHECKS, verify_receipt_offline

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_NOT_ANCHORED = 2
EXIT_UNREACHABLE = 3
EXIT_USAGE = 4
OUTCOMES = {
    EXIT_VALID: "valid",
    EXIT_INVALID: "invalid",
    EXIT_NOT_ANCHORED: "not_anchored",
    EXIT_UNREACHABLE: "chain_unreachable",
    EXIT_USAGE: "unreadable",
}

ROOT_AT_SELECTOR = keccak(text="rootAt(uint64)")[:4]
LATEST_SELECTOR = keccak(text="latest()")[:4]
HEAD_ANCHORED_TOPIC = keccak(text="HeadAnchored(uint64,bytes32,uint64)")
RPC_TIMEOUT_S_DEFAULT = 10.0
rpc_response_bytes_max = 16 * 1024 * 1024


class ChainUnreachable(RuntimeError):
    pass


class RpcError(RuntimeError):
    """The endpoint answered with a JSON-RPC error."""


class JsonRpc:
    """A minimal JSON-RPC client over HTTP (urllib): what the verifier and the audit need."""

    def __init__(self, url: str, timeout_s: float = RPC_TIMEOUT_S_DEFAULT) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def call(self, method: str, params: list[Any]) -> Any:
        if not self.url.startswith(("http://", "https://")):
            raise ChainUnreachable(f"{self.url}: only http(s) RPC URLs are supported")
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 (http(s) only)
                reply = json.loads(response.read(rpc_response_bytes_max))
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise ChainUnreachable(f"{self.url}: {type(error).__name__}: {str(error)[:200]}") from error
        if not isinstance(reply, dict):
            raise ChainUnreachable(f"{self.url}: not a JSON-RPC reply")
        if "error" in reply:
            raise RpcError(f"{method}: {str(reply['error'])[:300]}")
        return reply.get("result")


class LedgerAnchorReader:
    """Read-only calls to a LedgerAnchor by its fixed interface (DESIGN.md)."""

    def __init__(self, rpc: JsonRpc, contract: str) -> None:
        self.rpc = rpc
        self.contract = contract

    def chain_id(self) -> int:
        return int(self.rpc.call("eth_chainId", []), 16)

    def has_code(self) -> bool:
        return self.rpc.call("eth_getCode", [self.contract, "latest"]) not in (None, "0x", "0x0")

    def _call(self, data: bytes) -> bytes:
        result = self.rpc.call("eth_call", [{"to": self.contract, "data": to_hex(data)}, "latest"])
        return bytes.fromhex(str(result)[2:])

    def root_at(self, tree_size: int) -> bytes:
        raw = self._call(ROOT_AT_SELECTOR + abi_encode(["uint64"], [tree_size]))
        (root,) = abi_decode(["bytes32"], raw)
        return bytes(root)

    def latest(self) -> tuple[int, bytes]:
        size, root = abi_decode(["uint64", "bytes32"], self._call(LATEST_SELECTOR))
        return int(size), bytes(root)

    def head_events(self, from_block: int = 0, block_range_max: int = 10_000) -> list[dict[str, Any]]:
        """Every HeadAnchored event (tree size, root, previous size, tx, block), oldest first."""
        head = int(self.rpc.call("eth_blockNumber", []), 16)
        events: list[dict[str, Any]] = []
        start = from_block
        while start <= head:
            end = min(head, start + block_range_max - 1)
            logs = self.rpc.call(
                "eth_getLogs",
                [
                    {
                        "address": self.contract,
                        "fromBlock": hex(start),
                        "toBlock": hex(end),
                        "topics": [to_hex(HEAD_ANCHORED_TOPIC)],
                    }
                ],
            )
            for log in logs or []:
                root, previous = abi_decode(["bytes32", "uint64"], bytes.fromhex(log["data"][2:]))
                events.append(
                    {
                        "tree_size": int(log["topics"][1], 16),
                        "root": bytes(root),
                        "previous_size": int(previous),
                        "tx_hash": log["transactionHash"],
                        "block_number": int(log["blockNumber"], 16),
                    }
                )
            start = end + 1
        return events


@dataclass
class Verification:
    """What `tally verify` found: the outcome, each check run, and the facts shown to the user."""

    exit_code: int = EXIT_VALID
    reason: str = ""
    message: str = ""
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return OUTCOMES[self.exit_code]

    def finish(self, code: int, reason: str, message: str) -> Verification:
        self.exit_code, self.reason, self.message = code, reason, message
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "reason": self.reason or None,
            "message": self.message,
            "checks": [{"name": n, "ok": ok, "detail": d} for n, ok, d in self.checks],
            **self.facts,
        }


def load_receipt(path: Path) -> Any:
    """Parse the receipt file; raise ValueError (unreadable) with a plain reason."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from error
    if len(data) > limits.receipt_bytes_max:
        raise ValueError(f"{path} is larger than a receipt can be ({limits.receipt_bytes_max} bytes)")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not JSON: {error}") from error


def verify_receipt(receipt: Any, rpc_url: str, timeout_s: float = RPC_TIMEOUT_S_DEFAULT) -> Verification:
    """Run every check; the result's exit_code is one of the EXIT_* codes."""
    result = Verification()
    if not rpc_url.startswith(("http://", "https://")):
        return result.finish(EXIT_USAGE, "usage", f"--rpc-url must be an http(s) URL, got {rpc_url!r:.80}")
    try:
        verify_receipt_offline(receipt)
    except ReceiptInvalid as error:
        failed = error.reason
        for name in OFFLINE_CHECKS:
            if name == failed:
                result.checks.append((name, False, error.message))
                break
            result.checks.append((name, True, ""))
        else:
            result.checks.append((failed, False, error.message))
        return result.finish(EXIT_INVALID, failed, error.message)
    result.checks.extend((name, True, "") for name in OFFLINE_CHECKS)
    anchor = receipt["anchor"]
    result.facts.update(
        kind=receipt["kind"],
        leaf_index=receipt["leaf_index"],
        tree_size=receipt["tree_size"],
        root=receipt["root"],
        document_hash=receipt["document_hash"],
        chain_id=anchor["chain_id"],
        contract=anchor["contract"],
        tx_hash=anchor["tx_hash"],
        block_number=anchor["block_number"],
    )
    reader = LedgerAnchorReader(JsonRpc(rpc_url, timeout_s), anchor["contract"])
    try:
        return _verify_onchain(result, reader, receipt)
    except ChainUnreachable as error:
        return result.finish(EXIT_UNREACHABLE, "chain_unreachable", str(error))
    except (RpcError, ValueError) as error:
        return result.finish(EXIT_UNREACHABLE, "rpc_error", str(error))


def _verify_onchain(result: Verification, reader: LedgerAnchorReader, receipt: dict[str, Any]) -> Verification:
    anchor = receipt["anchor"]
    chain_id = reader.chain_id()
    if chain_id != anchor["chain_id"]:
        result.checks.append(("chain_id", False, f"the RPC endpoint serves chain {chain_id}"))
        return result.finish(
            EXIT_USAGE,
            "wrong_chain",
            f"the receipt was anchored on chain {anchor['chain_id']}, "
            f"but {reader.rpc.url} serves chain {chain_id}: use an RPC URL of that chain",
        )
    result.checks.append(("chain_id", True, str(chain_id)))
    if not reader.has_code():
        result.checks.append(("contract", False, "no contract code at that address"))
        return result.finish(
            EXIT_INVALID, "no_contract", f"there is no contract at {anchor['contract']} on chain {chain_id}"
        )
    result.checks.append(("contract", True, anchor["contract"]))
    onchain = reader.root_at(receipt["tree_size"])
    result.facts["onchain_root"] = to_hex(onchain)
    if onchain == b"\x00" * 32:
        result.checks.append(("anchor_root", False, f"rootAt({receipt['tree_size']}) is zero"))
        return result.finish(
            EXIT_NOT_ANCHORED,
            "not_anchored",
            f"the contract has no head of size {receipt['tree_size']}: this head was never anchored (or not yet)",
        )
    if to_hex(onchain) != receipt["root"]:
        result.checks.append(("anchor_root", False, f"rootAt({receipt['tree_size']}) = {to_hex(onchain)}"))
        return result.finish(
            EXIT_INVALID,
            "root_mismatch",
            f"the chain's root at size {receipt['tree_size']} "
            f"is {to_hex(onchain)}, not the receipt's {receipt['root']}",
        )
    result.checks.append(("anchor_root", True, f"rootAt({receipt['tree_size']}) matches"))
    return result.finish(
        EXIT_VALID,
        "",
        f"entry {receipt['leaf_index']} ({receipt['kind']}) is in the head of "
        f"size {receipt['tree_size']} anchored on chain {chain_id}",
    )
