"""Reconciliation throughput and latency (issue 7, scenario `reconcile`).

    python -m scripts.bench_reconcile [--quick]      (or: make bench SCENARIOS=reconcile)

Setup (not timed): a fresh anvil (automine), the contracts, a database (PostgreSQL when one
answers at TALLY_TEST_POSTGRES_URL or 127.0.0.1:5432, else a SQLite file;
TALLY_BENCH_DATABASE=sqlite forces SQLite), N invoices finalized in bulk and anchored, then N
payments through `InvoiceSettlement.payBatch` (64 per transaction, signed up front and sent
pipelined: about N/64 blocks).

Figures:
- booking: a fresh reconciler at its defaults reads and books all N payments (each one a
  `payment_booked` entry and journal lines, through `book_payment`): payments per second, next to
  the time to fetch the same logs and block headers alone (same ranges, same batches) in the
  same run;
- latency: the worker running as `tally run` runs it (default settings: polling every 0.25 s,
  1 confirmation), payments sent one at a time at irregular intervals; latency = the invoice
  reads `paid` minus the payment's receipt arriving at the payer (p50, p99).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from sqlalchemy import select, text

from backend.anchoring.config import AnchorerConfig
from backend.chain.anvil import running_anvil
from backend.chain.client import Deployments, connect, contract_at
from backend.chain.deploy import deploy_or_reuse
from backend.chain.signer import anchorer_account
from backend.db import create_engine, migrate, session_factory, transaction
from backend.models import Invoice, LedgerEntry
from backend.services import customers as customer_service
from backend.services import invoices as invoice_service
from backend.services import ledger as ledger_service
from backend.settings import Settings
from backend.settlement.chainlogs import ChainReader
from backend.settlement.instructions import payment_request
from backend.settlement.tokens import ensure_local_tokens
from backend.workers.anchorer import Anchorer, chain_connector
from backend.workers.reconciler import build_reconciler
from ledger.terms import Terms

LEDGER_ID = "bench-reconcile"
BATCH = 64
BULK = 1_000
GAS_PER_BATCH = 8_000_000
LINE = {"description": "Work", "quantity": 1, "unit_amount_minor": 1_000, "tax_bps": 0}
WAIT_S_MAX = 600.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def _database(directory: str) -> tuple[str, str, Any]:
    """(url, label, cleanup) — PostgreSQL if reachable, else SQLite."""
    import os
    import uuid

    admin = os.environ.get("TALLY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    if os.environ.get("TALLY_BENCH_DATABASE") == "sqlite":
        return f"sqlite:///{directory}/bench.sqlite", "SQLite", lambda: None
    try:
        engine = create_engine(admin, isolation_level="AUTOCOMMIT", pool_size=1)
        name = f"tally_bench_{uuid.uuid4().hex[:10]}"
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin.rsplit("/", 1)[0] + f"/{name}"

        def drop() -> None:
            with engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            engine.dispose()

        return url, "PostgreSQL", drop
    except Exception:  # noqa: BLE001 (no server: the embedded default)
        return f"sqlite:///{directory}/bench.sqlite", "SQLite", lambda: None


def _issue(sessions: Any, settings: Settings, count: int) -> list[str]:
    with transaction(sessions) as session:
        customer = customer_service.create_customer(session, ledger_id=LEDGER_ID, name="Bench", currency="usd",
                                                    payee_address=settings.payee_address)  # fmt: skip
        customer_id = customer.id
    ids: list[str] = []
    for start in range(0, count, BULK):
        with transaction(sessions) as session:
            rows = [invoice_service.create_invoice(session, ledger_id=LEDGER_ID, customer_id=customer_id, lines=[LINE])
                    for _ in range(min(BULK, count - start))]  # fmt: skip
            invoice_service.finalize_invoices(session, ledger_id=LEDGER_ID, invoices=rows)
            ids.extend(row.id for row in rows)
    return ids


def _anchor(anchorer: Anchorer, sessions: Any) -> int:
    deadline = time.monotonic() + WAIT_S_MAX
    while True:
        anchorer._step()
        with transaction(sessions) as session:
            size = ledger_service.read_head(session, LEDGER_ID).size
            top = session.execute(text("SELECT max(tree_size) FROM anchor_transactions WHERE status='confirmed'"))
            anchored = top.scalar() or 0
        if anchored == size:
            return int(size)
        if time.monotonic() > deadline:
            raise RuntimeError("not anchored in time")
        time.sleep(0.02)


def _requests(sessions: Any, invoice_ids: list[str], tree_size: int) -> list[tuple[Any, ...]]:
    requests = []
    with transaction(sessions) as session:
        rows = {row.id: row for row in session.scalars(select(Invoice).where(Invoice.id.in_(invoice_ids)))}
        for invoice_id in invoice_ids:
            row = rows[invoice_id]
            entry = session.scalars(select(LedgerEntry).where(LedgerEntry.sequence == row.issued_sequence,
                                                              LedgerEntry.ledger_id == LEDGER_ID)).one()  # fmt: skip
            terms = Terms.from_document(row.terms)
            proof = ledger_service.inclusion_proof(session, LEDGER_ID, entry.sequence, tree_size)
            requests.append(payment_request(terms, invoice_key=bytes(row.invoice_key), kind=1,
                                            document_hash=bytes(entry.document_hash), leaf_index=entry.sequence,
                                            tree_size=tree_size, amount=terms.amount_due, proof=proof))  # fmt: skip
    return requests


def _send_pipelined(w3: Any, payer: Any, calls: list[Any]) -> list[Any]:
    """Sign every call with consecutive nonces, send them all, then wait for every receipt."""
    nonce = w3.eth.get_transaction_count(payer.address)
    fee = {"maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9, "chainId": w3.eth.chain_id}
    hashes = []
    for offset, call in enumerate(calls):
        transaction_ = call.build_transaction({"from": payer.address, "nonce": nonce + offset, "gas": GAS_PER_BATCH,
                                               **fee})  # fmt: skip
        hashes.append(w3.eth.send_raw_transaction(payer.sign_transaction(transaction_).raw_transaction))
    receipts = [
        w3.eth.wait_for_transaction_receipt(tx_hash, timeout=WAIT_S_MAX, poll_latency=0.01) for tx_hash in hashes
    ]
    if any(receipt["status"] != 1 for receipt in receipts):
        raise RuntimeError("a benchmark payment reverted")
    return receipts


def _fetch_alone(rpc_url: str, settlement: str, first: int, last: int, payees: list[str]) -> tuple[float, int]:
    """The same reads the reconciler makes, without booking: logs and headers, same ranges."""
    reader = ChainReader.connect(rpc_url, settlement, 30)
    started = time.perf_counter()
    count = 0
    for start in range(first, last + 1, 2_000):
        logs, headers = reader.scan(start, min(last, start + 1_999), payees, payees_per_filter_max=500)
        reader.headers({item.block_number for item in logs} - set(headers))
        count += len(logs)
    return time.perf_counter() - started, count


def _latency(settings: Settings, engine: Any, sessions: Any, deployments: Any, w3: Any, payer: Any,
             requests: list[tuple[Any, ...]], invoice_ids: list[str], settlement: Any) -> list[float]:  # fmt: skip
    reconciler = build_reconciler(settings, engine, sessions, deployments)  # default settings
    stop = threading.Event()
    thread = threading.Thread(target=reconciler.run, args=(stop,), daemon=True)
    thread.start()
    samples = []
    try:
        for request, invoice_id in zip(requests, invoice_ids, strict=True):
            time.sleep(random.uniform(0.05, 0.35))
            (receipt,) = _send_pipelined(w3, payer, [settlement.functions.pay(request)])
            mined = time.monotonic()
            del receipt
            deadline = mined + WAIT_S_MAX
            while True:
                with transaction(sessions) as session:
                    status = session.scalar(select(Invoice.status).where(Invoice.id == invoice_id))
                if status == "paid":
                    samples.append(time.monotonic() - mined)
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{invoice_id} not booked in time")
                time.sleep(0.002)
    finally:
        stop.set()
        thread.join(timeout=30)
    return samples


def run(quick: bool = False) -> list[tuple[str, str]]:
    count = 500 if quick else 5_000
    latency_count = 20 if quick else 100
    random.seed(7)
    with tempfile.TemporaryDirectory(prefix="tally-bench-reconcile-") as directory, running_anvil() as anvil:
        url, database, cleanup = _database(directory)
        try:
            return _run(count, latency_count, url, database, anvil.url, Path(directory))
        finally:
            cleanup()


def _run(
    count: int, latency_count: int, url: str, database: str, rpc_url: str, data_dir: Path
) -> list[tuple[str, str]]:
    payee = Account.create().address.lower()
    settings = Settings(database_url=url, rpc_url=rpc_url, ledger_id=LEDGER_ID, data_dir=data_dir, payee_address=payee)
    migrate(url)
    w3 = connect(rpc_url, 60)
    owner = anchorer_account(settings, w3.eth.chain_id)
    deployments = Deployments(settings.deployments_file)
    addresses = deploy_or_reuse(w3, owner, deployments)
    engine = create_engine(url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        ensure_local_tokens(session, w3.eth.chain_id, addresses)
    invoice_ids = _issue(sessions, settings, count + latency_count)
    anchor_config = AnchorerConfig.from_settings(settings, poll_s=0.02, interval_s=0.01)
    anchorer = Anchorer(sessions=sessions, engine=engine, ledger_id=LEDGER_ID, config=anchor_config,
                        connect_chain=chain_connector(settings, deployments, anchor_config))  # fmt: skip
    tree_size = _anchor(anchorer, sessions)
    anchorer.close()
    requests = _requests(sessions, invoice_ids, tree_size)
    payer = Account.create()
    w3.provider.make_request("anvil_setBalance", [payer.address, hex(10**22)])  # type: ignore[arg-type]
    token = contract_at(w3, "TestStablecoin", addresses["TestStablecoin"])
    settlement = contract_at(w3, "InvoiceSettlement", addresses["InvoiceSettlement"])
    total = sum(int(request[6]) for request in requests)
    _send_pipelined(w3, owner, [token.functions.mint(payer.address, total)])
    _send_pipelined(w3, payer, [token.functions.approve(settlement.address, total)])
    first_block = w3.eth.block_number + 1
    sent = time.perf_counter()
    batches = [requests[start : min(start + BATCH, count)] for start in range(0, count, BATCH)]
    _send_pipelined(w3, payer, [settlement.functions.payBatch(batch) for batch in batches])
    send_s = time.perf_counter() - sent
    last_block = w3.eth.block_number

    fetch_s, fetched = _fetch_alone(rpc_url, addresses["InvoiceSettlement"], first_block, last_block, [payee])
    reconciler = build_reconciler(settings, engine, sessions, deployments, start_block=first_block)
    started = time.perf_counter()
    while True:
        reconciler.step()
        if reconciler.last_state == "idle":
            break
        if reconciler.last_state.startswith("error"):
            raise RuntimeError(f"reconciler failed: {reconciler.last_state}")
    book_s = time.perf_counter() - started
    reconciler.close()
    with transaction(sessions) as session:
        paid = session.scalar(text("SELECT count(*) FROM invoices WHERE status = 'paid'"))
        double = session.scalar(text("SELECT count(*) - count(DISTINCT invoice_id) FROM payments"))
    if paid != count or double or fetched != count:
        raise RuntimeError(f"booked {paid} of {count} payments ({double} doubles, {fetched} logs fetched)")

    samples = _latency(settings, engine, sessions, deployments, w3, payer, requests[count:], invoice_ids[count:],
                       settlement)  # fmt: skip
    engine.dispose()
    blocks = last_block - first_block + 1
    return [
        (f"setup: {count:,} payments via payBatch ({blocks} blocks, pipelined)", f"{send_s:.1f} s"),
        (f"book {count:,} payments, reconciler defaults ({database})",
         f"{count / book_s:,.0f} payments/s ({book_s:.2f} s)"),
        ("fetch the same logs and headers alone", f"{fetched / fetch_s:,.0f} logs/s ({fetch_s:.2f} s)"),
        ("booking / fetching alone", f"{book_s / fetch_s:.0f}x"),
        (f"latency mined -> invoice paid, defaults, p50 ({latency_count} payments)",
         f"{statistics.median(samples) * 1000:,.0f} ms"),
        ("latency mined -> invoice paid, defaults, p99", f"{_percentile(samples, 0.99) * 1000:,.0f} ms"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    for label, figure in run(quick=parser.parse_args().quick):
        print(f"reconcile  {label:<58} {figure}", flush=True)


if __name__ == "__main__":
    main()
