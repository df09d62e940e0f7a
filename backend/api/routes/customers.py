"""/v1/customers: create, list, retrieve, update."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import select

from backend.api import render
from backend.api.deps import AnyKey, StaffKey, StateDep
from backend.api.errors import ERROR_RESPONSES
from backend.api.idempotency import WriterDep
from backend.api.pages import DEFAULT_LIMIT, Limit, StartingAfter, page
from backend.api.schemas import CustomerCreate, CustomerList, CustomerOut, CustomerUpdate
from backend.db import transaction
from backend.models import Customer
from backend.services import customers as service
from backend.services.common import NotFound

router = APIRouter(prefix="/v1/customers", tags=["customers"], responses=ERROR_RESPONSES)
CustomerPath = Annotated[str, Path(max_length=40, description="A customer id (cus_...).")]


@router.post("", response_model=CustomerOut, summary="Create a customer")
def create_customer(body: CustomerCreate, writer: WriterDep) -> Any:
    """Creates a customer and appends a `customer_created` ledger entry (and `credit_limit_changed`
    when a credit limit is given)."""
    ledger_id = writer.state.settings.ledger_id
    return writer.run(
        lambda session: render.customer(service.create_customer(session, ledger_id=ledger_id, **body.model_dump()))
    )


@router.get("", response_model=CustomerList, summary="List customers")
def list_customers(
    request: Request,
    state: StateDep,
    principal: StaffKey,
    limit: Limit = DEFAULT_LIMIT,
    starting_after: StartingAfter = None,
    external_id: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_\-.:]+$")] = None,
) -> Any:
    """Newest first. Filter by `external_id` to find the customer synced from your CRM."""
    statement = select(Customer)
    if external_id is not None:
        statement = statement.where(Customer.external_id == external_id)
    with transaction(state.sessions) as session:
        return page(
            session,
            statement,
            Customer,
            limit=limit,
            starting_after=starting_after,
            url=request.url.path,
            render=render.customer,
        )


@router.get("/{customer_id}", response_model=CustomerOut, summary="Retrieve a customer")
def get_customer(customer_id: CustomerPath, state: StateDep, principal: AnyKey) -> Any:
    """Partner keys see only their own customer."""
    if principal.is_partner and principal.customer_id != customer_id:
        raise NotFound(f"no customer {customer_id}", param="customer")
    with transaction(state.sessions) as session:
        return render.customer(service.get_customer(session, customer_id=customer_id))


@router.post("/{customer_id}", response_model=CustomerOut, summary="Update a customer")
def update_customer(customer_id: CustomerPath, body: CustomerUpdate, writer: WriterDep) -> Any:
    """Changes the fields given. A new `credit_limit_minor` appends `credit_limit_changed`.
    The currency cannot change (invoices and balances are in it)."""
    ledger_id = writer.state.settings.ledger_id
    changes = body.model_dump(exclude_unset=True)
    for field in ("name", "wallet_addresses", "metadata", "credit_limit_minor", "credit_limit_reason"):
        if field in changes and changes[field] is None:
            del changes[field]  # null for these means "no change"; they cannot be cleared
    return writer.run(
        lambda session: render.customer(
            service.update_customer(session, ledger_id=ledger_id, customer_id=customer_id, **changes)
        )
    )
