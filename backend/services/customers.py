"""Customers: who is billed, in which currency, from which wallets, paid to which payee.

Creating a customer appends `customer_created`; setting or changing the credit limit appends
`credit_limit_changed` (formats.md kinds 11 and 9), in the same transaction as the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Customer
from backend.services import ledger as ledger_service
from backend.services.common import Conflict, InvalidRequest, NotFound, is_id, new_id, now_s, wallet_addresses_max
from ledger.entries import EntryKind, build_document, customer_key
from ledger.money import Money, currency_code

_UNSET: Any = object()


def get_customer(session: Session, *, customer_id: str, for_update: bool = False) -> Customer:
    row = None
    if is_id(customer_id, "cus"):
        statement = select(Customer).where(Customer.id == customer_id)
        row = session.scalars(statement.with_for_update() if for_update else statement).one_or_none()
    if row is None:
        raise NotFound(f"no customer {customer_id}", param="customer")
    return row


def _check_external_id(session: Session, external_id: str | None, own_id: str | None) -> None:
    if external_id is None:
        return
    holder = session.scalar(select(Customer.id).where(Customer.external_id == external_id))
    if holder is not None and holder != own_id:
        raise Conflict(
            f"external_id {external_id!r} belongs to {holder}",
            code="external_id_taken",
            param="external_id",
        )


def _wallets(addresses: Sequence[str]) -> list[str]:
    unique = list(dict.fromkeys(addresses))
    if len(unique) > wallet_addresses_max:
        raise InvalidRequest(f"at most {wallet_addresses_max} wallet addresses", param="wallet_addresses")
    return unique


def _limit_entry(
    ledger_id: str, customer: Customer, limit_minor: int, previous_minor: int, reason: str, created: int
) -> ledger_service.NewEntry:
    Money(limit_minor, customer.currency)  # the ledger's amount bound, with its error code
    document = build_document(
        EntryKind.CREDIT_LIMIT_CHANGED,
        ledger_id=ledger_service.ledger_key(ledger_id),
        created=created,
        customer_id=customer.id,
        currency=customer.currency,
        limit_minor=limit_minor,
        previous_limit_minor=previous_minor,
        reason=reason,
    )
    return ledger_service.NewEntry(document, customer_id=customer.id)


def create_customer(
    session: Session,
    *,
    ledger_id: str,
    name: str,
    currency: str,
    email: str | None = None,
    external_id: str | None = None,
    wallet_addresses: Sequence[str] = (),
    payee_address: str | None = None,
    credit_limit_minor: int | None = None,
    metadata: dict[str, str] | None = None,
) -> Customer:
    currency = currency_code(currency)
    _check_external_id(session, external_id, None)
    created = now_s()
    customer_id = new_id("cus")
    customer = Customer(
        id=customer_id,
        name=name,
        email=email,
        external_id=external_id,
        currency=currency,
        wallet_addresses=_wallets(wallet_addresses),
        payee_address=payee_address,
        credit_limit_minor=credit_limit_minor,
        credit_balance_minor=0,
        subject=customer_key(ledger_service.ledger_key(ledger_id), customer_id),
        metadata_=metadata or {},
        created=created,
        updated=created,
    )
    document = build_document(
        EntryKind.CUSTOMER_CREATED,
        ledger_id=ledger_service.ledger_key(ledger_id),
        created=created,
        customer_id=customer_id,
        currency=currency,
    )
    entries = [ledger_service.NewEntry(document, customer_id=customer_id)]
    if credit_limit_minor is not None:
        entries.append(_limit_entry(ledger_id, customer, credit_limit_minor, 0, "initial credit limit", created))
    session.add(customer)
    session.flush()
    ledger_service.append_entries(session, ledger_id=ledger_id, entries=entries)
    return customer


def update_customer(
    session: Session,
    *,
    ledger_id: str,
    customer_id: str,
    name: str = _UNSET,
    email: str | None = _UNSET,
    external_id: str | None = _UNSET,
    wallet_addresses: Sequence[str] = _UNSET,
    payee_address: str | None = _UNSET,
    credit_limit_minor: int | None = _UNSET,
    credit_limit_reason: str = "credit limit changed",
    metadata: dict[str, str] = _UNSET,
) -> Customer:
    """Change the given fields (omitted ones keep their value); a new credit limit is an entry."""
    customer = get_customer(session, customer_id=customer_id, for_update=True)
    if external_id is not _UNSET:
        _check_external_id(session, external_id, customer.id)
        customer.external_id = external_id
    if name is not _UNSET:
        customer.name = name
    if email is not _UNSET:
        customer.email = email
    if wallet_addresses is not _UNSET:
        customer.wallet_addresses = _wallets(wallet_addresses)
    if payee_address is not _UNSET:
        customer.payee_address = payee_address
    if metadata is not _UNSET:
        customer.metadata_ = metadata
    customer.updated = now_s()
    session.flush()
    if credit_limit_minor is not _UNSET and credit_limit_minor != customer.credit_limit_minor:
        previous = customer.credit_limit_minor or 0
        customer.credit_limit_minor = credit_limit_minor
        entry = _limit_entry(
            ledger_id, customer, credit_limit_minor or 0, previous, credit_limit_reason, customer.updated
        )
        session.flush()
        ledger_service.append_entry(session, ledger_id=ledger_id, entry=entry)
    return customer
