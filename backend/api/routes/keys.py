"""/v1/api_keys: admin-only key management (the CLI's `tally keys` does the same)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy import select

from backend.api import render
from backend.api.deps import AdminKey, StateDep, key_cache
from backend.api.errors import ERROR_RESPONSES
from backend.api.idempotency import AdminWriterDep
from backend.api.pages import DEFAULT_LIMIT, Limit, StartingAfter, page
from backend.api.schemas import ApiKeyCreate, ApiKeyList, ApiKeyOut
from backend.db import transaction
from backend.models import ApiKey
from backend.services import keys as service

router = APIRouter(prefix="/v1/api_keys", tags=["api keys"], responses=ERROR_RESPONSES)
KeyPath = Annotated[str, Path(max_length=40, description="An API key id (key_...).")]


@router.post("", response_model=ApiKeyOut, summary="Create an API key")
def create_key(body: ApiKeyCreate, writer: AdminWriterDep) -> Any:
    """The response holds the secret (`tally_sk_...`) once; only its SHA-256 is stored. Under an
    Idempotency-Key a replay returns the same secret, so keep such keys private."""

    def work(session: Any) -> dict[str, Any]:
        row, secret = service.create_key(session, role=body.role, customer_id=body.customer, name=body.name)
        return render.api_key(row, secret)

    return writer.run(work)


@router.get("", response_model=ApiKeyList, summary="List API keys")
def list_keys(
    request: Request,
    state: StateDep,
    principal: AdminKey,
    limit: Limit = DEFAULT_LIMIT,
    starting_after: StartingAfter = None,
) -> Any:
    with transaction(state.sessions) as session:
        return page(
            session,
            select(ApiKey),
            ApiKey,
            limit=limit,
            starting_after=starting_after,
            url=request.url.path,
            render=render.api_key,
        )


@router.get("/{key_id}", response_model=ApiKeyOut, summary="Retrieve an API key")
def get_key(key_id: KeyPath, state: StateDep, principal: AdminKey) -> Any:
    with transaction(state.sessions) as session:
        return render.api_key(service.get_key(session, key_id=key_id))


@router.post("/{key_id}/revoke", response_model=ApiKeyOut, summary="Revoke an API key")
def revoke_key(key_id: KeyPath, request: Request, writer: AdminWriterDep) -> Any:
    """Effective immediately for every later request. Revoking twice is not an error."""
    response = writer.run(lambda session: render.api_key(service.revoke_key(session, key_id=key_id)))
    # Writes re-check their key in their own transaction anyway; emptying this process's cache
    # also spares a revoked key the rejected work.
    key_cache(request.app).clear()
    return response
