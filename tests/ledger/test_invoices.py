"""Invoice rules: lifecycle, per-line half-up tax, notes, payments; no sequence breaks the balance."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_samples import invoice_issued_document, sample_terms

from ledger.entries import Entry
from ledger.errors import (
    CreditExceedsBalance,
    IllegalTransition,
    InvalidLineItem,
    InvoiceError,
    LedgerError,
    ReversalExceedsPayments,
)
from ledger.invoices import (
    Invoice,
    InvoiceStatus,
    LineItem,
    apply_credit_note,
    apply_debit_note,
    apply_payment,
    compute_totals,
    finalize,
    issued_document_fields,
    line_tax_minor,
    mark_uncollectible,
    new_draft,
    reverse_payment,
    set_lines,
    void,
)
from ledger.terms import amount_due_at, remaining_at

S = InvoiceStatus
DECIMALS = 6  # token decimals; usd has 2, so 1 minor unit = 10**4 token units


def issued(total_lines: list[LineItem] | None = None) -> Invoice:
    lines = total_lines or [LineItem("Widgets", 4, 2_500, 1_000)]
    draft = new_draft("inv_1", "usd", lines)
    total = compute_totals(lines).total_minor
    return finalize(draft, terms=sample_terms(amount_due=total * 10**4), token_decimals=DECIMALS)


def test_tax_is_per_line_half_up() -> None:
    assert line_tax_minor(5, 1_000) == 1  # 0.5 -> 1
    assert line_tax_minor(4, 1_000) == 0  # 0.4 -> 0
    assert line_tax_minor(15, 1_000) == 2  # 1.5 -> 2
    assert line_tax_minor(10_000, 725) == 725
    lines = [LineItem("a", 1, 5, 1_000), LineItem("b", 1, 5, 1_000)]
    totals = compute_totals(lines)
    # Per line: 1 + 1 = 2 (on the invoice subtotal it would have been 1).
    assert (totals.subtotal_minor, totals.tax_minor, totals.total_minor) == (10, 2, 12)


def test_line_items_validated() -> None:
    for bad in [
        {"quantity": 0},
        {"quantity": 1.5},
        {"unit_amount_minor": -1},
        {"tax_bps": 10_001},
        {"unit_amount_minor": True},
    ]:
        fields = {"description": "x", "quantity": 1, "unit_amount_minor": 1, "tax_bps": 0, **bad}
        with pytest.raises((InvalidLineItem, TypeError, LedgerError)):
            LineItem(**fields)  # type: ignore[arg-type]


def test_lifecycle_happy_path() -> None:
    invoice = issued()
    assert (invoice.status, invoice.issued_minor, invoice.balance_minor) == (S.OPEN, 11_000, 11_000)
    paid_part = apply_payment(invoice, 1_000, onchain=True)
    assert paid_part.invoice.status is S.PARTIALLY_PAID and paid_part.terms is None
    paid = apply_payment(paid_part.invoice, 10_000, onchain=False)
    assert paid.invoice.status is S.PAID and paid.invoice.balance_minor == 0
    assert paid.terms is not None and paid.terms.version == 2
    assert paid.terms.amount_due == 1_000 * 10**4  # only the on-chain part remains counted


def test_issued_document_fields_build_a_valid_document() -> None:
    invoice = issued([LineItem("a", 3, 333, 725), LineItem("b", 1, 5, 1_000)])
    fields = issued_document_fields(invoice)
    document = invoice_issued_document(**fields)
    assert Entry(0, document).terms == invoice.terms
    assert document["total_minor"] == invoice.issued_minor == 999 + 72 + 5 + 1
    with pytest.raises(InvoiceError):
        issued_document_fields(new_draft("inv_2", "usd"))


def test_draft_rules() -> None:
    draft = new_draft("inv_1", "usd")
    draft = set_lines(draft, [LineItem("x", 1, 100)])
    with pytest.raises(IllegalTransition):
        apply_payment(draft, 1, onchain=False)
    with pytest.raises(InvoiceError):
        finalize(draft, terms=sample_terms(amount_due=1), token_decimals=DECIMALS)
    with pytest.raises(InvoiceError):
        finalize(draft, terms=sample_terms(amount_due=100 * 10**4, version=2), token_decimals=DECIMALS)
    assert void(draft).status is S.VOID
    opened = finalize(draft, terms=sample_terms(amount_due=100 * 10**4), token_decimals=DECIMALS)
    with pytest.raises(IllegalTransition):
        set_lines(opened, [])
    with pytest.raises(IllegalTransition):
        finalize(opened, terms=sample_terms(amount_due=100 * 10**4), token_decimals=DECIMALS)


def test_void_and_uncollectible() -> None:
    invoice = issued()
    voided = void(invoice)
    for operation in (
        lambda i: apply_payment(i, 1, onchain=False),
        lambda i: apply_credit_note(i, 1, allow_customer_credit=True),
        lambda i: apply_debit_note(i, 1),
        void,
        mark_uncollectible,
    ):
        with pytest.raises(IllegalTransition):
            operation(voided)
    partly = apply_payment(invoice, 100, onchain=False).invoice
    with pytest.raises(IllegalTransition):
        void(partly)
    bad = mark_uncollectible(partly)
    assert (bad.status, bad.written_off_minor, bad.balance_minor) == (S.UNCOLLECTIBLE, 10_900, 10_900)
    with pytest.raises(IllegalTransition):
        apply_credit_note(bad, 1, allow_customer_credit=True)
    late = apply_payment(bad, 10_900, onchain=False)
    assert late.invoice.status is S.PAID and late.terms is None


def test_a_written_off_invoice_never_reopens_or_gets_new_terms() -> None:
    """Write off, recover in full, then reverse the recovery or add a note: the terms were cancelled
    on-chain, and LedgerAnchor refuses a version below the cancelled one."""
    recovered = apply_payment(mark_uncollectible(issued()), 11_000, onchain=False).invoice
    assert recovered.status is S.PAID
    reversed_ = reverse_payment(recovered, 11_000, onchain=False, before_write_off=False)
    assert (reversed_.invoice.status, reversed_.terms) == (S.UNCOLLECTIBLE, None)
    assert reversed_.invoice.balance_minor == 11_000
    for note in (lambda i: apply_debit_note(i, 1), lambda i: apply_credit_note(i, 1, allow_customer_credit=True)):
        with pytest.raises(IllegalTransition, match="written-off"):
            note(recovered)


def test_a_payment_made_before_the_write_off_and_reversed_after_it_is_written_off_too() -> None:
    """Pay 40, write off 60, reverse the 40: all 100 is written off (the backend posts the 40 to
    bad debt), so a full recovery later leaves nothing written off that was not lost."""
    paid = apply_payment(issued([LineItem("Work", 1, 100)]), 40, onchain=False).invoice
    bad = mark_uncollectible(paid)
    assert (bad.written_off_minor, bad.balance_minor) == (60, 60)
    reversed_ = reverse_payment(bad, 40, onchain=False, before_write_off=True)
    assert (reversed_.invoice.status, reversed_.invoice.written_off_minor, reversed_.invoice.balance_minor) == (
        S.UNCOLLECTIBLE, 100, 100)  # fmt: skip
    assert reversed_.terms is None  # the terms stay cancelled
    recovered = apply_payment(reversed_.invoice, 100, onchain=False)
    assert (recovered.invoice.status, recovered.applied_minor, recovered.terms) == (S.PAID, 100, None)
    # A recovery (booked after the write-off) reversed: what is written off does not move.
    again = reverse_payment(recovered.invoice, 100, onchain=False, before_write_off=False)
    assert (again.invoice.written_off_minor, again.invoice.balance_minor) == (100, 100)
    # Before any write-off, the flag changes nothing.
    plain = reverse_payment(paid, 40, onchain=False, before_write_off=True)
    assert (plain.invoice.status, plain.invoice.written_off_minor) == (S.OPEN, 0)


def test_credit_notes() -> None:
    invoice = issued()
    with pytest.raises(CreditExceedsBalance):
        apply_credit_note(invoice, 11_001, allow_customer_credit=False)
    over = apply_credit_note(invoice, 12_000, allow_customer_credit=True)
    assert (over.applied_minor, over.to_customer_credit_minor) == (11_000, 1_000)
    assert over.invoice.status is S.PAID and over.invoice.balance_minor == 0
    part = apply_credit_note(invoice, 1_000, allow_customer_credit=False)
    assert part.invoice.balance_minor == 10_000 and part.invoice.status is S.OPEN
    assert part.terms is not None and (part.terms.version, part.terms.amount_due) == (2, 10_000 * 10**4)
    assert part.invoice.terms == part.terms


def test_debit_notes_raise_what_is_due() -> None:
    paid = apply_payment(issued(), 11_000, onchain=True).invoice
    raised = apply_debit_note(paid, 500)
    assert raised.invoice.status is S.PARTIALLY_PAID and raised.invoice.balance_minor == 500
    assert raised.terms is not None and raised.terms.amount_due == 11_500 * 10**4


def test_a_late_fee_note_gives_terms_that_charge_no_fee_and_its_reversal_gives_the_fee_back() -> None:
    """The contract computes the late fee on `amount_due`: a version whose amount already holds a
    booked fee must charge none, or the fee is charged on the fee."""
    invoice = issued()
    late = invoice.terms.due_date + 1  # type: ignore[union-attr]
    fee = amount_due_at(invoice.terms, late) - invoice.terms.amount_due  # type: ignore[arg-type, union-attr]
    assert fee == 110 * 10**4  # 1 % of $110.00: $1.10 in token units
    charged = apply_debit_note(invoice, fee // 10**4, late_fee=True)
    assert charged.terms is not None and charged.terms.amount_due == invoice.terms.amount_due + fee  # type: ignore[union-attr]
    assert (charged.terms.late_fee_bps, charged.terms.late_fee_period, charged.terms.late_fee_periods_max) == (0, 0, 0)
    assert amount_due_at(charged.terms, late + 10**9) == charged.terms.amount_due
    other = apply_debit_note(invoice, 11)  # a debit note for anything else keeps the late fee
    assert other.terms is not None and other.terms.late_fee_bps == invoice.terms.late_fee_bps  # type: ignore[union-attr]
    back = apply_credit_note(charged.invoice, fee // 10**4, allow_customer_credit=False, late_fee_of=invoice.terms)
    assert back.terms is not None and back.terms.version == 3
    assert back.terms == dataclasses.replace(invoice.terms, version=3)  # type: ignore[arg-type]


def test_a_discount_note_gives_terms_that_grant_no_discount_and_its_reversal_gives_it_back() -> None:
    """The contract computes the discount on `amount_due`: once a payment took it, a later version
    (a debit note inside the window) must ask its whole increase, not the increase discounted."""
    invoice = issued()
    early = invoice.terms.discount_deadline  # type: ignore[union-attr]
    discount = invoice.terms.amount_due - amount_due_at(invoice.terms, early)  # type: ignore[arg-type, union-attr]
    assert discount == 220 * 10**4  # 2 % of $110.00: $2.20 in token units
    taken = apply_credit_note(invoice, discount // 10**4, allow_customer_credit=False, discount=True)
    assert taken.terms is not None and (taken.terms.discount_bps, taken.terms.discount_deadline) == (0, 0)
    assert taken.terms.late_fee_bps == invoice.terms.late_fee_bps  # type: ignore[union-attr]
    paid = apply_payment(taken.invoice, 10_780, onchain=True).invoice
    debited = apply_debit_note(paid, 500)  # still inside the window: the contract must ask all of it
    assert debited.terms is not None and debited.terms.discount_bps == 0
    assert remaining_at(debited.terms, early, 10_780 * 10**4) == 500 * 10**4
    other = apply_credit_note(invoice, 100, allow_customer_credit=False)  # any other credit keeps it
    assert other.terms is not None and other.terms.discount_bps == invoice.terms.discount_bps  # type: ignore[union-attr]
    unpaid = reverse_payment(paid, 10_780, onchain=True, before_write_off=False).invoice
    back = apply_debit_note(unpaid, discount // 10**4, discount_of=invoice.terms)
    assert back.terms == dataclasses.replace(invoice.terms, version=3)  # type: ignore[arg-type]


def test_payments_and_reversals() -> None:
    invoice = issued()
    over = apply_payment(invoice, 12_000, onchain=False)
    assert (over.applied_minor, over.to_customer_credit_minor) == (11_000, 1_000)
    with pytest.raises(ReversalExceedsPayments):
        reverse_payment(over.invoice, 1, onchain=True, before_write_off=False)
    back = reverse_payment(over.invoice, 11_000, onchain=False, before_write_off=False)
    assert back.invoice.status is S.OPEN and back.invoice.balance_minor == 11_000
    with pytest.raises(IllegalTransition):
        reverse_payment(back.invoice, 1, onchain=False, before_write_off=False)


OPERATION_NAMES = (
    *("pay_on", "pay_off", "rev_on", "rev_off", "rev_on_early", "rev_off_early"),
    *("credit", "credit_x", "debit", "void", "uncollectible"),
)
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(OPERATION_NAMES),
        st.integers(1, 20_000),
    ),
    max_size=30,
)


@settings(deadline=None)  # no per-example deadline: shared CI machines stall
@given(OPERATIONS)
def test_no_sequence_breaks_the_balance_identity(operations: list[tuple[str, int]]) -> None:
    invoice = issued()
    issued_total, credits, debits, payments, customer_credit = invoice.issued_minor, 0, 0, 0, 0
    version = 1
    for name, amount in operations:
        try:
            if name in ("pay_on", "pay_off"):
                outcome = apply_payment(invoice, amount, onchain=name == "pay_on")
                payments += outcome.applied_minor
                customer_credit += outcome.to_customer_credit_minor
            elif name.startswith("rev_"):
                early = name.endswith("_early")  # the payment was booked before any write-off
                outcome = reverse_payment(invoice, amount, onchain=name.startswith("rev_on"), before_write_off=early)
                payments += outcome.applied_minor  # negative
                grown = amount if early and invoice.written_off_minor else 0
                assert outcome.invoice.written_off_minor == invoice.written_off_minor + grown
            elif name in ("credit", "credit_x"):
                outcome = apply_credit_note(invoice, amount, allow_customer_credit=name == "credit_x")
                credits += outcome.applied_minor
                customer_credit += outcome.to_customer_credit_minor
                assert outcome.applied_minor + outcome.to_customer_credit_minor == amount
            elif name == "debit":
                outcome = apply_debit_note(invoice, amount)
                debits += amount
            elif name == "void":
                invoice = void(invoice)
                continue
            else:
                invoice = mark_uncollectible(invoice)
                continue
        except (IllegalTransition, CreditExceedsBalance, ReversalExceedsPayments):
            continue
        if invoice.written_off_minor:
            # A write-off cancels the terms on-chain for good: no later version, no reopening.
            assert outcome.terms is None
            assert outcome.invoice.status in (S.UNCOLLECTIBLE, S.PAID)
        invoice = outcome.invoice
        if outcome.terms is not None:
            assert outcome.terms.version == version + 1
            version = outcome.terms.version
            assert outcome.terms.amount_due == (invoice.balance_minor + invoice.paid_onchain_minor) * 10**4
        assert invoice.balance_minor == issued_total - credits + debits - payments
        assert invoice.balance_minor >= 0
        assert 0 <= invoice.paid_onchain_minor <= invoice.payments_minor == payments
        if invoice.status is S.PAID:
            assert invoice.balance_minor == 0
        if invoice.status in (S.OPEN, S.PARTIALLY_PAID):
            assert invoice.balance_minor > 0
            assert (invoice.status is S.PARTIALLY_PAID) == (payments > 0)
    assert customer_credit >= 0
