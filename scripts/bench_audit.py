"""Audit throughput next to bare hashing of the same bytes, measured in the same run (issue 6,
scenario `audit`).

    python -m scripts.bench_audit [--quick]      (or: make bench SCENARIOS=audit)

A ledger of 100,000 entries (quick: 10,000) is written to a SQLite database (the embedded
default) through `backend.services.ledger.append_entries`: a mix of customers, invoices with
terms, credit notes with terms, payments and voids, like the API writes. Then:

- `tally audit` over that database (offline: no chain; the chain adds one `rootAt` per anchored
  head, not per entry): every document validated and canonicalized, its hash, its leaf input and
  leaf hash recomputed and compared, the tree rebuilt, the stored nodes and head compared, the
  invoices replayed;
- the same over an export bundle (`tally export` first, not timed);
- the baseline: SHA-256 of the same canonical document bytes and of the same leaf inputs (with
  the 0x00 prefix), the two hashes per entry the audit cannot avoid, over bytes already in memory.

The ratio says how much the audit costs on top of the hashing it must do.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from backend import audit as auditing
from backend.anchoring.export import write_bundle
from backend.db import create_engine, migrate, session_factory, transaction
from backend.models import LedgerEntry
from backend.services import ledger as ledger_service
from ledger.canonical import canonical_json
from ledger.entries import EntryKind, build_document
from ledger.terms import Terms

LEDGER_ID = "bench-audit"
CREATED = 1_767_225_600
PAYEE = "0x" + "11" * 20
TOKEN = "0x" + "22" * 20
BATCH = 5_000


def _documents(count: int) -> list[dict[str, Any]]:
    """`count` documents: per invoice a group of issued, credit note, payment, and now and then a void."""
    ledger_key = ledger_service.ledger_key(LEDGER_ID)
    common = {"ledger_id": ledger_key, "created": CREATED}
    documents: list[dict[str, Any]] = []
    number = 0
    while len(documents) < count:
        number += 1
        invoice = {"invoice_id": f"inv_{number:08d}", "salt": secrets.token_bytes(32)}

        def terms(version: int, amount: int) -> Terms:
            return Terms(payee=PAYEE, token=TOKEN, amount_due=amount, due_date=CREATED + 86_400, version=version)

        group = [
            build_document(EntryKind.CUSTOMER_CREATED, **common, customer_id=f"cus_{number:08d}", currency="usd"),
            build_document(
                EntryKind.INVOICE_ISSUED,
                **common,
                **invoice,
                customer_id=f"cus_{number:08d}",
                currency="usd",
                lines=[
                    {
                        "description": "Work",
                        "quantity": 2,
                        "unit_amount_minor": 5_000,
                        "tax_bps": 1_000,
                        "net_minor": 10_000,
                        "tax_minor": 1_000,
                    }
                ],
                subtotal_minor=10_000,
                tax_minor=1_000,
                total_minor=11_000,
                due_date=CREATED + 86_400,
                token_decimals=2,
                terms=terms(1, 11_000),
            ),
            build_document(
                EntryKind.CREDIT_NOTE,
                **common,
                **invoice,
                credit_note_id=f"cn_{number:08d}",
                currency="usd",
                amount_minor=1_000,
                applied_minor=1_000,
                to_customer_credit_minor=0,
                reason="goodwill",
                terms=terms(2, 10_000),
            ),
            build_document(
                EntryKind.PAYMENT_BOOKED,
                **common,
                **invoice,
                payment_id=f"pay_{number:08d}",
                currency="usd",
                amount_minor=4_000,
                source="offchain",
                reference=f"wire {number}",
            ),
        ]
        if number % 10 == 0:
            group.append(build_document(EntryKind.INVOICE_VOIDED, **common, **invoice, reason="duplicate"))
        documents.extend(group)
    return documents[:count]


def _build(url: str, count: int) -> list[dict[str, Any]]:
    migrate(url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    documents = _documents(count)
    for start in range(0, count, BATCH):
        with transaction(sessions) as session:
            ledger_service.append_entries(
                session,
                ledger_id=LEDGER_ID,
                entries=[ledger_service.NewEntry(document) for document in documents[start : start + BATCH]],
            )
    engine.dispose()
    return documents


def _hashed_bytes(url: str, documents: list[dict[str, Any]]) -> tuple[list[bytes], list[bytes]]:
    """The bytes the audit must hash: each canonical document, and each stored leaf input with
    its 0x00 prefix (read back from the database)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            leaves = [
                b"\x00" + bytes(row[0])
                for row in connection.execute(
                    select(LedgerEntry.leaf_input)
                    .where(LedgerEntry.ledger_id == LEDGER_ID)
                    .order_by(LedgerEntry.sequence)
                )
            ]
    finally:
        engine.dispose()
    return [canonical_json(document) for document in documents], leaves


def _bare_hashing(canonical: list[bytes], leaves: list[bytes]) -> float:
    sha = hashlib.sha256
    started = time.perf_counter()
    for data in canonical:
        sha(data).digest()
    for data in leaves:
        sha(data).digest()
    return time.perf_counter() - started


def _audit_database(url: str, workers: int) -> tuple[float, auditing.AuditReport]:
    engine = create_engine(url)
    try:
        started = time.perf_counter()
        report = auditing.run_audit(
            auditing.database_input(session_factory(engine), LEDGER_ID), chain=None, workers=workers
        )
        return time.perf_counter() - started, report
    finally:
        engine.dispose()


def _audit_bundle(url: str, directory: Path, workers: int) -> tuple[float, auditing.AuditReport]:
    engine = create_engine(url)
    try:
        write_bundle(session_factory(engine), LEDGER_ID, directory)
    finally:
        engine.dispose()
    started = time.perf_counter()
    report = auditing.run_audit(auditing.bundle_input(directory), chain=None, workers=workers)
    return time.perf_counter() - started, report


def run(quick: bool = False) -> list[tuple[str, str]]:
    count = 10_000 if quick else 100_000
    workers = min(os.cpu_count() or 1, auditing.workers_max)
    with tempfile.TemporaryDirectory(prefix="tally-bench-audit-") as directory:
        url = f"sqlite:///{directory}/ledger.sqlite"
        documents = _build(url, count)
        canonical, leaves = _hashed_bytes(url, documents)
        hashing_s = min(_bare_hashing(canonical, leaves) for _ in range(3))
        single_s, single_report = _audit_database(url, 1)
        parallel_s, parallel_report = _audit_database(url, workers)
        bundle_s, bundle_report = _audit_bundle(url, Path(directory) / "bundle", workers)
    for report in (single_report, parallel_report, bundle_report):
        # The ledger is written without invoice rows (no API), so only invoice_missing may show.
        findings = [finding for finding in report.findings if finding.code != "invoice_missing"]
        if findings or report.entries != count:
            raise RuntimeError(f"the benchmark ledger did not audit clean: {findings[:3]}")
    return [
        (f"audit, database, 1 process ({count:,} entries)", f"{count / single_s:,.0f} entries/s ({single_s:.2f} s)"),
        (f"audit, database, {workers} processes", f"{count / parallel_s:,.0f} entries/s ({parallel_s:.2f} s)"),
        (f"audit, export bundle, {workers} processes", f"{count / bundle_s:,.0f} entries/s ({bundle_s:.2f} s)"),
        ("bare SHA-256 of the same bytes (document + leaf)", f"{count / hashing_s:,.0f} entries/s ({hashing_s:.3f} s)"),
        ("audit / bare hashing (database, 1 process)", f"{single_s / hashing_s:.0f}x"),
        (f"audit / bare hashing (database, {workers} processes)", f"{parallel_s / hashing_s:.0f}x"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    for label, figure in run(quick=parser.parse_args().quick):
        print(f"audit      {label:<58} {figure}")


if __name__ == "__main__":
    main()
