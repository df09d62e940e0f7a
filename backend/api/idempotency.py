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

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import Response
from sqlalchemy import LargeBinary, delete, exists, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.api.deps import AdminKey, StateDep, WriterKey, key_invalid
from backend.api.errors import ApiError
from backend.app import AppState
from backend.db import transaction
from backend.models import ApiKey, IdempotencyRecord
from backend.services.common import idempotency_in_flight_s_max, idempotency_key_chars_max, now_s
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
