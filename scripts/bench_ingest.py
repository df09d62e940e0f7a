"""Benchmark scenario `ingest` (issue 5): finalized invoices per second through HTTP.

Setup: a fresh PostgreSQL database (TALLY_TEST_POSTGRES_URL, default postgres@127.0.0.1), migrated;
the API served as in production (`uvicorn backend.app:create_server_app --factory`) in its own
processes (`--workers`, default 2; uvloop and httptools named, so a missing one fails the run
instead of silently slowing it; no access log), no chain needed.
The load generator is this process: keep-alive http.client connections in threads, about 0.5 ms
of CPU per request (measured), a few percent of the two cores at the rates seen.
Figures:
(a) single: one invoice per request (`POST /v1/invoices` with `"finalize": true` and an
    Idempotency-Key: draft, number, terms v1, `invoice_issued` entry, journal posting, stored
    response), from concurrent keep-alive clients; invoices/s, p50 and p99 latency. Concurrent
    requests to one server process are group-committed (backend.services.group_commit).
(b) bulk: `POST /v1/invoices/bulk` (create + finalize many in one transaction); invoices/s and
    latency per request.
(c) raw: the rows the bulk run wrote (invoices, ledger entries, Merkle nodes, journal lines, head,
    series counter) inserted again with plain psycopg `executemany` into an empty copy of the
    schema, in one transaction, in the same run (best of `raw_rounds`: the raw run is short and
    swings most with the load of a shared machine); invoices/s. Goals: bulk >= 25% of raw, single
    >= 500/s.

Run: `python -m scripts.bench_ingest [--quick]`, or through scripts/bench.py (`make bench`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Json
from sqlalchemy import text
from sqlalchemy.engine import make_url

from backend.db import create_engine, migrate, session_factory, transaction
from backend.services.keys import create_key

REPO_ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("TALLY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PAYEE = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
LINES = [
    {"description": "Consulting", "quantity": 3, "unit_amount_minor": 12_500, "tax_bps": 1900},
    {"description": "Travel", "quantity": 1, "unit_amount_minor": 4_000, "tax_bps": 0},
]
# Tables the raw insert copies, in foreign-key order.
RAW_TABLES = (
    "customers",
    "invoice_series",
    "invoices",
    "ledger_entries",
    "merkle_nodes",
    "journal_lines",
    "ledger_heads",
)
server_start_s_max = 30
raw_rounds = 3  # the raw insert is short and swings with the machine's load: its best round is the baseline
request_timeout_s = 60


# --- Databases ---------------------------------------------------------------------------------
def _admin_engine() -> Any:
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)


def create_database() -> str:
    name = f"tally_bench_{uuid.uuid4().hex[:10]}"
    engine = _admin_engine()
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    return url


def drop_database(url: str) -> None:
    engine = _admin_engine()
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    engine.dispose()


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# --- The server --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """uvicorn serving backend.app:create_app in its own process group, stopped by its PID."""

    def __init__(self, database_url: str, workers: int) -> None:
        self.port = free_port()
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "RPC_URL": "http://127.0.0.1:9",  # no chain: the API does not need one to ingest
            "TALLY_LEDGER_ID": "bench",
            "TALLY_PAYEE_ADDRESS": PAYEE,
        }
        command = [sys.executable, "-m", "uvicorn", "backend.app:create_server_app", "--factory", "--host", "127.0.0.1",
                   "--port", str(self.port), "--workers", str(workers), "--log-level", "warning",
                   "--no-access-log", "--loop", "uvloop", "--http", "httptools"]  # fmt: skip
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, start_new_session=True)
        deadline = time.monotonic() + server_start_s_max
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/openapi.json")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Client:
    """A keep-alive HTTP/1.1 connection (http.client: the cheapest client, so the load generator
    takes as little of the shared CPU as possible)."""

    def __init__(self, port: int, secret: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=request_timeout_s)
        self.headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}

    def post(self, path: str, body: Any, idempotency_key: str | None = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        self.connection.request("POST", path, body=json.dumps(body), headers=headers)
        reply = self.connection.getresponse()
        return reply.status, reply.read()


# --- Runs --------------------------------------------------------------------------------------
def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_single(port: int, secret: str, customer: str, invoices: int, clients: int) -> dict[str, float]:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    per_client = invoices // clients
    barrier = threading.Barrier(clients + 1)

    def work() -> None:
        client = Client(port, secret)
        body = {"customer": customer, "lines": LINES, "finalize": True}
        mine: list[float] = []
        barrier.wait()
        for _ in range(per_client):
            started = time.perf_counter()
            status, reply = client.post("/v1/invoices", body, idempotency_key=secrets.token_hex(16))
            mine.append(time.perf_counter() - started)
            if status != 200:
                with lock:
                    failures.append(f"{status} {reply[:200]!r}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} single requests failed, first: {failures[0]}")
    return {"rate": per_client * clients / elapsed, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "count": per_client * clients}  # fmt: skip


def run_bulk(port: int, secret: str, customer: str, requests: int, batch: int) -> dict[str, float]:
    client = Client(port, secret)
    body = {"invoices": [{"customer": customer, "lines": LINES}] * batch}
    latencies = []
    started = time.perf_counter()
    for _ in range(requests):
        begun = time.perf_counter()
        status, reply = client.post("/v1/invoices/bulk", body, idempotency_key=secrets.token_hex(16))
        latencies.append(time.perf_counter() - begun)
        if status != 200:
            raise RuntimeError(f"bulk request failed: {status} {reply[:300]!r}")
    elapsed = time.perf_counter() - started
    return {"rate": requests * batch / elapsed, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "count": requests * batch}  # fmt: skip


def run_raw(source_url: str, invoice_ids: list[str]) -> dict[str, float]:
    """Insert the rows the API wrote for these invoices again, with plain psycopg, into an empty
    migrated database: the floor for writing the same data."""
    rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    with psycopg.connect(libpq_url(source_url)) as source:
        for table in RAW_TABLES:
            cursor = source.execute(f"SELECT * FROM {table}")
            columns = [column.name for column in cursor.description or []]
            rows[table] = (columns, [tuple(_adapt(value) for value in row) for row in cursor.fetchall()])
    elapsed = min(_raw_insert_once(rows) for _ in range(raw_rounds))  # the floor: the least disturbed round
    total_rows = sum(len(values) for _, values in rows.values())
    return {"rate": len(invoice_ids) / elapsed, "rows": total_rows, "rows_per_s": total_rows / elapsed}


def _raw_insert_once(rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> float:
    target_url = create_database()
    try:
        with psycopg.connect(libpq_url(target_url)) as target:
            started = time.perf_counter()
            with target.cursor() as cursor:
                for table in RAW_TABLES:
                    columns, values = rows[table]
                    statement = (f"INSERT INTO {table} ({', '.join(columns)}) "
                                 f"VALUES ({', '.join(['%s'] * len(columns))})")  # fmt: skip
                    cursor.executemany(statement, values)
            target.commit()
            return time.perf_counter() - started
    finally:
        drop_database(target_url)


def _adapt(value: Any) -> Any:
    return Json(value) if isinstance(value, dict | list) else value


def _bulk_invoice_ids(url: str) -> list[str]:
    with psycopg.connect(libpq_url(url)) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM invoices WHERE status = 'open'")]


def _admin_secret(url: str) -> str:
    engine = create_engine(url)
    with transaction(session_factory(engine)) as session:
        secret = create_key(session, role="admin", name="bench")[1]
    engine.dispose()
    return secret


def _customer(port: int, secret: str) -> str:
    status, reply = Client(port, secret).post("/v1/customers", {"name": "Bench", "currency": "usd",
                                                                 "payee_address": PAYEE})  # fmt: skip
    if status != 200:
        raise RuntimeError(f"customer: {status} {reply[:200]!r}")
    return str(json.loads(reply)["id"])


def run(quick: bool = False, workers: int = 2, clients: int = 16) -> list[tuple[str, str]]:
    single_count = 1_000 if quick else 4_000
    bulk_requests, bulk_batch = (4, 250) if quick else (10, 1_000)
    lines: list[tuple[str, str]] = []
    single_url, bulk_url = create_database(), create_database()
    try:
        for url in (single_url, bulk_url):
            with psycopg.connect(libpq_url(url)) as connection:
                connection.execute("ANALYZE")
        secret = _admin_secret(single_url)
        server = Server(single_url, workers)
        try:
            customer = _customer(server.port, secret)
            run_single(server.port, secret, customer, min(200, single_count), clients)  # warm-up
            single = run_single(server.port, secret, customer, single_count, clients)
        finally:
            server.stop()
        secret = _admin_secret(bulk_url)
        server = Server(bulk_url, workers)
        try:
            customer = _customer(server.port, secret)
            run_bulk(server.port, secret, customer, 1, 100)  # warm-up
            bulk = run_bulk(server.port, secret, customer, bulk_requests, bulk_batch)
        finally:
            server.stop()
        raw = run_raw(bulk_url, _bulk_invoice_ids(bulk_url))
    finally:
        drop_database(single_url)
        drop_database(bulk_url)
    setup = f"uvicorn x{workers} workers, {clients} clients, PostgreSQL, 2 lines + tax per invoice"
    lines.append(("setup", setup))
    lines.append((f"single: finalized invoices/s ({int(single['count'])} requests)", f"{single['rate']:.0f}/s"))
    lines.append(("single: latency p50 / p99", f"{single['p50'] * 1000:.1f} ms / {single['p99'] * 1000:.1f} ms"))
    lines.append((f"bulk: finalized invoices/s ({bulk_requests} x {bulk_batch})", f"{bulk['rate']:.0f}/s"))
    lines.append(("bulk: latency per request p50 / p99", f"{bulk['p50'] * 1000:.0f} ms / {bulk['p99'] * 1000:.0f} ms"))
    lines.append((f"raw psycopg executemany of the same rows ({int(raw['rows'])} rows)",
                  f"{raw['rate']:.0f} invoices/s ({raw['rows_per_s']:.0f} rows/s)"))  # fmt: skip
    lines.append(("bulk / raw (goal >= 25%)", f"{100 * bulk['rate'] / raw['rate']:.0f}%"))
    lines.append(("single (goal >= 500/s)", f"{single['rate']:.0f}/s"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for the single run")
    arguments = parser.parse_args()
    for label, figure in run(quick=arguments.quick, workers=arguments.workers, clients=arguments.clients):
        print(f"{label:<62} {figure}", flush=True)


if __name__ == "__main__":
    main()
