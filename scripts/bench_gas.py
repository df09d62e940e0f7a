"""Gas of the contracts against baselines measured in the same anvil run (issue 4, scenario `gas`).

    python -m scripts.bench_gas [--quick]      (or: make bench SCENARIOS=gas)

Figures are whole-transaction gas (receipt gasUsed: intrinsic 21,000 + calldata + execution), so
a proof's calldata counts against the contract as it does for the user paying for it.

- Anchor: LedgerAnchor.anchor at tree sizes 1 (first head, no proof), 1,000 (proof from 1) and
  1,000,000 next to BaselineAnchor (stores the root under its size and emits an event, nothing
  else). At 1,000,000 the head extends a previous head of 999,000 (one anchoring batch of 1,000
  entries), and, as the longest proof, 999,999 (one entry). Goal <= 1.6x at 1,000,000.
- Pay: InvoiceSettlement.pay with an inclusion proof in a tree of 2**20 leaves (20 proof nodes),
  first payment of the invoice, next to a bare ERC-20 transferFrom of the same token between the
  same accounts (payee already holding tokens, finite allowance in both). Goal <= 2.0x.
- Batch: payBatch of 20 such invoices to one payee, gas per invoice against the single payment.
  Goal <= 0.6x.
"""

from __future__ import annotations

import argparse
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from backend.chain.anvil import running_anvil
from ledger.entries import EntryKind, leaf_input
from ledger.merkle import MerkleLog
from ledger.terms import Terms

ARTIFACT_ROOT = Path(__file__).resolve().parent.parent / "contracts" / "artifacts"
UNIT = 10**6
BATCH_SIZE = 20
PAY_TREE_SIZE = 2**20


def _artifact(name: str) -> dict[str, Any]:
    return json.loads((ARTIFACT_ROOT / f"{name}.json").read_text(encoding="utf-8"))


class Chain:
    """Deploys and sends through anvil's unlocked accounts."""

    def __init__(self, url: str) -> None:
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
        self.w3.middleware_onion.remove("validation")  # one eth_chainId request less per call
        self.accounts = self.w3.eth.accounts

    def receipt(self, call: Any, sender: str, value: int = 0) -> Any:
        tx_hash = call.transact({"from": sender, "value": value})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
        if receipt["status"] != 1:
            raise RuntimeError(f"benchmark transaction reverted: {call.fn_name}")
        return receipt

    def gas(self, call: Any, sender: str, value: int = 0) -> int:
        return int(self.receipt(call, sender, value)["gasUsed"])

    def deploy(self, name: str, *args: Any) -> Contract:
        data = _artifact(name)
        factory = self.w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
        receipt = self.receipt(factory.constructor(*args), self.accounts[0])
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=data["abi"])

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        snapshot_id = self.w3.provider.make_request("evm_snapshot", [])["result"]
        try:
            yield
        finally:
            self.w3.provider.make_request("evm_revert", [snapshot_id])


def _filler_inputs(start: int, count: int) -> Iterator[bytes]:
    """Leaf inputs of the right shape (160 bytes), cheap to make by the million."""
    for sequence in range(start, start + count):
        word = sequence.to_bytes(32, "big")
        yield word * 5


def _anchor_figures(chain: Chain, log_max: int, sizes: tuple[int, int, int, int]) -> list[tuple[str, str]]:
    """Anchor gas at sizes[0], sizes[1] and sizes[3], the last extending from sizes[2]."""
    admin, anchorer = chain.accounts[0], chain.accounts[1]
    anchor = chain.deploy("LedgerAnchor", admin, anchorer)
    baseline = chain.deploy("BaselineAnchor")
    log = MerkleLog()
    log.append_many(_filler_inputs(0, log_max))
    first, second, previous, last = sizes

    def anchor_gas(size: int, old: int) -> int:
        proof = log.consistency_proof(old, size) if old else []
        return chain.gas(anchor.functions.anchor(size, log.root(size), proof, []), anchorer)

    def baseline_gas(size: int) -> int:
        return chain.gas(baseline.functions.anchor(size, log.root(size)), admin)

    lines: list[tuple[str, str]] = []
    measured = [(first, 0), (second, first)]
    for size, old in measured:
        gas, base = anchor_gas(size, old), baseline_gas(size)
        lines.append(_ratio_line(f"anchor at {size:,} (from {old:,}) / baseline", gas, base))
    anchor_gas(previous, second)
    for old in (previous, last - 1):
        with chain.snapshot():
            if old != previous:
                anchor_gas(old, previous)
            gas = anchor_gas(last, old)
            proof_nodes = len(log.consistency_proof(old, last))
            base = baseline_gas(last)
        goal = "  goal <= 1.6x" if old == previous else ""
        label = f"anchor at {last:,} (from {old:,}, {proof_nodes} nodes) / baseline"
        lines.append(_ratio_line(label, gas, base, goal))
    return lines


def _terms(payee: str, token: str, amount: int) -> Terms:
    return Terms(payee=payee.lower(), token=token.lower(), amount_due=amount, due_date=2**40)


def _terms_tuple(terms: Terms) -> tuple[Any, ...]:
    values = list(terms.abi_tuple())
    for position in (0, 1, 10):
        values[position] = to_checksum_address(values[position])
    return tuple(values)


def _pay_figures(chain: Chain, tree_size: int) -> list[tuple[str, str]]:
    admin, anchorer, payer, payee, spender = chain.accounts[:5]
    anchor = chain.deploy("LedgerAnchor", admin, anchorer)
    settlement = chain.deploy("InvoiceSettlement", anchor.address)
    token = chain.deploy("TestStablecoin", admin)
    chain.receipt(token.functions.mint(payer, 10**9 * UNIT), admin)
    chain.receipt(token.functions.mint(payee, UNIT), admin)  # the payee already holds tokens
    chain.receipt(token.functions.approve(settlement.address, 10**9 * UNIT), payer)
    chain.receipt(token.functions.approve(spender, 10**9 * UNIT), payer)

    invoices = [
        (secrets.token_bytes(32), secrets.token_bytes(32), _terms(payee, token.address, 100 * UNIT))
        for _ in range(1 + BATCH_SIZE)
    ]
    filler = tree_size - len(invoices)
    log = MerkleLog()
    log.append_many(_filler_inputs(0, filler))
    log.append_many(
        leaf_input(EntryKind.INVOICE_ISSUED, filler + i, key, document_hash, terms)
        for i, (key, document_hash, terms) in enumerate(invoices)
    )
    chain.receipt(anchor.functions.anchor(tree_size, log.root(), [], []), anchorer)

    def request(position: int) -> tuple[Any, ...]:
        key, document_hash, terms = invoices[position]
        index = filler + position
        return (
            key,
            int(EntryKind.INVOICE_ISSUED),
            document_hash,
            _terms_tuple(terms),
            index,
            tree_size,
            terms.amount_due,
            log.inclusion_proof(index, tree_size),
        )

    bare = chain.gas(token.functions.transferFrom(payer, payee, 100 * UNIT), spender)
    single = chain.gas(settlement.functions.pay(request(0)), payer)
    batch = chain.gas(settlement.functions.payBatch([request(1 + i) for i in range(BATCH_SIZE)]), payer)
    proof_nodes = len(request(0)[7])
    return [
        _ratio_line(
            f"pay, 2**{tree_size.bit_length() - 1} leaves ({proof_nodes} nodes) / ERC-20 transferFrom",
            single,
            bare,
            "  goal <= 2.0x",
        ),
        _ratio_line(
            f"payBatch of {BATCH_SIZE}, per invoice / single pay", batch // BATCH_SIZE, single, "  goal <= 0.6x"
        ),
    ]


def _ratio_line(label: str, gas: int, base: int, goal: str = "") -> tuple[str, str]:
    return label, f"{gas / base:.2f}x  ({gas:,} / {base:,} gas){goal}"


def run(quick: bool = False) -> list[tuple[str, str]]:
    """The gas table; `quick` uses 10,000 and 2**12 leaves instead of 1,000,000 and 2**20."""
    anchor_sizes = (1, 1_000, 9_000, 10_000) if quick else (1, 1_000, 999_000, 1_000_000)
    pay_tree_size = 2**12 if quick else PAY_TREE_SIZE
    with running_anvil() as anvil:
        chain = Chain(anvil.url)
        lines = _anchor_figures(chain, anchor_sizes[-1], anchor_sizes)
        lines += _pay_figures(chain, pay_tree_size)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller trees, for a smoke run")
    arguments = parser.parse_args(argv)
    for label, figure in run(quick=arguments.quick):
        print(f"{label:<58} {figure}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
