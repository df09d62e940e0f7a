"""/v1/invoices: drafts (create, update, delete), finalize, void, mark uncollectible, bulk,
and the receipt (which needs an anchored head: issue 6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from backend.anchoring.receipts import current_invoice_entry
from backend.api import render
from backend.api.deps import AnyKey, StateDep, partner_scope
from backend.api.errors import ERROR_RESPONSES
from backend.api.idempotency import WriterDep
from backend.api.pages import DEFAULT_LIMIT, Limit, StartingAfter, page
from backend.api.routes.anchoring import receipt_response
from backend.api.schemas import (
    BulkInvoices,
    BulkInvoicesOut,
    InvoiceCreate,
    InvoiceList,
    InvoiceOut,
    InvoiceUpdate,
    ReasonIn,
)
from backend.db import transaction
from backend.models import Invoice
from backend.services import invoices as service
from backend.services.common import Conflict

router = APIRouter(prefix="/v1/invoices", tags=["invoices"], responses=ERROR_RESPONSES)
InvoicePath = Annotated[str, Path(max_length=40, description="An invoice id (inv_...).")]


def _options(state: Any) -> dict[str, Any]:
    return {"ledger_id": state.settings.ledger_id, "default_payee": service.default_payee(state.settings)}


def _create_arguments(body: InvoiceCreate) -> dict[str, Any]:
    arguments = body.model_dump(exclude={"customer", "finalize"})
    arguments["customer_id"] = body.customer
    return arguments


@router.post("", response_model=InvoiceOut, summary="Create an invoice")
async def create_invoice(body: InvoiceCreate, writer: WriterDep) -> Any:
    """Creates a draft; with `"finalize": true` it is finalized in the same transaction (number
    allocated, `invoice_issued` entry with settlement terms version 1, journal posting).

    Concurrent finalizing requests to one server process are committed together (group commit):
    each still gets exactly the response, number and refusal it would get alone."""
    options = _options(writer.state)

    def work(session: Any) -> dict[str, Any]:
        # A draft finalized at once is written once, by finalize (add=False).
        row = service.create_invoice(
            session, ledger_id=options["ledger_id"], add=not body.finalize, **_create_arguments(body)
        )
        if body.finalize:
            service.finalize_invoices(session, invoices=[row], **options)
        return render.invoice(row)

    if not body.finalize:
        return await run_in_threadpool(writer.run, work)
    return await writer.run_grouped("issue_invoices", _issue_each, (body, options), work)


def _issue_each(
    session: Any, payloads: list[tuple[InvoiceCreate, dict[str, Any]]], respond: Callable[[list[Any]], None]
) -> None:
    """Create and finalize a group's invoices in one transaction, and `respond` with each
    request's invoice body or refusal (inside the append's round trip)."""
    outcomes: list[Any] = [None] * len(payloads)
    rows, places = [], []
    service.preload_customers(session, [body.customer for body, _ in payloads])
    for place, (body, options) in enumerate(payloads):
        try:
            rows.append(service.create_invoice(session, ledger_id=options["ledger_id"], add=False,
                                               **_create_arguments(body)))  # fmt: skip
            places.append(place)
        except service.REFUSALS as error:
            outcomes[place] = error
    if not rows:
        respond(outcomes)
        return

    def then(refusals: list[Any]) -> None:
        for place, row, refusal in zip(places, rows, refusals, strict=True):
            outcomes[place] = refusal if refusal is not None else render.invoice(row)
        respond(outcomes)

    service.finalize_each(session, invoices=rows, then=then, **payloads[0][1])  # one process: one ledger, one payee


@router.post("/bulk", response_model=BulkInvoicesOut, summary="Create and finalize many invoices")
def bulk_invoices(body: BulkInvoices, request: Request, writer: WriterDep) -> Any:
    """Creates and finalizes up to 1,000 invoices in one transaction: all or none. Numbers are
    consecutive per series, entries consecutive in the ledger. `finalize` is ignored (always true)."""
    options = _options(writer.state)

    def work(session: Any) -> dict[str, Any]:
        rows = [
            service.create_invoice(session, ledger_id=options["ledger_id"], add=False, **_create_arguments(item))
            for item in body.invoices
        ]
        service.finalize_invoices(session, invoices=rows, **options)
        return {
            "object": "list",
            "data": [render.invoice(row) for row in rows],
            "has_more": False,
            "url": request.url.path,
        }

    return writer.run(work)


@router.get("", response_model=InvoiceList, summary="List invoices")
def list_invoices(
    request: Request,
    state: StateDep,
    principal: AnyKey,
    limit: Limit = DEFAULT_LIMIT,
    starting_after: StartingAfter = None,
    customer: Annotated[str | None, Query(pattern=r"^cus_[0-9A-Za-z]{24}$")] = None,
    status: Literal["draft", "open", "partially_paid", "paid", "void", "uncollectible"] | None = None,
) -> Any:
    """Newest first. Partner keys see only their customer's invoices, and no drafts."""
    statement = select(Invoice)
    scope = partner_scope(principal)
    if scope is not None:
        statement = statement.where(Invoice.customer_id == scope, Invoice.status != "draft")
    if customer is not None:
        statement = statement.where(Invoice.customer_id == customer)
    if status is not None:
        statement = statement.where(Invoice.status == status)
    with transaction(state.sessions) as session:
        return page(
            session,
            statement,
            Invoice,
            limit=limit,
            starting_after=starting_after,
            url=request.url.path,
            render=render.invoice,
        )


@router.get("/{invoice_id}", response_model=InvoiceOut, summary="Retrieve an invoice")
def get_invoice(invoice_id: InvoicePath, state: StateDep, principal: AnyKey) -> Any:
    with transaction(state.sessions) as session:
        return render.invoice(service.get_invoice(session, invoice_id=invoice_id, partner_of=partner_scope(principal)))


@router.post("/{invoice_id}", response_model=InvoiceOut, summary="Update a draft invoice")
def update_invoice(invoice_id: InvoicePath, body: InvoiceUpdate, writer: WriterDep) -> Any:
    """Drafts only (`illegal_transition` otherwise). `lines` replaces every line."""
    changes = {key: value for key, value in body.model_dump(exclude_unset=True).items()}
    return writer.run(lambda session: render.invoice(service.update_invoice(session, invoice_id=invoice_id, **changes)))


@router.delete("/{invoice_id}", summary="Delete a draft invoice", responses={200: {"description": "Deleted."}})
def delete_invoice(invoice_id: InvoicePath, writer: WriterDep) -> Any:
    """Drafts only: a finalized invoice is in the ledger and can only be voided."""

    def work(session: Any) -> dict[str, Any]:
        service.delete_invoice(session, invoice_id=invoice_id)
        return {"id": invoice_id, "object": "invoice", "deleted": True}

    return writer.run(work)


@router.post("/{invoice_id}/finalize", response_model=InvoiceOut, summary="Finalize a draft")
def finalize_invoice(invoice_id: InvoicePath, writer: WriterDep) -> Any:
    """Allocates the next number of the invoice's series (no gaps, no repeats), computes
    settlement terms version 1, appends `invoice_issued` and posts receivable / revenue / tax."""
    options = _options(writer.state)

    def work(session: Any) -> dict[str, Any]:
        row = service.get_invoice(session, invoice_id=invoice_id, for_update=True)
        service.finalize_invoices(session, invoices=[row], **options)
        return render.invoice(row)

    return writer.run(work)


@router.post("/{invoice_id}/void", response_model=InvoiceOut, summary="Void an invoice")
def void_invoice(invoice_id: InvoicePath, writer: WriterDep, body: ReasonIn | None = None) -> Any:
    """Open invoices with nothing paid. Appends `invoice_voided` (terms cancelled) and reverses
    the invoice's receivable, revenue and tax."""
    reason = body.reason if body else ""
    ledger_id = writer.state.settings.ledger_id
    return writer.run(
        lambda session: render.invoice(
            service.void_invoice(session, ledger_id=ledger_id, invoice_id=invoice_id, reason=reason)
        )
    )


@router.post("/{invoice_id}/mark_uncollectible", response_model=InvoiceOut, summary="Write an invoice off")
def mark_uncollectible(invoice_id: InvoicePath, writer: WriterDep, body: ReasonIn | None = None) -> Any:
    """Open invoices. Appends `write_off` for the amount due and books it to bad debt."""
    reason = body.reason if body else ""
    ledger_id = writer.state.settings.ledger_id
    return writer.run(
        lambda session: render.invoice(
            service.mark_uncollectible(session, ledger_id=ledger_id, invoice_id=invoice_id, reason=reason)
        )
    )


@router.get(
    "/{invoice_id}/receipt",
    summary="The invoice's receipt",
    responses={409: {"description": "Not anchored yet."}},
)
def invoice_receipt(invoice_id: InvoicePath, state: StateDep, principal: AnyKey) -> Response:
    """DESIGN.md's receipt of the invoice's current entry (its latest terms version, or the void /
    write-off that cancelled it; see backend.anchoring.receipts) against the latest confirmed
    anchored head covering it. Until one covers it: 409 `not_anchored`, with `Retry-After`."""
    with transaction(state.sessions) as session:
        row = service.get_invoice(session, invoice_id=invoice_id, partner_of=partner_scope(principal))
        entry = current_invoice_entry(session, state.settings.ledger_id, row.id)
    if row.issued_sequence is None or entry is None:
        raise Conflict("a draft has no ledger entry and no receipt; finalize it first", code="invoice_not_finalized")
    return receipt_response(state, entry)
