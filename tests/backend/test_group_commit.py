"""Group commit: concurrent finalizing requests share one transaction, and each request still gets
exactly what it would get alone (its invoice, its refusal, its replay), on PostgreSQL and SQLite."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from api_support import Api
from sqlalchemy import func, select

from backend.db import transaction
from backend.models import IdempotencyRecord, Invoice, LedgerEntry
from backend.services import ledger as ledger_service
from backend.services.group_commit import ALONE, GroupCommit, Job
from backend.services.journal import unbalanced_currencies
from backend.services.keys import revoke_key
from ledger import merkle

LINE = {"description": "Work", "quantity": 1, "unit_amount_minor": 10_000, "tax_bps": 1000}  # 11,000 with tax
queue_wait_s_max = 20


# --- The mechanism -----------------------------------------------------------------------------
def _submit_all(committer: GroupCommit[int], payloads: Sequence[int]) -> list[Any]:
    """Submit every payload while the writer is held: one group. Each one's value or error."""
    with committer.held():
        futures = [committer.submit(payload) for payload in payloads]
        _wait_for(lambda: committer.queued == len(payloads))
    return [future.exception(timeout=queue_wait_s_max) or future.result() for future in futures]


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + queue_wait_s_max
    while not condition():
        assert time.monotonic() < deadline, "the requests never queued"
        time.sleep(0.005)


def test_jobs_queued_behind_a_writer_are_written_as_one_group() -> None:
    groups: list[list[int]] = []

    def write(jobs: Sequence[Job[int]]) -> None:
        groups.append([job.payload for job in jobs])
        for job in jobs:
            if job.payload == 3:
                job.fail(ValueError("three is refused"))
            elif job.payload != 4:  # 4 is left unfinished: it must run alone
                job.succeed(job.payload * 10)

    committer = GroupCommit(write)
    results = _submit_all(committer, [1, 2, 3, 4, 5])
    assert len(groups) == 1 and sorted(groups[0]) == [1, 2, 3, 4, 5]
    assert results[:2] == [10, 20] and results[4] == 50
    assert isinstance(results[2], ValueError) and results[3] is ALONE
    assert committer.submit(6).result(timeout=queue_wait_s_max) == 60  # a lone job: no waiting for company
    assert (committer.groups, committer.jobs) == (2, 6)


def test_a_failing_group_sends_every_job_to_run_alone() -> None:
    def write(jobs: Sequence[Job[int]]) -> None:
        jobs[0].fail(ValueError("refused before the failure"))
        raise RuntimeError("the database went away")

    results = _submit_all(GroupCommit(write), [1, 2, 3])
    assert sum(isinstance(result, ValueError) for result in results) == 1
    assert sum(result is ALONE for result in results) == 2


def test_groups_are_bounded() -> None:
    sizes: list[int] = []

    def write(jobs: Sequence[Job[int]]) -> None:
        sizes.append(len(jobs))
        for job in jobs:
            job.succeed(job.payload)

    results = _submit_all(GroupCommit(write, batch_max=3), list(range(8)))
    assert results == list(range(8)) and sorted(sizes) == [2, 3, 3]
    with pytest.raises(ValueError, match="batch_max"):
        GroupCommit(write, batch_max=0)


# --- Through the API ---------------------------------------------------------------------------
def test_a_group_of_requests_gets_what_each_would_get_alone(any_api: Api) -> None:
    api = any_api
    customer = api.customer()["id"]
    limited = api.customer(credit_limit_minor=15_000)["id"]
    euro = api.customer(currency="eur")["id"]
    body = {"customer": customer, "lines": [LINE], "finalize": True}
    done = api.post("/v1/invoices", body, headers={"Idempotency-Key": "done-before"})  # also creates the group
    assert done.status_code == 200
    backoffice = api.post("/v1/api_keys", {"role": "backoffice", "name": "soon revoked"}).json()
    assert api.post("/v1/invoices", {**body, "finalize": False}, key=backoffice["secret"]).status_code == 200
    with transaction(api.app.state.tally.sessions) as session:  # revoked elsewhere: still in the key cache
        revoke_key(session, key_id=backoffice["id"])

    requests: list[tuple[dict[str, Any], dict[str, str], str | None]] = [
        (body, {"Idempotency-Key": "a"}, None),
        (body, {}, None),
        ({**body, "description": "twin"}, {"Idempotency-Key": "twin"}, None),
        ({**body, "description": "twin"}, {"Idempotency-Key": "twin"}, None),
        (body, {"Idempotency-Key": "done-before"}, None),  # a replay
        ({**body, "description": "other"}, {"Idempotency-Key": "done-before"}, None),  # key reused
        ({**body, "customer": "cus_" + "0" * 24}, {"Idempotency-Key": "nobody"}, None),
        ({**body, "customer": limited}, {"Idempotency-Key": "fits"}, None),
        ({**body, "customer": limited}, {"Idempotency-Key": "beyond"}, None),
        ({**body, "currency": "usd", "customer": euro}, {"Idempotency-Key": "mismatch"}, None),
        (body, {"Idempotency-Key": "revoked"}, backoffice["secret"]),
    ]
    committer = api.app.state.tally.groups["issue_invoices"]
    groups_before = committer.groups
    with ThreadPoolExecutor(len(requests)) as pool, committer.held():  # the lock is released first
        futures = [
            pool.submit(api.post, "/v1/invoices", request, key=secret, headers=headers)
            for request, headers, secret in requests
        ]
        _wait_for(lambda: committer.queued == len(requests))
    replies = [future.result() for future in futures]
    assert committer.groups == groups_before + 1  # all of them in one group

    def code(reply: httpx.Response) -> str:
        return str(reply.json()["error"]["code"])

    assert [reply.status_code for reply in replies[:2]] == [200, 200]
    twins = replies[2:4]
    assert {reply.status_code for reply in twins} == {200}
    assert twins[0].json()["id"] == twins[1].json()["id"]  # one invoice, the other reply a replay
    assert sum(reply.headers.get("Idempotent-Replayed") == "true" for reply in twins) == 1
    assert replies[4].status_code == 200 and replies[4].content == done.content
    assert replies[4].headers["Idempotent-Replayed"] == "true"
    assert (replies[5].status_code, code(replies[5])) == (400, "idempotency_key_reused")
    assert (replies[6].status_code, code(replies[6])) == (404, "resource_missing")
    fits, beyond = replies[7], replies[8]
    assert sorted([fits.status_code, beyond.status_code]) == [200, 409]  # 2 x 11,000 against 15,000
    assert code(fits if fits.status_code == 409 else beyond) == "credit_limit_exceeded"
    assert (replies[9].status_code, code(replies[9])) == (400, "currency_mismatch")
    assert (replies[10].status_code, code(replies[10])) == (401, "api_key_invalid")

    issued = [reply.json() for reply in replies if reply.status_code == 200]
    numbers = sorted(int(invoice["number"].split("-")[1]) for invoice in {i["id"]: i for i in issued}.values())
    assert numbers == list(range(1, 6))  # done-before (replayed) and four new ones, without gaps
    with transaction(api.app.state.tally.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Invoice).where(Invoice.status == "open")) == 5
        records = dict(session.execute(select(IdempotencyRecord.key, IdempotencyRecord.status)).all())
        # Refused requests released their keys (a retry runs again); none is left in flight.
        issued_key = "fits" if fits.status_code == 200 else "beyond"
        assert records == {"done-before": "done", "a": "done", "twin": "done", issued_key: "done"}
        head = ledger_service.read_head(session, "test-ledger")
        entries = list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.sequence)))
        assert [entry.sequence for entry in entries] == list(range(head.size))
        log = merkle.MerkleLog()
        log.append_many(bytes(entry.leaf_input) for entry in entries)
        assert (log.size, log.root()) == (head.size, head.root)
        assert unbalanced_currencies(session) == {}
    # A retry of a refused request runs again (its key was released).
    retry = api.post("/v1/invoices", {**body, "customer": "cus_" + "0" * 24}, headers={"Idempotency-Key": "nobody"})
    assert retry.status_code == 404


def test_a_group_reads_the_token_registry_as_one_request_would(any_api: Api) -> None:
    customer = any_api.customer()["id"]
    body = {"customer": customer, "lines": [LINE], "finalize": True}
    token = {"address": "0x" + "5f" * 20, "currency": "usd", "decimals": 6}
    any_api.post("/v1/settlement_tokens", {**token, "chain_id": 31337})
    issued = any_api.post("/v1/invoices", body)
    assert (issued.json()["terms"]["token"], issued.json()["token_decimals"]) == (token["address"], 6)
    any_api.post("/v1/settlement_tokens", {**token, "chain_id": 10})  # a second chain's default: ambiguous
    refused = any_api.post("/v1/invoices", body)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "token_ambiguous")


def test_an_idle_writer_ends_and_the_next_job_starts_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backend.services.group_commit.writer_idle_s_max", 0.01)

    def write(jobs: Sequence[Job[int]]) -> None:
        for job in jobs:
            job.succeed(job.payload)

    committer = GroupCommit(write)
    assert committer.submit(1).result(timeout=queue_wait_s_max) == 1
    _wait_for(lambda: committer._thread is None)
    assert committer.submit(2).result(timeout=queue_wait_s_max) == 2


def test_after_a_group_with_company_the_writer_waits_for_more(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.services import group_commit

    waits: list[float] = []
    monkeypatch.setattr(group_commit.time, "sleep", waits.append)
    monkeypatch.setattr(group_commit, "writer_idle_s_max", 60.0)  # one writer thread throughout

    def write(jobs: Sequence[Job[int]]) -> None:
        for job in jobs:
            job.succeed(job.payload)

    committer = GroupCommit(write)
    assert committer.submit(1).result(timeout=queue_wait_s_max) == 1
    assert waits == []  # a lone request on a quiet server is written at once
    assert _submit_all(committer, [2, 3]) == [2, 3]
    assert committer.submit(4).result(timeout=queue_wait_s_max) == 4
    assert waits == [group_commit.group_wait_s]  # the group after one with company waited


def test_a_writer_that_dies_leaves_no_job_stranded() -> None:
    calls: list[int] = []

    def write(jobs: Sequence[Job[int]]) -> None:
        calls.append(len(jobs))
        if len(calls) == 1:
            raise SystemExit("the writer thread dies")  # not an Exception: the writer itself stops
        for job in jobs:
            job.succeed(job.payload)

    committer = GroupCommit(write)
    assert committer.submit(1).result(timeout=queue_wait_s_max) is ALONE  # its group: run alone
    assert committer.submit(2).result(timeout=queue_wait_s_max) == 2  # a new writer serves the queue
