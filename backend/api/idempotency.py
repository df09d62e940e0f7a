"""`Idempotency-Key` for every mutating POST, and the one way a write runs: `Writer.run`.

With a key, the request is first *claimed* in its own short transaction (a row per
(api key, Idempotency-Key)); a second request under the same key then
- with a different method, path or body: 400 `idempotency_key_reused`;
- while the first is still in flight: 409 `idempotency_request_in_flight`;
- after the first succeeded: the stored status and body, replayed byte for byte
  (header `Idempotent-Replayed: true`).
The stored response is written in the same transaction as the business change, so a committed
change always has its response. A request that fails writes nothing and releases its claim, so a
retry with the same key runs again. A claim older than `idempotency_in_flight_s_max` (a crashed
worker) may be taken over.

The writing key is checked live again inside the write: in the claim's INSERT (which inserts
nothing for a revoked key), or first thing in the work transaction without an Idempotency-Key.
So the dependency may take the key from the process's short-lived cache (backend.api.deps.KeyCache)
and a key revoked elsewhere still writes nothing, nor reads a stored response.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Request
from fastapi.responses import Response
from sqlalchemy import LargeBinary, bindparam, delete, exists, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from backend.api.deps import AdminKey, StateDep, WriterKey, key_invalid
from backend.api.errors import ApiError
from backend.app import AppState
from backend.db import transaction
from backend.models import ApiKey, IdempotencyRecord
from backend.services import ledger as ledger_service
from backend.services.common import idempotency_in_flight_s_max, idempotency_key_chars_max, now_s
from backend.services.group_commit import ALONE, GroupCommit, Job
from backend.services.keys import Principal

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=idempotency_key_chars_max,
        pattern=r"^[\x21-\x7e]+$",
        description="Any unique string (e.g. a UUID) up to 255 printable ASCII characters. "
        "A retry with the same key and body returns the first response; the same key with a "
        "different body is refused.",
    ),
]


_RECORDS = IdempotencyRecord.__table__


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(body: Any, status: int = 200, replayed: bool = False) -> Response:
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return Response(dumps(body), status_code=status, media_type="application/json", headers=headers)


def _request_hash(method: str, path: str, raw_body: bytes) -> bytes:
    try:  # whitespace and key order do not make a different request
        canonical = json.dumps(json.loads(raw_body), sort_keys=True, separators=(",", ":"))
        body = canonical.encode("utf-8", "surrogatepass")
    except ValueError:
        body = raw_body
    return hashlib.sha256(f"{method} {path}\n".encode() + body).digest()


class Writer:
    """What a mutating route needs: the app state, the writing principal, and the idempotency key."""

    def __init__(self, state: AppState, principal: Principal, key: str | None, request_hash: bytes):
        self.state = state
        self.principal = principal
        self.key = key
        self.request_hash = request_hash

    def run(self, work: Callable[[Session], Any], status: int = 200) -> Response:
        """Run `work(session)` in one transaction and return its JSON body, idempotently."""
        if self.key is None:
            with transaction(self.state.sessions) as session:
                if session.scalar(select(self._key_live())) is not True:
                    raise key_invalid()
                body = dumps(work(session))
            return Response(body, status_code=status, media_type="application/json")
        stored = self._claim()
        if stored is not None:
            return stored
        try:
            with transaction(self.state.sessions) as session:
                body = dumps(work(session))
                session.execute(
                    update(_RECORDS)  # Core on the table: runs under the ledger lock, no ORM bookkeeping
                    .where(_RECORDS.c.api_key_id == self.principal.key_id, _RECORDS.c.key == self.key)
                    .values(status="done", response_code=status, response_body=body)
                )
        except BaseException:
            self._release()
            raise
        return Response(body, status_code=status, media_type="application/json")

    async def run_grouped(
        self, group: str, work_each: GroupWork, payload: Any, work: Callable[[Session], Any]
    ) -> Response:
        """`run(work)`, but written together with this process's concurrent requests of the same
        `group` (backend.services.group_commit): `work_each(session, payloads, respond)` does the
        work of all of them in one transaction and calls `respond` once with, per payload, its
        response body or its refusal (an exception), as late as it can: its writes join the
        work's last round trip. A request the group cannot take (a replay, a conflict, a group
        that failed) runs `run(work)` alone. Awaited: no thread is held while the group writes."""
        committer = self.state.groups.get(group)
        if committer is None:
            committer = self.state.groups.setdefault(
                group, GroupCommit(functools.partial(_write_group, self.state, work_each))
            )
        outcome = await asyncio.wrap_future(committer.submit((self, payload)))
        if outcome is ALONE:
            return cast(Response, await run_in_threadpool(self.run, work))
        return cast(Response, outcome)

    def _claim(self) -> Response | None:
        """None when this request may run; a replayed response when it already ran."""
        now = now_s()
        where = (IdempotencyRecord.api_key_id == self.principal.key_id, IdempotencyRecord.key == self.key)
        with transaction(self.state.sessions) as session:
            dialect = session.get_bind().dialect.name
            insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(IdempotencyRecord.__table__)
            values = select(
                literal(self.principal.key_id),
                literal(self.key),
                literal(self.request_hash, LargeBinary),
                literal("in_flight"),
                literal(now),
                literal(now),
            ).where(self._key_live())  # a revoked key claims nothing
            inserted = session.execute(
                insert.from_select(["api_key_id", "key", "request_hash", "status", "created", "locked_at"], values)
                .on_conflict_do_nothing(index_elements=["api_key_id", "key"])
                .returning(IdempotencyRecord.__table__.c.key)
            )
            if inserted.first() is not None:  # RETURNING, not rowcount: drivers differ on the latter
                return None
            if session.scalar(select(self._key_live())) is not True:
                raise key_invalid()
            row = session.execute(select(IdempotencyRecord).where(*where).with_for_update()).scalar_one_or_none()
            if row is None:  # the first request failed and released the key just now
                raise _in_flight()
            if bytes(row.request_hash) != self.request_hash:
                raise ApiError(
                    400,
                    "idempotency_error",
                    "idempotency_key_reused",
                    "this Idempotency-Key was used with a different request",
                    "Idempotency-Key",
                )
            if row.status == "done":
                return Response(
                    bytes(row.response_body or b""),
                    status_code=row.response_code or 200,
                    media_type="application/json",
                    headers={"Idempotent-Replayed": "true"},
                )
            if now - row.locked_at <= idempotency_in_flight_s_max:
                raise _in_flight()
            row.locked_at = now  # the first attempt died: this retry takes the claim over
            return None

    def _key_live(self) -> Any:
        """EXISTS: the writing key is not revoked (checked in the write's own transaction)."""
        return exists().where(ApiKey.id == self.principal.key_id, ApiKey.revoked_at.is_(None))

    def _release(self) -> None:
        with transaction(self.state.sessions) as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.api_key_id == self.principal.key_id,
                    IdempotencyRecord.key == self.key,
                    IdempotencyRecord.status == "in_flight",
                )
            )


# The group's responses and released claims, by (api key, Idempotency-Key).
_GROUP_KEY = (_RECORDS.c.api_key_id == bindparam("b_key_id"), _RECORDS.c.key == bindparam("b_key"))
_STORE_RESPONSE = (
    update(_RECORDS).where(*_GROUP_KEY).values(status="done", response_code=200, response_body=bindparam("b_body"))
)
_RELEASE_CLAIM = delete(_RECORDS).where(*_GROUP_KEY)
GroupWork = Callable[[Session, list[Any], Callable[[list[Any]], None]], None]


def _write_group(state: AppState, work_each: GroupWork, jobs: Sequence[Job[tuple[Writer, Any]]]) -> None:
    """One transaction for a group of writes (`Writer.run_grouped`): the writing keys checked
    live, the Idempotency-Keys claimed (a key already claimed, or twice in the group, sends its
    request to run alone: replay, 409 and 400 stay the one-request path's), the work, the
    refused requests' claims released and the others' responses stored; one commit."""
    runnable: list[Job[tuple[Writer, Any]]] = []
    with transaction(state.sessions) as session:
        key_ids = sorted({job.payload[0].principal.key_id for job in jobs})
        live = set(session.scalars(select(ApiKey.id).where(ApiKey.id.in_(key_ids), ApiKey.revoked_at.is_(None))))
        claims: dict[tuple[str, str], Job[tuple[Writer, Any]]] = {}
        for job in jobs:
            writer = job.payload[0]
            if writer.principal.key_id not in live:
                job.fail(key_invalid())
            elif writer.key is None:
                runnable.append(job)
            elif (writer.principal.key_id, writer.key) in claims:
                job.alone()
            else:
                claims[(writer.principal.key_id, writer.key)] = job
        if claims:
            claimed = _claim_all(session, [(key, claims[key].payload[0].request_hash) for key in sorted(claims)])
            for key, job in claims.items():
                if key in claimed:
                    runnable.append(job)
                else:
                    job.alone()
        if not runnable:
            return
        bodies: list[bytes | Exception] = []

        def respond(outcomes: list[Any]) -> None:
            """Store each response and release each refused request's claim (in the work's last
            round trip: `execute_many`)."""
            if bodies:
                raise RuntimeError("a group responds once")
            bodies.extend(outcome if isinstance(outcome, Exception) else dumps(outcome) for outcome in outcomes)
            stored, released = [], []
            for job, body in zip(runnable, bodies, strict=True):
                writer = job.payload[0]
                if writer.key is not None:
                    key = {"b_key_id": writer.principal.key_id, "b_key": writer.key}
                    if isinstance(body, Exception):
                        released.append(key)
                    else:
                        stored.append({**key, "b_body": body})
            ledger_service.execute_many(session, _STORE_RESPONSE, stored)
            ledger_service.execute_many(session, _RELEASE_CLAIM, released)

        work_each(session, [job.payload[1] for job in runnable], respond)
        if len(bodies) != len(runnable):
            raise RuntimeError("the group's work did not respond")
    for job, body in zip(runnable, bodies, strict=True):  # committed: answer every request
        if isinstance(body, Exception):
            job.fail(body)
        else:
            job.succeed(Response(body, status_code=200, media_type="application/json"))


def _claim_all(session: Session, keys: list[tuple[tuple[str, str], bytes]]) -> set[tuple[str, str]]:
    """Insert in-flight claims for these (api key, Idempotency-Key)s in one statement, in key
    order (two groups claiming the same keys never wait on each other in a cycle); the ones
    inserted. A key claimed by an uncommitted transaction waits for it to end."""
    now = now_s()
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_RECORDS)
    rows = [
        {"api_key_id": key_id, "key": key, "request_hash": request_hash, "status": "in_flight",
         "created": now, "locked_at": now}
        for (key_id, key), request_hash in keys
    ]  # fmt: skip
    inserted = session.execute(  # one cached statement, sent as one multi-row INSERT (insertmanyvalues)
        insert.on_conflict_do_nothing(index_elements=["api_key_id", "key"]).returning(
            _RECORDS.c.api_key_id, _RECORDS.c.key
        ),
        rows,
    )
    return {(key_id, key) for key_id, key in inserted}


def _in_flight() -> ApiError:
    return ApiError(
        409,
        "idempotency_error",
        "idempotency_request_in_flight",
        "a request with this Idempotency-Key is still being processed",
        "Idempotency-Key",
    )


async def writer(request: Request, state: StateDep, principal: WriterKey, key: IdempotencyKeyHeader = None) -> Writer:
    request_hash = b""
    if key is not None:
        raw = await request.body()  # Starlette caches it: the body parser reads the same bytes
        request_hash = _request_hash(request.method, request.url.path, raw)
    return Writer(state, principal, key, request_hash)


WriterDep = Annotated[Writer, Depends(writer)]


async def admin_writer(
    request: Request, state: StateDep, principal: AdminKey, key: IdempotencyKeyHeader = None
) -> Writer:
    """Same as `writer`, for admin-only routes (key management)."""
    return await writer(request, state, principal, key)


AdminWriterDep = Annotated[Writer, Depends(admin_writer)]
