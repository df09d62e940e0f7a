"""Invoice rules: lifecycle, line items and tax, totals, credit and debit notes, payments.

Pure functions over a frozen `Invoice`; each returns the new state (the backend persists it and
appends the matching ledger entry). Illegal operations raise named errors.

Lifecycle::

    draft --finalize--> open --payment--> partially_paid --payment--> paid
    draft|open --void--> void                      (no payment booked; void is final)
    open|partially_paid --mark_uncollectible--> uncollectible --payment (to zero)--> paid

Credit notes, debit notes and reversals move an invoice between open, partially_paid and paid. A
written-off invoice never leaves uncollectible and paid; reversing a payment booked before the
write-off writes its amount off too (`reverse_payment`).

Tax rounding, stated once: tax is computed **per line**, `tax_minor = round_half_up(net_minor *
tax_bps / 10000)` in integers, i.e. `(net_minor * tax_bps + 5000) // 10000` (amounts are never
negative). The invoice tax is the sum of line taxes; total = subtotal + tax.

Balance identity, always: `balance = issued - credits + debits - payments`, where `credits` and
`payments` count only what was applied to this invoice (an excess is returned as customer
credit and is not part of the invoice) and `payments` is net of reversals. The balance never
goes below zero.

Terms: each credit note, debit note and off-chain payment (or reversal) yields the next terms
version with `amount_due = token units of (balance + paid on-chain)`, since the settlement
contract deducts what was already paid on-chain under the invoice key (formats.md). A debit note
that books a late fee the contract computed gives a version with no late fee: its `amount_due`
already holds the fee, and the contract would otherwise charge the fee again on it (a fee on the
fee). A credit note reversing that fee gives the late fee back. Likewise a credit note that books
the early-payment discount a payment took gives a version with no discount: the customer has had
it, and the contract would otherwise discount whatever a later version adds (a debit note inside
the window). A debit note reversing that discount gives the discount back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ledger import limits
from ledger.errors import (
    CreditExceedsBalance,
    IllegalTransition,
    InvalidLineItem,
    InvoiceError,
    ReversalExceedsPayments,
)
from ledger.money import currency_code, currency_exponent, require_int, to_token_units
from ledger.terms import Terms


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


# Statuses in which each operation is allowed; everything else is an IllegalTransition.
_S = InvoiceStatus
ALLOWED_FROM: dict[str, frozenset[InvoiceStatus]] = {
    "edit_lines": frozenset({_S.DRAFT}),
    "finalize": frozenset({_S.DRAFT}),
    "void": frozenset({_S.DRAFT, _S.OPEN}),
    "mark_uncollectible": frozenset({_S.OPEN, _S.PARTIALLY_PAID}),
    "credit_note": frozenset({_S.OPEN, _S.PARTIALLY_PAID, _S.PAID}),
    "debit_note": frozenset({_S.OPEN, _S.PARTIALLY_PAID, _S.PAID}),
    "payment": frozenset({_S.OPEN, _S.PARTIALLY_PAID, _S.PAID, _S.UNCOLLECTIBLE}),
    "reverse_payment": frozenset({_S.PARTIALLY_PAID, _S.PAID, _S.UNCOLLECTIBLE}),
}


def line_tax_minor(net_minor: int, tax_bps: int) -> int:
    """Per-line tax, rounded half up (the one rounding rule of invoices)."""
    return (net_minor * tax_bps + limits.bps_denominator // 2) // limits.bps_denominator


@dataclass(frozen=True)
class LineItem:
    description: str
    quantity: int
    unit_amount_minor: int
    tax_bps: int = 0

    def __post_init__(self) -> None:
        checks = [
            ("quantity", 1, limits.line_quantity_max),
            ("unit_amount_minor", 0, limits.amount_minor_abs_max),
            ("tax_bps", 0, limits.tax_bps_max),
        ]
        for name, low, high in checks:
            value = require_int(getattr(self, name), name)
            if not low <= value <= high:
                raise InvalidLineItem(f"{name} must be in [{low}, {high}]", param=name)
        if not isinstance(self.description, str) or len(self.description) > limits.text_chars_max:
            raise InvalidLineItem("description must be a short string", param="description")

    @property
    def net_minor(self) -> int:
        return self.quantity * self.unit_amount_minor

    @property
    def tax_minor(self) -> int:
        return line_tax_minor(self.net_minor, self.tax_bps)

    def to_document(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "quantity": self.quantity,
            "unit_amount_minor": self.unit_amount_minor,
            "tax_bps": self.tax_bps,
            "net_minor": self.net_minor,
            "tax_minor": self.tax_minor,
        }


@dataclass(frozen=True)
class Totals:
    subtotal_minor: int
    tax_minor: int
    total_minor: int


def compute_totals(lines: tuple[LineItem, ...] | list[LineItem]) -> Totals:
    if len(lines) > limits.invoice_lines_max:
        raise InvalidLineItem(f"an invoice has at most {limits.invoice_lines_max} lines")
    subtotal = sum(line.net_minor for line in lines)
    tax = sum(line.tax_minor for line in lines)
    if subtotal + tax > limits.amount_minor_abs_max:
        raise InvalidLineItem("invoice total exceeds the largest amount a document can hold")
    return Totals(subtotal, tax, subtotal + tax)


@dataclass(frozen=True)
class Invoice:
    """An invoice's state. `balance_minor` is derived, never stored."""

    invoice_id: str
    currency: str
    status: InvoiceStatus = InvoiceStatus.DRAFT
    lines: tuple[LineItem, ...] = ()
    issued_minor: int = 0
    credits_minor: int = 0
    debits_minor: int = 0
    payments_minor: int = 0  # net of reversals
    paid_onchain_minor: int = 0  # the part of payments_minor paid through the contract
    written_off_minor: int = 0
    token_decimals: int | None = None
    terms: Terms | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "currency", currency_code(self.currency))
        if self.balance_minor < 0 or not 0 <= self.paid_onchain_minor <= self.payments_minor:
            raise InvoiceError("invoice state breaks the balance rules")  # a bug upstream

    @property
    def balance_minor(self) -> int:
        return self.issued_minor - self.credits_minor + self.debits_minor - self.payments_minor

    @property
    def totals(self) -> Totals:
        return compute_totals(self.lines)


@dataclass(frozen=True)
class Applied:
    """Outcome of a credit note or payment: what went onto the invoice, what became customer
    credit, and the new terms version if one is due."""

    invoice: Invoice
    applied_minor: int
    to_customer_credit_minor: int
    terms: Terms | None


def issued_document_fields(invoice: Invoice) -> dict[str, Any]:
    """The amount fields of an `invoice_issued` document for a finalized invoice: currency,
    lines, subtotal, tax, total, token decimals and terms (ledger.entries.build_document adds
    the envelope, invoice_id, salt, customer_id and due_date)."""
    if invoice.terms is None or invoice.token_decimals is None:
        raise InvoiceError("only a finalized invoice has issued-document fields")
    totals = invoice.totals
    return {
        "currency": invoice.currency,
        "lines": [line.to_document() for line in invoice.lines],
        "subtotal_minor": totals.subtotal_minor,
        "tax_minor": totals.tax_minor,
        "total_minor": totals.total_minor,
        "token_decimals": invoice.token_decimals,
        "terms": invoice.terms,
    }


def _require(invoice: Invoice, operation: str) -> None:
    if invoice.status not in ALLOWED_FROM[operation]:
        raise IllegalTransition(f"cannot {operation.replace('_', ' ')} a {invoice.status} invoice")


def _positive(amount_minor: int, name: str = "amount_minor") -> int:
    amount = require_int(amount_minor, name)
    if not 0 < amount <= limits.amount_minor_abs_max:
        raise InvoiceError(f"{name} must be positive", param=name)
    return amount


def _settled(invoice: Invoice) -> Invoice:
    """Recompute the status of a finalized invoice from its balance."""
    if invoice.status in (_S.DRAFT, _S.VOID):
        return invoice
    if invoice.balance_minor == 0:
        status = _S.PAID
    elif invoice.status is _S.UNCOLLECTIBLE or invoice.written_off_minor > 0:
        # Written off once, uncollectible whenever something is owed again (a recovery reversed):
        # its terms stay cancelled on-chain, so it must not reopen.
        status = _S.UNCOLLECTIBLE
    else:
        status = _S.PARTIALLY_PAID if invoice.payments_minor > 0 else _S.OPEN
    return dataclasses.replace(invoice, status=status)


def _token_amount_due(invoice: Invoice) -> int:
    if invoice.token_decimals is None:
        raise InvoiceError("invoice has no token decimals; finalize it first")
    on_chain_total = invoice.balance_minor + invoice.paid_onchain_minor
    return to_token_units(on_chain_total, currency_exponent(invoice.currency), invoice.token_decimals)


def _next_terms(invoice: Invoice) -> Terms:
    if invoice.terms is None:
        raise InvoiceError("invoice has no terms; finalize it first")
    return invoice.terms.next_version(amount_due=_token_amount_due(invoice))


def _terms_live(invoice: Invoice) -> bool:
    """Whether the invoice still has settlement terms on-chain. A write-off cancels them for good
    (the anchorer sets the version to CANCELLED_VERSION, and versions never go down), even once
    the invoice is paid after all: a later terms version would be refused by LedgerAnchor."""
    return invoice.terms is not None and invoice.status is not _S.UNCOLLECTIBLE and invoice.written_off_minor == 0


def _require_not_written_off(invoice: Invoice, operation: str) -> None:
    if invoice.written_off_minor > 0:
        raise IllegalTransition(f"cannot {operation.replace('_', ' ')} a written-off invoice: its terms are cancelled")


def new_draft(invoice_id: str, currency: str, lines: list[LineItem] | None = None) -> Invoice:
    draft = Invoice(invoice_id=invoice_id, currency=currency, lines=tuple(lines or ()))
    compute_totals(draft.lines)
    return draft


def set_lines(invoice: Invoice, lines: list[LineItem]) -> Invoice:
    _require(invoice, "edit_lines")
    compute_totals(lines)
    return dataclasses.replace(invoice, lines=tuple(lines))


def finalize(invoice: Invoice, *, terms: Terms, token_decimals: int) -> Invoice:
    """Issue the invoice: its total becomes `issued`, and `terms` must be version 1 asking for
    exactly the total in token units."""
    _require(invoice, "finalize")
    total = invoice.totals.total_minor
    issued = dataclasses.replace(
        invoice, status=_S.OPEN, issued_minor=total, token_decimals=token_decimals, terms=terms
    )
    if terms.version != 1 or terms.amount_due != _token_amount_due(issued):
        raise InvoiceError("issued terms must be version 1 with amount_due = total in token units")
    return _settled(issued)


def void(invoice: Invoice) -> Invoice:
    """Void an invoice with no payment booked (credit or refund first otherwise)."""
    _require(invoice, "void")
    if invoice.payments_minor:
        raise IllegalTransition("cannot void an invoice with payments booked")
    return dataclasses.replace(invoice, status=_S.VOID)


def mark_uncollectible(invoice: Invoice) -> Invoice:
    """Write the balance off: the balance stays owed (a later payment still settles it)."""
    _require(invoice, "mark_uncollectible")
    return dataclasses.replace(invoice, status=_S.UNCOLLECTIBLE, written_off_minor=invoice.balance_minor)


def apply_credit_note(
    invoice: Invoice,
    amount_minor: int,
    *,
    allow_customer_credit: bool,
    late_fee_of: Terms | None = None,
    discount: bool = False,
) -> Applied:
    """Credit up to the balance; any excess becomes customer credit if allowed, else refused.

    `late_fee_of`: the note reverses a booked late fee (its payment left the chain), so the next
    terms charge the late fee of these terms (the version the fee was computed under) again: the
    version that booked the fee carried none (`apply_debit_note`).

    `discount`: the note books the early-payment discount a payment took from the settlement
    contract. The next terms grant no discount: the customer has had it, and the contract computes
    the discount on `amount_due`, so keeping it would discount again whatever a later version adds
    (a debit note inside the window) (formats.md)."""
    _require(invoice, "credit_note")
    _require_not_written_off(invoice, "credit_note")
    amount = _positive(amount_minor)
    applied = min(amount, invoice.balance_minor)
    excess = amount - applied
    if excess and not allow_customer_credit:
        raise CreditExceedsBalance(
            f"credit of {amount} exceeds the balance {invoice.balance_minor}", param="amount_minor"
        )
    credited = _settled(dataclasses.replace(invoice, credits_minor=invoice.credits_minor + applied))
    terms = _next_terms(credited)
    if late_fee_of is not None:
        terms = terms.with_late_fee_of(late_fee_of)
    if discount:
        terms = terms.without_discount()
    return Applied(dataclasses.replace(credited, terms=terms), applied, excess, terms)


def apply_debit_note(
    invoice: Invoice, amount_minor: int, *, late_fee: bool = False, discount_of: Terms | None = None
) -> Applied:
    """Raise what is due by `amount_minor`.

    `late_fee`: the note books a late fee the settlement contract computed. The next terms charge
    no late fee: their `amount_due` includes the fee, and the contract computes a late fee on
    `amount_due`, so keeping the fee would charge it again on itself (formats.md).

    `discount_of`: the note reverses a booked early-payment discount (its payment left the chain),
    so the next terms grant the discount of these terms (the version the discount was computed
    under) again: the version that booked the discount carried none (`apply_credit_note`)."""
    _require(invoice, "debit_note")
    _require_not_written_off(invoice, "debit_note")
    amount = _positive(amount_minor)
    debited = _settled(dataclasses.replace(invoice, debits_minor=invoice.debits_minor + amount))
    terms = _next_terms(debited)
    if late_fee:
        terms = terms.without_late_fee()
    if discount_of is not None:
        terms = terms.with_discount_of(discount_of)
    return Applied(dataclasses.replace(debited, terms=terms), amount, 0, terms)


def apply_payment(invoice: Invoice, amount_minor: int, *, onchain: bool) -> Applied:
    """Book a payment; an overpayment's excess is returned as customer credit. An off-chain
    payment yields a new terms version (the contract already knows on-chain payments)."""
    _require(invoice, "payment")
    amount = _positive(amount_minor)
    applied = min(amount, invoice.balance_minor)
    paid = _settled(
        dataclasses.replace(
            invoice,
            payments_minor=invoice.payments_minor + applied,
            paid_onchain_minor=invoice.paid_onchain_minor + (applied if onchain else 0),
        )
    )
    terms = None
    if not onchain and applied and _terms_live(invoice):
        terms = _next_terms(paid)
        paid = dataclasses.replace(paid, terms=terms)
    return Applied(paid, applied, amount - applied, terms)


def reverse_payment(invoice: Invoice, amount_minor: int, *, onchain: bool, before_write_off: bool) -> Applied:
    """Reverse (part of) a booked payment: a bounced transfer, or a chain reorg.

    `before_write_off`: the payment was booked before the invoice was written off. The write-off
    took only the balance left after it, so once the payment is gone its amount is owed by an
    invoice whose terms are cancelled for good: it is written off too (`written_off_minor` grows
    by it; the backend appends a `write_off` entry and posts it to bad debt). Reversing a payment
    booked after the write-off undoes a recovery: what is written off stays as it was."""
    _require(invoice, "reverse_payment")
    amount = _positive(amount_minor)
    limit = invoice.paid_onchain_minor if onchain else invoice.payments_minor - invoice.paid_onchain_minor
    if amount > limit:
        raise ReversalExceedsPayments(
            f"cannot reverse {amount}; {limit} booked {'on' if onchain else 'off'}-chain",
            param="amount_minor",
        )
    written_off = invoice.written_off_minor > 0 and before_write_off
    reversed_ = _settled(
        dataclasses.replace(
            invoice,
            payments_minor=invoice.payments_minor - amount,
            paid_onchain_minor=invoice.paid_onchain_minor - (amount if onchain else 0),
            written_off_minor=invoice.written_off_minor + (amount if written_off else 0),
        )
    )
    terms = None
    if not onchain and _terms_live(invoice):
        terms = _next_terms(reversed_)
        reversed_ = dataclasses.replace(reversed_, terms=terms)
    return Applied(reversed_, -amount, 0, terms)
