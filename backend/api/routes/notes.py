"""/v1/credit_notes and /v1/debit_notes: adjustments of a finalized invoice, each one a new
settlement-terms version in the ledger."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import select

from backend.api import render
from backend.api.deps import AnyKey, StateDep, partner_scope
from backend.api.errors import ERROR_RESPONSES
from backend.api.idempotency import WriterDep
from backend.api.pages import DEFAULT_LIMIT, Limit, StartingAfter, page
from backend.api.schemas import NoteCreate, NoteList, NoteOut
from backend.db import transaction
from backend.models import InvoiceNote
from backend.services import notes as service

router = APIRouter(responses=ERROR_RESPONSES)
NotePath = Annotated[str, Path(max_length=40, description="A note id (cn_... or dn_...).")]
NoteKind = Literal["credit_note", "debit_note"]


def _routes(kind: NoteKind, collection: str, noun: str) -> None:
    tag = [f"{noun}s"]

    @router.post(
        f"/v1/{collection}", response_model=NoteOut, summary=f"Create a {noun}", tags=tag, operation_id=f"create_{kind}"
    )
    def create(body: NoteCreate, writer: WriterDep) -> Any:
        ledger_id = writer.state.settings.ledger_id
        return writer.run(
            lambda session: render.note(
                service.create_note(
                    session,
                    ledger_id=ledger_id,
                    kind=kind,
                    invoice_id=body.invoice,
                    lines=[line.model_dump() for line in body.lines],
                    reason=body.reason,
                    currency=body.currency,
                    metadata=body.metadata,
                    allow_customer_credit=body.allow_customer_credit,
                )
            )
        )

    @router.get(
        f"/v1/{collection}", response_model=NoteList, summary=f"List {noun}s", tags=tag, operation_id=f"list_{kind}s"
    )
    def list_notes(
        request: Request,
        state: StateDep,
        principal: AnyKey,
        limit: Limit = DEFAULT_LIMIT,
        starting_after: StartingAfter = None,
        invoice: Annotated[str | None, Query(pattern=r"^inv_[0-9A-Za-z]{24}$")] = None,
    ) -> Any:
        statement = select(InvoiceNote).where(InvoiceNote.type == kind)
        scope = partner_scope(principal)
        if scope is not None:
            statement = statement.where(InvoiceNote.customer_id == scope)
        if invoice is not None:
            statement = statement.where(InvoiceNote.invoice_id == invoice)
        with transaction(state.sessions) as session:
            return page(
                session,
                statement,
                InvoiceNote,
                limit=limit,
                starting_after=starting_after,
                url=request.url.path,
                render=render.note,
            )

    @router.get(
        f"/v1/{collection}/{{note_id}}",
        response_model=NoteOut,
        summary=f"Retrieve a {noun}",
        tags=tag,
        operation_id=f"get_{kind}",
    )
    def get_note(note_id: NotePath, state: StateDep, principal: AnyKey) -> Any:
        with transaction(state.sessions) as session:
            return render.note(
                service.get_note(session, kind=kind, note_id=note_id, partner_of=partner_scope(principal))
            )


_routes("credit_note", "credit_notes", "credit note")
_routes("debit_note", "debit_notes", "debit note")
