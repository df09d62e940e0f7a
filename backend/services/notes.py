"""Credit and debit notes: adjust a finalized invoice; each is the invoice's next terms version.

A credit note lowers the balance; the part beyond the balance becomes customer credit (the
ledger's rule: never below zero otherwise). A debit note raises it. Both post revenue and tax
with the receivable (and customer credit), and append `credit_note` / `debit_note` carrying the
new terms, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.models import Customer, InvoiceNote
from backend.services import invoices as invoice_service
from backend.services import journal
from backend.services.common import NotFound, new_id, now_s
from backend.services.journal import Account, Line
from ledger import invoices as rules
from ledger.entries import EntryKind, build_document
from ledger.errors import CurrencyMismatch, InvoiceError
from ledger.money import currency_code
from ledger.terms import Terms

NoteKind = Literal["credit_note", "debit_note"]
_PREFIX = {"credit_note": "cn", "debit_note": "dn"}


def get_note(session: Session, *, kind: NoteKind, note_id: str, partner_of: str | None = None) -> InvoiceNote:
    row = None
    if note_id.startswith(_PREFIX[kind] + "_") and len(note_id) <= 40:
        row = session.scalars(
            select(InvoiceNote).where(InvoiceNote.id == note_id, InvoiceNote.type == kind)
        ).one_or_none()
    if row is None or (partner_of is not None and row.customer_id != partner_of):
        raise NotFound(f"no {kind.replace('_', ' ')} {note_id}", param="id")
    return row


def create_note(
    session: Session,
    *,
    ledger_id: str,
    kind: NoteKind,
    invoice_id: str,
    lines: Sequence[dict[str, Any]],
    reason: str = "",
    currency: str | None = None,
    allow_customer_credit: bool = False,
    metadata: dict[str, str] | None = None,
    late_fee: bool = False,
    late_fee_of: Terms | None = None,
    discount: bool = False,
    discount_of: Terms | None = None,
) -> InvoiceNote:
    """Apply a credit or debit note to a finalized invoice (in the caller's transaction).

    For the reconciler only: `late_fee` marks a debit note booking the late fee the settlement
    contract computed (the next terms charge none), `late_fee_of` a credit note reversing one (the
    next terms charge the late fee of those terms again); see `ledger.invoices.apply_debit_note`.
    `discount` marks a credit note booking the early-payment discount a payment took (the next
    terms grant none), `discount_of` a debit note reversing one (the next terms grant the discount
    of those terms again); see `ledger.invoices.apply_credit_note`.
    """
    debit_only, credit_only = late_fee or discount_of is not None, discount or late_fee_of is not None
    if (debit_only and kind != "debit_note") or (credit_only and kind != "credit_note"):
        raise InvoiceError("late_fee and discount_of go with a debit note, discount and late_fee_of with a credit note")
    invoice = invoice_service.get_invoice(session, invoice_id=invoice_id, for_update=True)
    if currency is not None and currency_code(currency) != invoice.currency:
        raise CurrencyMismatch(f"invoice {invoice.id} is in {invoice.currency}, not {currency}", param="currency")
    items = invoice_service.line_items(lines)
    totals = rules.compute_totals(items)
    state = invoice_service.rules_state(invoice)
    if kind == "credit_note":
        outcome = rules.apply_credit_note(
            state,
            totals.total_minor,
            allow_customer_credit=allow_customer_credit,
            late_fee_of=late_fee_of,
            discount=discount,
        )
        # Revenue and tax go back in full; the receivable only by what was applied to the invoice.
        posting = [
            Line(Account.REVENUE, totals.subtotal_minor),
            Line(Account.TAX_PAYABLE, totals.tax_minor),
            Line(Account.RECEIVABLE, -outcome.applied_minor),
            Line(Account.CUSTOMER_CREDIT, -outcome.to_customer_credit_minor),
        ]
    else:
        outcome = rules.apply_debit_note(state, totals.total_minor, late_fee=late_fee, discount_of=discount_of)
        posting = [
            Line(Account.RECEIVABLE, totals.total_minor),
            Line(Account.REVENUE, -totals.subtotal_minor),
            Line(Account.TAX_PAYABLE, -totals.tax_minor),
        ]
    if outcome.terms is None:  # the rules give every note a terms version; check it anyway
        raise InvoiceError("a note must produce the next terms version")
    created = now_s()
    note_id = new_id(_PREFIX[kind])
    fields: dict[str, Any] = {
        "currency": invoice.currency,
        "amount_minor": totals.total_minor,
        "reason": reason,
        "terms": outcome.terms,
    }
    if kind == "credit_note":
        fields.update(
            credit_note_id=note_id,
            applied_minor=outcome.applied_minor,
            to_customer_credit_minor=outcome.to_customer_credit_minor,
        )
        entry_kind = EntryKind.CREDIT_NOTE
    else:
        fields.update(debit_note_id=note_id)
        entry_kind = EntryKind.DEBIT_NOTE
    document = build_document(entry_kind, **invoice_service.envelope(invoice, ledger_id, created), **fields)
    invoice_service.store_state(invoice, outcome.invoice, created)
    if outcome.to_customer_credit_minor:
        add_customer_credit(session, invoice.customer_id, outcome.to_customer_credit_minor)
    note = InvoiceNote(
        id=note_id,
        type=kind,
        invoice_id=invoice.id,
        customer_id=invoice.customer_id,
        currency=invoice.currency,
        lines=[item.to_document() for item in items],
        subtotal_minor=totals.subtotal_minor,
        tax_minor=totals.tax_minor,
        total_minor=totals.total_minor,
        excess_to_credit_minor=outcome.to_customer_credit_minor,
        reason=reason,
        terms_version=outcome.terms.version,
        entry_sequence=-1,
        metadata_=metadata or {},
        created=created,
    )
    session.add(note)
    session.flush()
    (entry,) = invoice_service.append_for(session, ledger_id=ledger_id, row=invoice, documents=[document])
    note.entry_sequence = entry.sequence
    journal.post(
        session,
        ledger_id=ledger_id,
        currency=invoice.currency,
        lines=posting,
        created=created,
        entry_sequence=entry.sequence,
        customer_id=invoice.customer_id,
        invoice_id=invoice.id,
    )
    return note


def add_customer_credit(session: Session, customer_id: str, amount_minor: int) -> None:
    """Move a customer's credit balance (positive: the customer has more credit with us)."""
    session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(credit_balance_minor=Customer.credit_balance_minor + amount_minor)
        .execution_options(synchronize_session=False)
    )
