"""/v1/ledger: entries (paged, and exported as NDJSON), heads, inclusion and consistency proofs;
/v1/journal/balances. (/v1/anchors and receipts: routes/anchoring.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from backend.api import render
from backend.api.deps import AnyKey, StaffKey, StateDep
from backend.api.errors import ERROR_RESPONSES
from backend.api.pages import DEFAULT_LIMIT, Limit
from backend.api.routes.anchoring import with_manifest
from backend.api.schemas import (
    ConsistencyProofOut,
    EntryList,
    EntryOut,
    HeadOut,
    InclusionProofOut,
    JournalBalancesOut,
)
from backend.db import transaction
from backend.models import LedgerEntry
from backend.services import journal
from backend.services import ledger as service
from backend.services.common import export_batch_rows_max
from ledger.hexutil import to_hex

router = APIRouter(tags=["ledger"], responses=ERROR_RESPONSES)

SEQUENCE_MAX = 2**63 - 1
StartSequence = Annotated[int, Query(ge=0, le=SEQUENCE_MAX, description="First sequence to export.")]
EntryPath = Annotated[
    str,
    Path(max_length=40, description="An entry id (ent_...) or its sequence number (leaf index)."),
]


@router.get("/v1/ledger/entries", response_model=EntryList, summary="List ledger entries")
def list_entries(
    request: Request,
    state: StateDep,
    principal: StaffKey,
    limit: Limit = DEFAULT_LIMIT,
    starting_after: Annotated[
        int | None, Query(ge=0, le=SEQUENCE_MAX, description="A sequence number: entries after it.")
    ] = None,
    invoice: Annotated[str | None, Query(pattern=r"^inv_[0-9A-Za-z]{24}$")] = None,
    customer: Annotated[str | None, Query(pattern=r"^cus_[0-9A-Za-z]{24}$")] = None,
) -> Any:
    """Oldest first (ascending sequence, the leaf order); page with `starting_after=<sequence>`."""
    ledger_id = state.settings.ledger_id
    statement = select(LedgerEntry).where(LedgerEntry.ledger_id == ledger_id)
    if starting_after is not None:
        statement = statement.where(LedgerEntry.sequence > starting_after)
    if invoice is not None:
        statement = statement.where(LedgerEntry.invoice_id == invoice)
    if customer is not None:
        statement = statement.where(LedgerEntry.customer_id == customer)
    with transaction(state.sessions) as session:
        rows = list(session.scalars(statement.order_by(LedgerEntry.sequence).limit(limit + 1)))
        data = [render.entry(row) for row in rows[:limit]]
    return {"object": "list", "data": data, "has_more": len(rows) > limit, "url": request.url.path}


@router.get(
    "/v1/ledger/export",
    summary="Export the ledger (NDJSON)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "One entry per line."}},
)
def export_entries(
    state: StateDep,
    principal: StaffKey,
    start: StartSequence = 0,
    end: Annotated[int | None, Query(ge=0, le=SEQUENCE_MAX, description="Exclusive; default: the head.")] = None,
) -> StreamingResponse:
    """Every entry from `start` to `end` (exclusive), one JSON object per line, in sequence
    order, then a line `{"object": "ledger_head", ...}` for the size exported, then the anchors,
    invoices and journal lines and a last `export_manifest` line (backend.anchoring.export).
    Streamed in bounded batches; the head is read first, so the export is one consistent prefix."""
    ledger_id = state.settings.ledger_id
    with transaction(state.sessions) as session:
        head = service.read_head(session, ledger_id)
    stop = head.size if end is None else min(end, head.size)

    def lines() -> Iterator[bytes]:
        position = start
        while position < stop:
            batch_end = min(stop, position + export_batch_rows_max)
            with transaction(state.sessions) as session:
                rows = [
                    render.entry(row) for row in service.iter_entries(session, ledger_id, start=position, end=batch_end)
                ]
            yield b"".join(json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in rows)
            position = batch_end
        with transaction(state.sessions) as session:
            root = service.root_at(session, ledger_id, stop)
        tail = {"object": "ledger_head", "ledger_id": ledger_id, "tree_size": stop, "root": to_hex(root)}
        yield json.dumps(tail, separators=(",", ":")).encode() + b"\n"

    return StreamingResponse(with_manifest(state, lines(), stop), media_type="application/x-ndjson")


@router.get("/v1/ledger/entries/{entry}", response_model=EntryOut, summary="Retrieve a ledger entry")
def get_entry(entry: EntryPath, state: StateDep, principal: StaffKey) -> Any:
    with transaction(state.sessions) as session:
        return render.entry(service.find_entry(session, ledger_id=state.settings.ledger_id, entry=entry))


@router.get(
    "/v1/ledger/entries/{entry}/proof",
    response_model=InclusionProofOut,
    summary="Inclusion proof of an entry",
)
def entry_proof(
    entry: EntryPath,
    state: StateDep,
    principal: StaffKey,
    tree_size: Annotated[int | None, Query(ge=1, le=SEQUENCE_MAX, description="Default: the current head.")] = None,
) -> Any:
    """RFC 9162 inclusion proof of the entry's leaf in the tree of `tree_size` leaves."""
    ledger_id = state.settings.ledger_id
    with transaction(state.sessions) as session:
        row = service.find_entry(session, ledger_id=ledger_id, entry=entry)
        size = service.read_head(session, ledger_id).size if tree_size is None else tree_size
        proof = service.inclusion_proof(session, ledger_id, row.sequence, size)
        root = service.root_at(session, ledger_id, size)
    return {
        "object": "inclusion_proof",
        "ledger_id": ledger_id,
        "leaf_index": row.sequence,
        "tree_size": size,
        "leaf_hash": to_hex(bytes(row.leaf_hash)),
        "root": to_hex(root),
        "inclusion_proof": [to_hex(node) for node in proof],
    }


@router.get("/v1/ledger/head", response_model=HeadOut, summary="The current ledger head")
def current_head(state: StateDep, principal: AnyKey) -> Any:
    """Size and root of the log now (anchored or not; see /v1/anchors for anchored heads)."""
    ledger_id = state.settings.ledger_id
    with transaction(state.sessions) as session:
        head = service.read_head(session, ledger_id)
    return _head(ledger_id, head.size, head.root, head.updated or None)


@router.get("/v1/ledger/heads/{tree_size}", response_model=HeadOut, summary="The head at a size")
def head_at(tree_size: Annotated[int, Path(ge=0, le=SEQUENCE_MAX)], state: StateDep, principal: AnyKey) -> Any:
    """The root of the log when it had `tree_size` leaves (O(log n) node reads)."""
    ledger_id = state.settings.ledger_id
    with transaction(state.sessions) as session:
        root = service.root_at(session, ledger_id, tree_size)
    return _head(ledger_id, tree_size, root, None)


def _head(ledger_id: str, size: int, root: bytes, updated: int | None) -> dict[str, Any]:
    return {
        "object": "ledger_head",
        "ledger_id": ledger_id,
        "ledger_key": to_hex(service.ledger_key(ledger_id)),
        "tree_size": size,
        "root": to_hex(root),
        "updated": updated,
    }


@router.get("/v1/ledger/consistency", response_model=ConsistencyProofOut, summary="Consistency proof")
def consistency(
    state: StateDep,
    principal: AnyKey,
    first: Annotated[int, Query(ge=1, le=SEQUENCE_MAX, description="The older size m.")],
    second: Annotated[
        int | None, Query(ge=1, le=SEQUENCE_MAX, description="The newer size n; default: the head.")
    ] = None,
) -> Any:
    """RFC 9162 consistency proof that the tree of `second` leaves extends the tree of `first`."""
    ledger_id = state.settings.ledger_id
    with transaction(state.sessions) as session:
        size = service.read_head(session, ledger_id).size if second is None else second
        proof = service.consistency_proof(session, ledger_id, first, size)
        first_root = service.root_at(session, ledger_id, first)
        second_root = service.root_at(session, ledger_id, size)
    return {
        "object": "consistency_proof",
        "ledger_id": ledger_id,
        "first": first,
        "second": size,
        "first_root": to_hex(first_root),
        "second_root": to_hex(second_root),
        "consistency_proof": [to_hex(node) for node in proof],
    }


@router.get("/v1/journal/balances", response_model=JournalBalancesOut, summary="Trial balance")
def journal_balances(state: StateDep, principal: StaffKey) -> Any:
    """Balance per account and currency; `unbalanced` is empty when the books sum to zero."""
    with transaction(state.sessions) as session:
        totals = journal.journal_totals(session)
        unbalanced = journal.unbalanced_currencies(session)
    data = [
        {"account": account, "currency": currency, "balance_minor": total}
        for (account, currency), total in sorted(totals.items())
    ]
    return {"object": "journal_balances", "data": data, "unbalanced": unbalanced}
