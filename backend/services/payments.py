"""The booking service: every payment, off-chain (this API) or on-chain (the reconciler, issue 7),
is booked by `book_payment` and undone by `reverse_payment`.

A booking applies the payment to the invoice (exact, partial, or over: the excess becomes
customer credit), appends `payment_booked`, and posts cash (off-chain) or crypto clearing
(on-chain) against the receivable and customer credit. A payment the settlement contract did not
count under the invoice key (off-chain, or a plain token `transfer` to the payee) also appends
`terms_updated`: the on-chain amount still due went down, so the terms get a new version (an
`onchain` contract payment needs none: the contract deducts what was paid under the key).
The same outside payment is never booked twice: (method, reference) is unique.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import JournalLine, Payment
from backend.services import invoices as invoice_service
from backend.services import journal
from backend.services.common import Conflict, InvalidRequest, NotFound, is_id, new_id, now_s
from backend.services.journal import Account, Line
from backend.services.notes import add_customer_credit
from ledger import invoices as rules
from ledger.entries import EntryKind, build_document
from ledger.errors import CurrencyMismatch
from ledger.money import currency_code

Method = Literal["bank", "card", "onchain", "transfer"]
# Money that arrived on-chain: `onchain` through InvoiceSettlement.pay, `transfer` as a plain ERC-20
# transfer to the payee (the reconciler, issue 7). Both carry `chain` and post to crypto clearing.
CHAIN_METHODS = frozenset({"onchain", "transfer"})


def get_payment(session: Session, *, payment_id: str, partner_of: str | None = None) -> Payment:
    row = None
    if is_id(payment_id, "pay"):
        row = session.scalars(select(Payment).where(Payment.id == payment_id)).one_or_none()
    if row is None or (partner_of is not None and row.customer_id != partner_of):
        raise NotFound(f"no payment {payment_id}", param="id")
    return row


def book_payment(
    session: Session,
    *,
    ledger_id: str,
    invoice_id: str,
    amount_minor: int,
    currency: str,
    method: Method,
    reference: str,
    received_at: int | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    chain: dict[str, Any] | None = None,
) -> Payment:
    """Book a payment against an invoice in the caller's transaction; return the payment row.

    `chain` ({chain_id, tx_hash, log_index, token, amount_token}, formats.md) is required for,
    and only for, the on-chain methods (`onchain`, `transfer`). Raises
    `Conflict(payment_already_booked)` for a (method, reference) seen before, so a redelivered
    payment is harmless.
    """
    if (method in CHAIN_METHODS) != (chain is not None):
        raise InvalidRequest("`chain` goes with the on-chain methods, and only with them", param="chain")
    currency = currency_code(currency)
    invoice = invoice_service.get_invoice(session, invoice_id=invoice_id, for_update=True)
    if currency != invoice.currency:
        raise CurrencyMismatch(f"invoice {invoice.id} is in {invoice.currency}, not {currency}", param="currency")
    if session.scalar(select(Payment.id).where(Payment.method == method, Payment.reference == reference)):
        raise Conflict(
            f"{method} payment {reference!r} is already booked", code="payment_already_booked", param="reference"
        )
    onchain = method == "onchain"
    was_uncollectible = invoice.status == "uncollectible"
    outcome = rules.apply_payment(invoice_service.rules_state(invoice), amount_minor, onchain=onchain)
    created = now_s()
    payment = Payment(
        id=new_id("pay"),
        customer_id=invoice.customer_id,
        invoice_id=invoice.id,
        method=method,
        reference=reference,
        currency=currency,
        amount_minor=amount_minor,
        applied_minor=outcome.applied_minor,
        to_credit_minor=outcome.to_customer_credit_minor,
        status="succeeded",
        description=description,
        received_at=received_at,
        entry_sequence=-1,
        metadata_=metadata or {},
        created=created,
    )
    envelope = invoice_service.envelope(invoice, ledger_id, created)
    extra = {"chain": chain} if chain is not None else {}
    documents = [
        build_document(
            EntryKind.PAYMENT_BOOKED,
            payment_id=payment.id,
            currency=currency,
            amount_minor=amount_minor,
            source="onchain" if chain is not None else "offchain",
            reference=reference,
            **extra,
            **envelope,
        )
    ]
    if outcome.terms is not None:
        documents.append(
            build_document(
                EntryKind.TERMS_UPDATED, reason=f"{method} payment {payment.id}", terms=outcome.terms, **envelope
            )
        )
    invoice_service.store_state(invoice, outcome.invoice, created)
    session.add(payment)
    if outcome.to_customer_credit_minor:
        add_customer_credit(session, invoice.customer_id, outcome.to_customer_credit_minor)
    session.flush()
    entries = invoice_service.append_for(session, ledger_id=ledger_id, row=invoice, documents=documents)
    payment.entry_sequence = entries[0].sequence
    # A payment on a written-off invoice recovers bad debt; otherwise it settles the receivable.
    settled = Account.BAD_DEBT if was_uncollectible else Account.RECEIVABLE
    journal.post(
        session,
        ledger_id=ledger_id,
        currency=currency,
        created=created,
        lines=[
            Line(Account.CRYPTO_CLEARING if chain is not None else Account.CASH, amount_minor),
            Line(settled, -outcome.applied_minor),
            Line(Account.CUSTOMER_CREDIT, -outcome.to_customer_credit_minor),
        ],
        entry_sequence=entries[0].sequence,
        customer_id=invoice.customer_id,
        invoice_id=invoice.id,
        payment_id=payment.id,
    )
    return payment


def reverse_payment(session: Session, *, ledger_id: str, payment_id: str, reason: str = "") -> Payment:
    """Undo a booking exactly: `payment_reversed`, the opposite journal lines, the invoice reopened
    for what the payment had applied (off-chain: and a new terms version).

    On a written-off invoice, a payment booked before the write-off had settled receivable that
    the write-off then left alone: its amount is written off too (a `write_off` entry, bad debt
    against the receivable it reopened), or the receivable would keep it for good and a full
    recovery would leave bad debt below zero."""
    payment = get_payment(session, payment_id=payment_id)
    payment = session.scalars(select(Payment).where(Payment.id == payment.id).with_for_update()).one()
    if payment.status != "succeeded":
        raise Conflict(f"payment {payment.id} is already reversed", code="payment_already_reversed")
    invoice = invoice_service.get_invoice(session, invoice_id=payment.invoice_id or "", for_update=True)
    onchain = payment.method == "onchain"
    written_off_before = invoice.written_off_minor
    booked = [
        Line(Account(account), -int(amount))
        for account, amount in session.execute(
            select(JournalLine.account, JournalLine.amount_minor).where(JournalLine.payment_id == payment.id)
        )
    ]
    # Booked before the write-off, a payment settled receivable; after it, it recovered bad debt.
    before_write_off = any(line.account is Account.RECEIVABLE for line in booked)
    created = now_s()
    documents = []
    envelope = invoice_service.envelope(invoice, ledger_id, created)
    documents.append(
        build_document(
            EntryKind.PAYMENT_REVERSED,
            payment_id=payment.id,
            reversal_id=new_id("rev"),
            currency=payment.currency,
            amount_minor=payment.amount_minor,
            reason=reason,
            **envelope,
        )
    )
    if payment.applied_minor:
        outcome = rules.reverse_payment(
            invoice_service.rules_state(invoice),
            payment.applied_minor,
            onchain=onchain,
            before_write_off=before_write_off,
        )
        if outcome.terms is not None:
            documents.append(
                build_document(
                    EntryKind.TERMS_UPDATED, reason=f"payment {payment.id} reversed", terms=outcome.terms, **envelope
                )
            )
        invoice_service.store_state(invoice, outcome.invoice, created)
    written_off = invoice.written_off_minor - written_off_before
    if written_off:  # appended last: its journal lines go with entries[-1]
        documents.append(
            build_document(
                EntryKind.WRITE_OFF,
                currency=invoice.currency,
                amount_minor=written_off,
                reason=f"payment {payment.id}, booked before the write-off, reversed",
                **envelope,
            )
        )
    if payment.to_credit_minor:
        add_customer_credit(session, payment.customer_id, -payment.to_credit_minor)
    payment.status, payment.reversed_at = "reversed", created
    session.flush()
    entries = invoice_service.append_for(session, ledger_id=ledger_id, row=invoice, documents=documents)
    payment.reversal_entry_sequence = entries[0].sequence
    postings = [journal.Posting(payment.currency, booked, entries[0].sequence, invoice.customer_id, invoice.id,
                                payment.id)]  # fmt: skip
    if written_off:
        lines = [Line(Account.BAD_DEBT, written_off), Line(Account.RECEIVABLE, -written_off)]
        postings.append(journal.Posting(invoice.currency, lines, entries[-1].sequence, invoice.customer_id, invoice.id))
    journal.post_many(session, ledger_id=ledger_id, created=created, postings=postings)
    return payment
