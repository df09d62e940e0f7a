"""Helpers for the contract tests: artifacts, deployment, revert decoding, and a model ledger.

Everything runs against a real anvil with the committed artifacts (contracts/artifacts). Reverts
are asserted by custom-error name: web3 7 raises ContractCustomError carrying the revert data,
which `decode_revert` matches against the errors of every artifact's ABI.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from backend.chain.anvil import running_anvil as backend_anvil
from backend.chain.client import Revert, decode_revert
from ledger.entries import EntryKind, leaf_input
from ledger.merkle import MerkleLog, leaf_hash
from ledger.terms import Terms

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACT_ROOT = REPO_ROOT / "contracts" / "artifacts"
ZERO_ADDRESS = "0x" + "00" * 20
CANCELLED = 2**32 - 1
RECEIPT_TIMEOUT_S_MAX = 30.0


# --- anvil --------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_anvil() -> Iterator[str]:
    """An anvil on a free loopback port for the duration (backend.chain.anvil), stopped by its PID.
    Blocks hold 30M gas so the batch and 1M-leaf benchmarks fit in one transaction."""
    with backend_anvil(extra_args=("--gas-limit", "30000000")) as anvil:
        yield anvil.url


def fast_web3(url: str) -> Web3:
    """A Web3 for a local anvil without the middlewares that cost an extra request per call
    (validation asks for eth_chainId every time; no ENS names are used here)."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    w3.middleware_onion.remove("validation")
    w3.middleware_onion.remove("ens_name_to_address")
    return w3


@contextlib.contextmanager
def snapshot(w3: Web3) -> Iterator[None]:
    """Everything the block does to the chain is undone afterwards (evm_snapshot/evm_revert)."""
    snapshot_id = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        yield
    finally:
        reply = w3.provider.make_request("evm_revert", [snapshot_id])
        if reply.get("result") is not True:
            raise RuntimeError(f"evm_revert failed: {reply}")


def set_next_timestamp(w3: Web3, timestamp: int) -> None:
    w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


def latest_timestamp(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


# --- artifacts, deployment, transactions --------------------------------------------------------


@cache
def artifact(name: str) -> dict[str, Any]:
    return json.loads((ARTIFACT_ROOT / f"{name}.json").read_text(encoding="utf-8"))


def wait(w3: Web3, tx_hash: bytes) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S_MAX, poll_latency=0.01)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {tx_hash.hex()} reverted")
    return receipt


def deploy(w3: Web3, name: str, *args: Any, sender: str) -> Contract:
    data = artifact(name)
    factory = w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
    receipt = wait(w3, factory.constructor(*args).transact({"from": sender}))
    return w3.eth.contract(address=receipt["contractAddress"], abi=data["abi"])


def send(w3: Web3, call: Any, sender: str, value: int = 0) -> Any:
    """Send a contract call as a transaction and return its receipt (status 1 enforced)."""
    return wait(w3, call.transact({"from": sender, "value": value}))


def revert_of(call: Any, tx: dict[str, Any]) -> Revert:
    """Run `call` as a transaction from `tx`; it must revert; return the decoded error.

    web3 estimates gas first, so a reverting call raises before anything is mined."""
    try:
        call.transact(tx)
    except ContractPanicError as error:
        return decode_revert(error.data if isinstance(error.data, str) else None)
    except ContractCustomError as error:
        return decode_revert(error.data if isinstance(error.data, str) else None)
    except ContractLogicError as error:
        if isinstance(error.data, str) and len(error.data) >= 10:
            return decode_revert(error.data)
        return Revert("Error", (error.message,))
    raise AssertionError("expected a revert, the transaction went through")


def expect_revert(call: Any, tx: dict[str, Any], name: str, *args: Any) -> Revert:
    found = revert_of(call, tx)
    assert found.name == name, f"expected {name}, got {found}"
    if args:
        assert found.args == tuple(args), f"{name}: expected args {args}, got {found.args}"
    return found


def checksum(address: str) -> str:
    return to_checksum_address(address)


def terms_tuple(terms: Terms) -> tuple[Any, ...]:
    values = list(terms.abi_tuple())
    for position in (0, 1, 10):
        values[position] = checksum(values[position])
    return tuple(values)


# --- a model ledger -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Invoice:
    """One terms-carrying entry in the model ledger."""

    key: bytes
    kind: EntryKind
    document_hash: bytes
    terms: Terms
    index: int


@dataclass
class Book:
    """The ledger side of a test: a MerkleLog of real leaf inputs (ledger.entries)."""

    log: MerkleLog = field(default_factory=MerkleLog)
    anchored_size: int = 0

    def add_filler(self, count: int, *, raw: bool = False) -> None:
        """`count` entries without terms (customer_created) with random subjects; `raw` appends
        random 160-byte leaf inputs instead (same tree shape, 20x faster, for Merkle-only tests)."""
        if raw:
            self.log.append_many(secrets.token_bytes(160) for _ in range(count))
            return
        self.log.append_many(
            leaf_input(
                EntryKind.CUSTOMER_CREATED, self.log.size + i, secrets.token_bytes(32), secrets.token_bytes(32), None
            )
            for i in range(count)
        )

    def add_invoice(
        self, terms: Terms, *, key: bytes | None = None, kind: EntryKind = EntryKind.INVOICE_ISSUED
    ) -> Invoice:
        invoice = Invoice(
            key=key if key is not None else secrets.token_bytes(32),
            kind=kind,
            document_hash=secrets.token_bytes(32),
            terms=terms,
            index=self.log.size,
        )
        self.log.append(leaf_input(kind, invoice.index, invoice.key, invoice.document_hash, terms))
        return invoice

    def leaf_hash(self, invoice: Invoice) -> bytes:
        return leaf_hash(leaf_input(invoice.kind, invoice.index, invoice.key, invoice.document_hash, invoice.terms))

    def request(
        self,
        invoice: Invoice,
        amount: int,
        *,
        tree_size: int | None = None,
        terms: Terms | None = None,
        proof: Sequence[bytes] | None = None,
        kind: int | None = None,
    ) -> tuple[Any, ...]:
        """The PaymentRequest tuple for `invoice` (fields may be overridden to tamper)."""
        size = tree_size if tree_size is not None else self.anchored_size
        return (
            invoice.key,
            int(kind if kind is not None else invoice.kind),
            invoice.document_hash,
            terms_tuple(terms if terms is not None else invoice.terms),
            invoice.index,
            size,
            amount,
            list(proof) if proof is not None else self.log.inclusion_proof(invoice.index, size),
        )

    def anchor(self, w3: Web3, anchor: Contract, anchorer: str, updates: Sequence[tuple[bytes, int]] = ()) -> Any:
        """Anchor the log's current head with a consistency proof from the last anchored one."""
        size = self.log.size
        proof = self.log.consistency_proof(self.anchored_size, size) if self.anchored_size else []
        receipt = send(w3, anchor.functions.anchor(size, self.log.root(), proof, list(updates)), anchorer)
        self.anchored_size = size
        return receipt


def make_terms(payee: str, token: str, amount_due: int, due_date: int, **overrides: Any) -> Terms:
    base = Terms(payee=payee.lower(), token=token.lower(), amount_due=amount_due, due_date=due_date)
    return replace(base, **overrides) if overrides else base
