"""/v1/payments: payments received off-chain (bank, card), booked through the one booking
service that the reconciler (issue 7) uses for on-chain payments."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import select

from backend.api import render
from backend.api.deps import AnyKey, StateDep, partner_scope
from backend.api.errors import ERROR_RESPONSES
from backend.api.idempotency import WriterDep
from backend.api.pages import DEFAULT_LIMIT, Limit, StartingAfter, page
from backend.api.schemas import PaymentCreate, PaymentList, PaymentOut, ReasonIn
from backend.db import transaction
from backend.models import Payment
from backend.services import payments as service
from backend.services.common import Conflict

router = APIRouter(prefix="/v1/payments", tags=["payments"], responses=ERROR_RESPONSES)
PaymentPath = Annotated[str, Path(max_length=40, description="A payment id (pay_...).")]


@router.post("", response_model=PaymentOut, summary="Record an off-chain payment")
def create_payment(body: PaymentCreate, writer: WriterDep) -> Any:
    """Books a bank or card payment against an invoice: `payment_booked` entry, cash debited,
    receivable credited; any excess over the amount due becomes customer credit. The same
    (method, reference) is never booked twice (409 `payment_already_booked`)."""
    ledger_id = writer.state.settings.ledger_id
    return writer.run(
        lambda session: render.payment(
            service.book_payment(
                session,
                ledger_id=ledger_id,
                invoice_id=body.invoice,
                amount_minor=body.amount_minor,
                currency=body.currency,
                method=body.method,
                reference=body.reference,
                received_at=body.received_at,
                description=body.description,
                metadata=body.metadata,
            )
        )
    )


@router.get("", response_model=PaymentList, summary="List payments")
def list_payments(
    request: Request,
    state: StateDep,
    principal: AnyKey,
    limit: Limit = DEFAULT_LIMIT,
    starting_after: StartingAfter = None,
    invoice: Annotated[str | None, Query(pattern=r"^inv_[0-9A-Za-z]{24}$")] = None,
    customer: Annotated[str | None, Query(pattern=r"^cus_[0-9A-Za-z]{24}$")] = None,
) -> Any:
    """Newest first. Partner keys see only their customer's payments."""
    statement = select(Payment)
    scope = partner_scope(principal)
    if scope is not None:
        statement = statement.where(Payment.customer_id == scope)
    if invoice is not None:
        statement = statement.where(Payment.invoice_id == invoice)
    if customer is not None:
        statement = statement.where(Payment.customer_id == customer)
    with transaction(state.sessions) as session:
        return page(
            session,
            statement,
            Payment,
            limit=limit,
            starting_after=starting_after,
            url=request.url.path,
            render=render.payment,
        )


@router.get("/{payment_id}", response_model=PaymentOut, summary="Retrieve a payment")
def get_payment(payment_id: PaymentPath, state: StateDep, principal: AnyKey) -> Any:
    with transaction(state.sessions) as session:
        return render.payment(service.get_payment(session, payment_id=payment_id, partner_of=partner_scope(principal)))


@router.post("/{payment_id}/reverse", response_model=PaymentOut, summary="Reverse a payment")
def reverse_payment(payment_id: PaymentPath, writer: WriterDep, body: ReasonIn | None = None) -> Any:
    """A payment booked in error (or charged back): appends `payment_reversed` and posts the
    exact opposite of the booking. The invoice is open again for what it un-pays. On-chain payments
    are refused (409 `payment_onchain`): the reconciler owns them (see /v1/chain_payments)."""
    reason = body.reason if body else ""
    ledger_id = writer.state.settings.ledger_id

    def work(session: Any) -> dict[str, Any]:
        if service.get_payment(session, payment_id=payment_id).method in service.CHAIN_METHODS:
            # The reconciler owns on-chain bookings (issue 7): a reorg reverses them; a transfer
            # booked to the wrong invoice goes back to suspense with /v1/chain_payments/{id}/unapply.
            raise Conflict(
                "an on-chain payment is reversed by the chain (reorg) or unapplied via /v1/chain_payments",
                code="payment_onchain",
            )
        return render.payment(
            service.reverse_payment(session, ledger_id=ledger_id, payment_id=payment_id, reason=reason)
        )

    return writer.run(work)
