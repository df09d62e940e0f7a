"""Dependencies as `Annotated` aliases: the app state, the calling key, and role checks.

Roles (DESIGN.md): `admin` everything; `backoffice` writes business resources and reads all;
`auditor` reads everything, writes nothing; `partner` reads its own customer's invoices, notes,
receipts and payments (another customer's objects answer 404, as if they did not exist).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from backend.api.errors import ApiError
from backend.app import AppState
from backend.db import transaction
from backend.services.common import writer_key_cache_entries_max, writer_key_cache_s_max
from backend.services.keys import Principal, Role, authenticate, hash_secret


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in the thread
# pool, a hand-off per dependency per request that costs more than the dependency itself.
async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.tally
    return state


StateDep = Annotated[AppState, Depends(get_state)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="`Authorization: Bearer tally_sk_...` — an API key from `tally keys create` or `POST /v1/api_keys`.",
)


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def current_principal(state: StateDep, credentials: Credentials) -> Principal:
    """The calling key, looked up in the database on every request (reads: a revoked key is
    refused on its next request, whichever process serves it)."""
    return _authenticate(state, _secret(credentials))


def _secret(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise ApiError(
            401, "authentication_error", "api_key_missing", "send an API key as `Authorization: Bearer tally_sk_...`"
        )
    return credentials.credentials


def _authenticate(state: AppState, secret: str) -> Principal:
    with transaction(state.sessions) as session:
        principal = authenticate(session, secret)
    if principal is None:
        raise key_invalid()
    return principal


def key_invalid() -> ApiError:
    return ApiError(401, "authentication_error", "api_key_invalid", "unknown or revoked API key")


class KeyCache:
    """Writer keys this process verified in the last `writer_key_cache_s_max` seconds, by secret
    hash. Only for writes: every write checks its key is still live inside its own transaction
    (backend.api.idempotency.Writer), so a key revoked by another process or the CLI writes
    nothing more, while the lookup transaction per request is saved. Revoking through this
    process's API empties the cache at once. Never holds unknown or revoked keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    def get(self, digest: bytes) -> Principal | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or time.monotonic() - entry[1] > writer_key_cache_s_max:
                self._entries.pop(digest, None)
                return None
            return entry[0]

    def put(self, digest: bytes, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= writer_key_cache_entries_max:
                self._entries.clear()  # bounded; a full cache only costs lookups
            self._entries[digest] = (principal, time.monotonic())

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def key_cache(app: FastAPI) -> KeyCache:
    cache: KeyCache | None = getattr(app.state, "writer_key_cache", None)
    if cache is None:
        cache = app.state.writer_key_cache = KeyCache()
    return cache


async def cached_principal(request: Request, state: StateDep, credentials: Credentials) -> Principal:
    """The calling key from this process's `KeyCache`, else looked up (in the thread pool) and
    cached. Use it only where the caller re-checks the key in its write transaction."""
    secret = _secret(credentials)
    cache = key_cache(request.app)
    digest = hash_secret(secret)
    principal = cache.get(digest)
    if principal is None:
        principal = await run_in_threadpool(_authenticate, state, secret)
        cache.put(digest, principal)
    return principal


def require(
    *roles: Role, lookup: Callable[..., Principal | Awaitable[Principal]] = current_principal
) -> Callable[[Principal], Awaitable[Principal]]:
    allowed = frozenset(roles)

    async def check(principal: Principal) -> Principal:
        if principal.role not in allowed:
            raise ApiError(403, "permission_error", "permission_denied", f"a {principal.role} key may not do this")
        return principal

    # Set as an object, not the string `from __future__ import annotations` would leave: FastAPI
    # resolves string annotations in the module's globals, where `lookup` does not exist.
    check.__annotations__["principal"] = Annotated[Principal, Depends(lookup)]
    return check


# Any valid key (partners are then scoped to their customer by the route).
AnyKey = Annotated[Principal, Depends(require(*Role))]
# Everyone but partners: reads of the whole ledger and every customer.
StaffKey = Annotated[Principal, Depends(require(Role.ADMIN, Role.BACKOFFICE, Role.AUDITOR))]
# Business writes (the key is re-checked in the write's transaction: see KeyCache).
WriterKey = Annotated[Principal, Depends(require(Role.ADMIN, Role.BACKOFFICE, lookup=cached_principal))]
# Key management.
AdminKey = Annotated[Principal, Depends(require(Role.ADMIN))]


def partner_scope(principal: Principal) -> str | None:
    """The customer a partner is bound to (lists filter by it), None for every other role."""
    return principal.customer_id if principal.is_partner else None
