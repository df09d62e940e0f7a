"""Settlement over HTTP (issue 7): payment instructions per invoice, the token registry (admin),
chain payments as the reconciler saw them, suspense, and manual apply / unapply (back office).

Schemas live here, next to the routes: they are the settlement package's own shapes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from backend.anchoring.chain import ChainUnavailable
from backend.api.deps import AnyKey, StaffKey, StateDep, partner_scope
from backend.api.errors import ERROR_RESPONSES, ApiError
from backend.api.fields import Address, Currency, InvoiceId, Strict, text
from backend.api.idempotency import AdminWriterDep, WriterDep
from backend.api.pages import DEFAULT_LIMIT, Limit, StartingAfter, page
from backend.db import transaction
from backend.models import ChainPayment
from backend.settlement import booking
from backend.settlement import tokens as registry
from backend.settlement.instructions import ChainView, payment_instructions

router = APIRouter(tags=["settlement"], responses=ERROR_RESPONSES)
InvoicePath = Annotated[str, Path(max_length=40, description="An invoice id (inv_...).")]
TokenPath = Annotated[str, Path(max_length=40, description="A settlement token id (tok_...).")]
ChainPaymentPath = Annotated[str, Path(max_length=40, description="A chain payment id (cpm_...).")]


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class TokenCreate(Strict):
    chain_id: Annotated[int, Field(ge=1, le=2**53 - 1, strict=True, examples=[31337])]
    address: Address  # type: ignore[valid-type]
    currency: Currency  # type: ignore[valid-type]
    decimals: Annotated[int, Field(ge=0, le=registry.token_decimals_max, strict=True, examples=[6])]
    symbol: text(16) | None = None  # type: ignore[valid-type]
    is_default: bool | None = Field(
        default=None, description="Issue new invoices in this currency in this token (default: if it is the first)."
    )


class TokenUpdate(Strict):
    symbol: text(16) | None = None  # type: ignore[valid-type]
    is_default: bool | None = None


class ApplyIn(Strict):
    invoice: InvoiceId  # type: ignore[valid-type]


class UnapplyIn(Strict):
    reason: text(1000) = ""  # type: ignore[valid-type]


# --- Payment instructions -----------------------------------------------------------------------


@router.get(
    "/v1/invoices/{invoice_id}/payment",
    response_model=Out,
    summary="How to pay an invoice on-chain",
    responses={409: {"description": "Not payable, or its current terms are not anchored yet (`not_anchored`)."}},
)
def invoice_payment(invoice_id: InvoicePath, state: StateDep, principal: AnyKey) -> Any:
    """Chain id, token, settlement contract, the amount due now (terms math at the latest block,
    minus what the contract counts as paid), the `pay()` calldata with its inclusion proof against
    the latest confirmed anchor, the approval needed, and an EIP-681 URI for a plain transfer.
    Pay with `tally pay INVOICE --keystore FILE`."""

    def chain_view() -> ChainView:
        try:
            return ChainView.of(state.w3, state.deployments)
        except ChainUnavailable as error:
            raise ApiError(503, "api_error", "chain_unavailable", f"the chain does not answer: {error}") from error

    with transaction(state.sessions) as session:
        return payment_instructions(
            session,
            ledger_id=state.settings.ledger_id,
            invoice_id=invoice_id,
            settings=state.settings,
            chain_view=chain_view,
            partner_of=partner_scope(principal),
        )


# --- Token registry -----------------------------------------------------------------------------


@router.get("/v1/settlement_tokens", response_model=Out, summary="List registered settlement tokens")
def list_tokens(
    request: Request,
    state: StateDep,
    principal: AnyKey,
    chain_id: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
    include_disabled: bool = False,
) -> Any:
    """Which token on which chain stands for which currency (oldest first)."""
    with transaction(state.sessions) as session:
        rows = registry.list_tokens(session, chain_id=chain_id, include_disabled=include_disabled)
        return {"object": "list", "data": [registry.render(row) for row in rows], "has_more": False,
                "url": request.url.path}  # fmt: skip


@router.post("/v1/settlement_tokens", response_model=Out, summary="Register a settlement token")
def create_token(body: TokenCreate, writer: AdminWriterDep) -> Any:
    """A registered address keeps its currency and decimals (409 `token_already_registered`)."""
    return writer.run(lambda session: registry.render(registry.register_token(session, **body.model_dump())))


@router.get("/v1/settlement_tokens/{token_id}", response_model=Out, summary="Retrieve a settlement token")
def get_token(token_id: TokenPath, state: StateDep, principal: AnyKey) -> Any:
    with transaction(state.sessions) as session:
        return registry.render(registry.get_token(session, token_id=token_id))


@router.post("/v1/settlement_tokens/{token_id}", response_model=Out, summary="Update a settlement token")
def update_token(token_id: TokenPath, body: TokenUpdate, writer: AdminWriterDep) -> Any:
    """Symbol, or whether it is the default token of its currency on its chain."""
    changes = body.model_dump(exclude_unset=True)
    return writer.run(lambda session: registry.render(registry.update_token(session, token_id=token_id, **changes)))


@router.delete("/v1/settlement_tokens/{token_id}", response_model=Out, summary="Disable a settlement token")
def disable_token(token_id: TokenPath, writer: AdminWriterDep) -> Any:
    """No new invoices in it; its payments go to suspense. Kept for the payments it carried."""
    return writer.run(lambda session: registry.render(registry.disable_token(session, token_id=token_id)))


# --- Chain payments and suspense ----------------------------------------------------------------


def _render_page(session: Any, statement: Any, limit: int, starting_after: str | None, url: str) -> dict[str, Any]:
    result = page(session, statement, ChainPayment, limit=limit, starting_after=starting_after, url=url,
                  render=lambda row: row)  # fmt: skip
    rows = result["data"]
    suggestions = booking.suggestions_of(session, [row.id for row in rows if row.status == "suspense"])
    result["data"] = [booking.render(row, suggestions.get(row.id)) for row in rows]
    return result


@router.get("/v1/chain_payments", response_model=Out, summary="List payments seen on-chain")
def list_chain_payments(
    request: Request,
    state: StateDep,
    principal: AnyKey,
    limit: Limit = DEFAULT_LIMIT,
    starting_after: StartingAfter = None,
    status: Literal["booked", "suspense", "reversed"] | None = None,
    invoice: Annotated[str | None, Query(pattern=r"^inv_[0-9A-Za-z]{24}$")] = None,
) -> Any:
    """Newest first: every InvoicePaid event and plain transfer into a payee, once per
    (chain, tx, log), with what it was booked as. Partner keys see their customer's only."""
    statement = select(ChainPayment)
    scope = partner_scope(principal)
    if scope is not None:
        statement = statement.where(ChainPayment.customer_id == scope)
    if status is not None:
        statement = statement.where(ChainPayment.status == status)
    if invoice is not None:
        statement = statement.where(ChainPayment.invoice_id == invoice)
    with transaction(state.sessions) as session:
        return _render_page(session, statement, limit, starting_after, request.url.path)


@router.get("/v1/chain_payments/{chain_payment_id}", response_model=Out, summary="Retrieve a chain payment")
def get_chain_payment(chain_payment_id: ChainPaymentPath, state: StateDep, principal: AnyKey) -> Any:
    with transaction(state.sessions) as session:
        row = booking.get_chain_payment(session, chain_payment_id, partner_of=partner_scope(principal))
        return booking.render(row, booking.suggestions_of(session, [row.id]).get(row.id))


@router.get("/v1/suspense", response_model=Out, summary="Payments waiting in suspense")
def list_suspense(request: Request, state: StateDep, principal: StaffKey, limit: Limit = DEFAULT_LIMIT,
                  starting_after: StartingAfter = None) -> Any:  # fmt: skip
    """Newest first, each with why it is there (`reason`) and the invoices it may belong to."""
    statement = select(ChainPayment).where(ChainPayment.status == "suspense")
    with transaction(state.sessions) as session:
        return _render_page(session, statement, limit, starting_after, request.url.path)


@router.post("/v1/chain_payments/{chain_payment_id}/apply", response_model=Out, summary="Apply a suspense payment")
def apply_chain_payment(chain_payment_id: ChainPaymentPath, body: ApplyIn, writer: WriterDep) -> Any:
    """Books a payment from suspense onto the invoice given (the same booking as the reconciler's:
    `payment_booked` entry, journal lines; the suspense posting is reversed)."""
    ledger_id = writer.state.settings.ledger_id
    return writer.run(
        lambda session: booking.render(
            booking.manual_apply(
                session, ledger_id=ledger_id, chain_payment_id=chain_payment_id, invoice_id=body.invoice
            )
        )
    )


@router.post(
    "/v1/chain_payments/{chain_payment_id}/unapply", response_model=Out, summary="Move a payment back to suspense"
)
def unapply_chain_payment(chain_payment_id: ChainPaymentPath, writer: WriterDep, body: UnapplyIn | None = None) -> Any:
    """Reverses the booking of a plain transfer (or of a manual apply) and parks the payment in
    suspense again. An InvoicePaid event the reconciler booked is bound to its invoice by the
    contract: 409 `chain_payment_bound`."""
    ledger_id = writer.state.settings.ledger_id
    reason = body.reason if body else ""
    return writer.run(
        lambda session: booking.render(
            booking.manual_unapply(session, ledger_id=ledger_id, chain_payment_id=chain_payment_id, reason=reason)
        )
    )
