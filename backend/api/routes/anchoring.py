"""Anchoring over HTTP: receipts (`/v1/ledger/entries/{entry}/receipt`; the invoice receipt route
in routes/invoices.py calls `receipt_response` here), `/v1/anchors`, and the export stream's
anchors, invoices, journal and manifest (`with_manifest`, used by routes/ledger.py).

Until a confirmed anchored head covers the entry, a receipt answers 409 `not_anchored` in the
error shape, with the expected wait in the message and in `Retry-After`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from backend.anchoring import store
from backend.anchoring.export import stream_with_manifest
from backend.anchoring.receipts import NotAnchored, receipt_for
from backend.api.deps import AnyKey, StateDep, partner_scope
from backend.api.errors import ERROR_RESPONSES, error_json
from backend.api.pages import DEFAULT_LIMIT, Limit, StartingAfter
from backend.app import AppState
from backend.db import transaction
from backend.models import AnchorTransaction, LedgerEntry
from backend.services import ledger as ledger_service
from backend.services.common import NotFound
from ledger.hexutil import to_hex

router = APIRouter(tags=["anchors"], responses=ERROR_RESPONSES)
AnchorStatus = Literal["built", "sent", "mined", "confirmed", "dropped", "replaced", "reverted"]
RECEIPT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "DESIGN.md's receipt (docs/receipt.schema.json); verify it with `tally verify`."},
    409: {"description": "`not_anchored`: no confirmed anchored head covers the entry yet (see Retry-After)."},
}


def receipt_response(state: AppState, row: LedgerEntry) -> JSONResponse:
    """The receipt of `row`, or 409 `not_anchored` with `Retry-After`."""
    ledger_id = state.settings.ledger_id
    try:
        with transaction(state.sessions) as session:
            receipt = receipt_for(session, ledger_id=ledger_id, row=row, settings=state.settings)
    except NotAnchored as pending:
        return error_json(
            409,
            "invalid_request_error",
            "not_anchored",
            pending.message(),
            None,
            {"Retry-After": str(pending.expected_wait_s)},
        )
    return JSONResponse(receipt)


@router.get("/v1/ledger/entries/{entry}/receipt", summary="Receipt of a ledger entry", responses=RECEIPT_RESPONSES)
def entry_receipt(
    entry: Annotated[str, Path(max_length=40, description="An entry id (ent_...) or its sequence number.")],
    state: StateDep,
    principal: AnyKey,
) -> JSONResponse:
    """The receipt of any entry against the latest confirmed anchored head that covers it.
    Partner keys see only their own customer's entries (others answer 404)."""
    with transaction(state.sessions) as session:
        row = ledger_service.find_entry(
            session, ledger_id=state.settings.ledger_id, entry=entry, partner_of=partner_scope(principal)
        )
    return receipt_response(state, row)


def render_anchor(row: AnchorTransaction) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "anchor",
        "status": row.status,
        "tree_size": row.tree_size,
        "root": to_hex(bytes(row.root)),
        "previous_size": row.previous_size,
        "terms_updates": [{"invoice_key": key, "version": version} for key, version in row.updates or []],
        "chain_id": row.chain_id,
        "contract": row.contract,
        "sender": row.sender,
        "tx_hash": to_hex(bytes(row.tx_hash)),
        "nonce": row.nonce,
        "max_fee_per_gas": str(row.max_fee_per_gas),
        "max_priority_fee_per_gas": str(row.max_priority_fee_per_gas),
        "block_number": row.block_number,
        "block_hash": to_hex(bytes(row.block_hash)) if row.block_hash else None,
        "replaces": row.replaces_id,
        "error": row.error,
        "created": row.created_ms // 1000,
        "sent_at": row.sent_ms // 1000 if row.sent_ms else None,
        "confirmed_at": row.confirmed_ms // 1000 if row.confirmed_ms else None,
    }


def anchors_page(
    state: AppState, *, url: str, limit: int, starting_after: str | None, status: str | None
) -> dict[str, Any]:
    """A page of anchor transactions, newest first (`/v1/anchors`)."""
    with transaction(state.sessions) as session:
        before = None
        if starting_after is not None:
            before = session.scalar(select(AnchorTransaction.pk).where(AnchorTransaction.id == starting_after))
            if before is None:
                raise NotFound(f"starting_after: no anchor {starting_after}", param="starting_after")
        rows = store.list_anchors(
            session, state.settings.ledger_id, statuses=[status] if status else None, limit=limit + 1, before_pk=before
        )
        data = [render_anchor(row) for row in rows[:limit]]
    return {"object": "list", "data": data, "has_more": len(rows) > limit, "url": url}


@router.get("/v1/anchors", summary="List anchor transactions")
def list_anchors(
    request: Request,
    state: StateDep,
    principal: AnyKey,
    limit: Limit = DEFAULT_LIMIT,
    starting_after: StartingAfter = None,
    status: Annotated[AnchorStatus | None, Query(description="Only anchors in this state.")] = None,
) -> Any:
    """Anchor transactions, newest first: the heads sent to LedgerAnchor and what became of them
    (`confirmed` ones back receipts)."""
    return anchors_page(state, url=request.url.path, limit=limit, starting_after=starting_after, status=status)


def with_manifest(state: AppState, entry_lines: Iterator[bytes], tree_size: int) -> Iterator[bytes]:
    """The export stream: the entry lines (and head line) as given, then anchors, invoices,
    journal lines, and a last `export_manifest` line with counts and SHA-256 of each section."""
    return stream_with_manifest(state.sessions, state.settings.ledger_id, entry_lines, tree_size)
