"""Dependencies as `Annotated` aliases: the app state, the calling key, and role checks.

Roles (DESIGN.md): `admin` everything; `backoffice` writes business resources and reads all;
`auditor` reads everything, writes nothing; `partner` reads its own customer's invoices, notes,
receipts and payments (another customer's objects answer 404, as if they did not exist).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backend.api.errors import ApiError
from backend.app import AppState
from backend.db import transaction
from backend.services.keys import Principal, Role, authenticate


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


def current_principal(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise ApiError(
            401, "authentication_error", "api_key_missing", "send an API key as `Authorization: Bearer tally_sk_...`"
        )
    with transaction(state.sessions) as session:
        principal = authenticate(session, credentials.credentials)
    if principal is None:
        raise ApiError(401, "authentication_error", "api_key_invalid", "unknown or revoked API key")
    return principal


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    allowed = frozenset(roles)

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            raise ApiError(403, "permission_error", "permission_denied", f"a {principal.role} key may not do this")
        return principal

    return check


# Any valid key (partners are then scoped to their customer by the route).
AnyKey = Annotated[Principal, Depends(require(*Role))]
# Everyone but partners: reads of the whole ledger and every customer.
StaffKey = Annotated[Principal, Depends(require(Role.ADMIN, Role.BACKOFFICE, Role.AUDITOR))]
# Business writes.
WriterKey = Annotated[Principal, Depends(require(Role.ADMIN, Role.BACKOFFICE))]
# Key management.
AdminKey = Annotated[Principal, Depends(require(Role.ADMIN))]


def partner_scope(principal: Principal) -> str | None:
    """The customer a partner is bound to (lists filter by it), None for every other role."""
    return principal.customer_id if principal.is_partner else None
