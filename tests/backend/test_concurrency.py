"""Under concurrency (real uvicorn, PostgreSQL): one idempotency key makes one invoice; writers never gap the ledger."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
from api_support import LiveServer, auth
from sqlalchemy import func, select

from backend.db import transaction
from backend.models import Invoice, JournalLine, LedgerEntry
from backend.services import ledger as ledger_service
from ledger import merkle

LINE = {"description": "Work", "quantity": 3, "unit_amount_minor": 1234, "tax_bps": 1900}


def make_customer(server: LiveServer) -> str:
    reply = httpx.post(f"{server.url}/v1/customers", headers=auth(server.admin),
                       json={"name": "C", "currency": "usd", "payee_address": "0x" + "11" * 20})  # fmt: skip
    reply.raise_for_status()
    return str(reply.json()["id"])


def test_one_idempotency_key_fifty_requests_one_invoice(live_server: LiveServer) -> None:
    customer = make_customer(live_server)
    body = {"customer": customer, "lines": [LINE], "finalize": True}
    headers = {**auth(live_server.admin), "Idempotency-Key": "order-4711"}
    barrier = threading.Barrier(50)

    def send(_: int) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            barrier.wait()
            return client.post(f"{live_server.url}/v1/invoices", json=body, headers=headers)

    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(send, range(50)))
    statuses = Counter(reply.status_code for reply in replies)
    assert set(statuses) <= {200, 409}, statuses
    conflicts = [reply.json()["error"]["code"] for reply in replies if reply.status_code == 409]
    assert set(conflicts) <= {"idempotency_request_in_flight"}
    ids = {reply.json()["id"] for reply in replies if reply.status_code == 200}
    assert len(ids) == 1
    # Afterwards the stored response is replayed byte for byte.
    again = httpx.post(f"{live_server.url}/v1/invoices", json=body, headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] in ids
    first = next(reply for reply in replies if reply.status_code == 200 and "Idempotent-Replayed" not in reply.headers)
    assert again.content == first.content
    # The same key with another body is refused, and writes nothing.
    other = httpx.post(f"{live_server.url}/v1/invoices", json={**body, "description": "other"}, headers=headers)
    assert other.status_code == 400 and other.json()["error"]["code"] == "idempotency_key_reused"
    with transaction(live_server.app.state.tally.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Invoice)) == 1
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 2  # customer + invoice


def test_eight_writers_finalizing_never_gap(live_server: LiveServer) -> None:
    writers, per_writer = 8, 12
    customers = [make_customer(live_server) for _ in range(2)]
    headers = auth(live_server.admin)
    with httpx.Client(timeout=30) as client:
        drafts = [
            client.post(f"{live_server.url}/v1/invoices", headers=headers,
                        json={"customer": customers[n % 2], "lines": [LINE]}).json()["id"]
            for n in range(writers * per_writer)
        ]  # fmt: skip
    barrier = threading.Barrier(writers)

    def finalize(writer: int) -> list[int]:
        mine = drafts[writer::writers]
        statuses = []
        with httpx.Client(timeout=30) as client:
            barrier.wait()
            for position, invoice in enumerate(mine):
                statuses.append(
                    client.post(f"{live_server.url}/v1/invoices/{invoice}/finalize", headers=headers).status_code
                )
                if position % 4 == 0:  # bulk requests contend for the same series and head locks
                    bulk = {"invoices": [{"customer": customers[writer % 2], "lines": [LINE]}] * 3}
                    statuses.append(
                        client.post(f"{live_server.url}/v1/invoices/bulk", json=bulk, headers=headers).status_code
                    )
        return statuses

    with ThreadPoolExecutor(writers) as pool:
        statuses = [status for result in pool.map(finalize, range(writers)) for status in result]
    assert set(statuses) == {200}
    bulk_invoices = writers * 3 * len(range(0, per_writer, 4))
    finalized = writers * per_writer + bulk_invoices
    sessions = live_server.app.state.tally.sessions
    ledger_id = live_server.app.state.tally.settings.ledger_id
    with transaction(sessions) as session:
        sequences = list(session.scalars(select(LedgerEntry.sequence).order_by(LedgerEntry.sequence)))
        assert sequences == list(range(len(customers) + finalized))
        log = merkle.MerkleLog()
        log.append_many(row.leaf_input for row in ledger_service.iter_entries(session, ledger_id))
        head = ledger_service.read_head(session, ledger_id)
        assert (head.size, head.root) == (log.size, log.root())
        numbers = sorted(session.scalars(select(Invoice.number_in_series).where(Invoice.series == "INV")))
        assert numbers == list(range(1, finalized + 1))
        assert session.scalar(select(func.sum(JournalLine.amount_minor))) == 0
        issued = session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == 1))
        assert issued == finalized
    balances = httpx.get(f"{live_server.url}/v1/journal/balances", headers=headers).json()
    assert balances["unbalanced"] == {}
