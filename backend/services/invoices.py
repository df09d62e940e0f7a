"""Invoices: drafts, finalize (number + terms v1 + `invoice_issued` + journal), void, write-off.

Order inside `finalize_invoices`, chosen so locks are held briefly: everything that needs no
lock is computed first (totals, terms, documents); then the series counters are bumped (an
upsert ... RETURNING takes the counter's row lock, so numbers never gap or repeat: a rolled-back
transaction releases its numbers with its lock); then the ledger head is locked and the entries
appended; the journal postings follow. All in the caller's transaction.

Settlement terms need a payee and a token. The payee is the invoice's `settlement.payee`, else
the customer's `payee_address`, else `TALLY_PAYEE_ADDRESS`; with none of them finalize refuses
(`payee_missing`): terms paying the zero address would burn the payment. Without a `settlement`
object the token registry's default token for the currency is used (backend.settlement.tokens);
with none registered the token is the zero address and `token_decimals` equals the currency's
exponent, so the terms' amount is the invoice amount in minor units.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import bindparam, delete, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.models import Customer, Invoice, InvoiceSeries, JournalLine, SettlementToken
from backend.services import journal
from backend.services import ledger as ledger_service
from backend.services.common import Conflict, InvalidRequest, NotFound, ServiceError, is_id, new_id, now_s
from backend.services.journal import Account, Line
from backend.settlement.tokens import (
    apply_settlement_default,
    default_token_join,
    preload_default_tokens,
    settlement_defaults,
)
from ledger import invoices as rules
from ledger.entries import EntryKind, build_document, invoice_key, new_salt
from ledger.errors import CurrencyMismatch, IllegalTransition, LedgerError
from ledger.hexutil import ZERO_ADDRESS, normalize_address
from ledger.money import currency_code, currency_exponent, to_token_units
from ledger.terms import Terms

DAY_S = 86_400
default_days_until_due = 30
_UNSET: Any = object()
# What refuses one invoice without failing the others of a group (anything else fails the group).
REFUSALS = (ServiceError, LedgerError)
Refusal = ServiceError | LedgerError


def default_payee(settings: Any) -> str | None:
    value = getattr(settings, "payee_address", "") or ""
    return normalize_address(value, "TALLY_PAYEE_ADDRESS") if value else None


def get_invoice(
    session: Session, *, invoice_id: str, for_update: bool = False, partner_of: str | None = None
) -> Invoice:
    """The invoice (404 when malformed, unknown, or another customer's for a partner key)."""
    row = None
    if is_id(invoice_id, "inv"):
        statement = select(Invoice).where(Invoice.id == invoice_id)
        row = session.scalars(statement.with_for_update() if for_update else statement).one_or_none()
    if row is None or (partner_of is not None and (row.customer_id != partner_of or row.status == "draft")):
        raise NotFound(f"no invoice {invoice_id}", param="invoice")
    return row


def line_items(lines: Sequence[dict[str, Any]]) -> list[rules.LineItem]:
    return [
        rules.LineItem(
            description=line["description"],
            quantity=line.get("quantity", 1),
            unit_amount_minor=line["unit_amount_minor"],
            tax_bps=line.get("tax_bps", 0),
        )
        for line in lines
    ]


def _set_lines(row: Invoice, lines: Sequence[dict[str, Any]]) -> None:
    items = line_items(lines)
    totals = rules.compute_totals(items)  # the ledger's tax rounding and amount bound
    assign(row, lines=[item.to_document() for item in items], subtotal_minor=totals.subtotal_minor,
           tax_minor=totals.tax_minor, total_minor=totals.total_minor)  # fmt: skip


def assign(row: Invoice, **values: Any) -> None:
    """Set attributes of `row`. A transient row (a fresh draft that finalize inserts with Core,
    never added to a session) takes them straight into its dict: nothing will read the ORM's
    change tracking of it, which costs about a microsecond per attribute (a sixth of a bulk
    finalize). Any other row goes through the ORM, which records the change for its flush."""
    if inspect(row).transient:
        vars(row).update(values)
    else:
        for name, value in values.items():
            setattr(row, name, value)


def _fresh_invoice(values: dict[str, Any]) -> Invoice:
    """A transient Invoice holding `values` (see `assign`): built as the ORM builds loaded rows,
    without the constructor's tracked attribute sets."""
    row: Invoice = Invoice.__mapper__.class_manager.new_instance()
    vars(row).update(values)
    return row


def rules_state(row: Invoice) -> rules.Invoice:
    """The ledger's view of a stored invoice (the rules decide; this module persists)."""
    return rules.Invoice(
        invoice_id=row.id,
        currency=row.currency,
        status=rules.InvoiceStatus(row.status),
        lines=tuple(line_items(row.lines or [])),
        issued_minor=row.total_minor if row.status != "draft" else 0,
        credits_minor=row.credited_minor,
        debits_minor=row.debited_minor,
        payments_minor=row.paid_minor,
        paid_onchain_minor=row.paid_onchain_minor,
        written_off_minor=row.written_off_minor,
        token_decimals=row.token_decimals,
        terms=Terms.from_document(row.terms) if row.terms else None,
    )


def store_state(row: Invoice, state: rules.Invoice, now: int) -> None:
    """Write the rules' new state back onto the row."""
    values: dict[str, Any] = {
        "status": str(state.status),
        "credited_minor": state.credits_minor,
        "debited_minor": state.debits_minor,
        "paid_minor": state.payments_minor,
        "paid_onchain_minor": state.paid_onchain_minor,
        "written_off_minor": state.written_off_minor,
        "token_decimals": state.token_decimals,
        "updated": now,
    }
    if state.status is rules.InvoiceStatus.PAID and row.status != "paid":
        values["paid_at"] = now
    elif state.status is not rules.InvoiceStatus.PAID:
        values["paid_at"] = None
    if state.terms is not None:
        values["terms"], values["terms_version"] = state.terms.to_document(), state.terms.version
    assign(row, **values)


def create_invoice(
    session: Session,
    *,
    ledger_id: str,
    customer_id: str,
    currency: str | None = None,
    series: str = "INV",
    description: str | None = None,
    lines: Sequence[dict[str, Any]] = (),
    due_date: int | None = None,
    days_until_due: int | None = None,
    settlement: dict[str, Any] | None = None,
    terms: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    customer: Customer | None = None,
    add: bool = True,
) -> Invoice:
    """A draft. Its currency must be the customer's (`currency_mismatch`).

    With `add=False` the row is not added to the session: pass it straight to
    `finalize_invoices`, which then inserts it once, finalized, with one Core statement per batch
    (the ORM's unit of work costs about a millisecond per row)."""
    customer = customer or _customer(session, customer_id)
    currency = currency_code(currency or customer.currency)
    if currency != customer.currency:
        raise CurrencyMismatch(
            f"customer {customer.id} is billed in {customer.currency}, not {currency}", param="currency"
        )
    created = now_s()
    values = {
        "id": new_id("inv"),
        "customer_id": customer.id,
        "status": "draft",
        "currency": currency,
        "series": series,
        "description": description,
        "due_date": due_date,
        "days_until_due": days_until_due,
        "settlement": _settlement(settlement),
        "terms_options": _terms_options(terms),
        "terms_version": 0,
        "credited_minor": 0,
        "debited_minor": 0,
        "paid_minor": 0,
        "paid_onchain_minor": 0,
        "written_off_minor": 0,
        "metadata_": metadata or {},
        "created": created,
        "updated": created,
    }
    row = Invoice(**values) if add else _fresh_invoice(values)
    _set_lines(row, lines)
    if add:
        session.add(row)
    return row


def _customer(session: Session, customer_id: str) -> Customer:
    """The customer, looked up once per session (a bulk request names the same one many times)."""
    cache: dict[str, Customer] = session.info.setdefault("customers_by_id", {})
    row = cache.get(customer_id)
    if row is None and is_id(customer_id, "cus"):
        with session.no_autoflush:  # pending drafts are inserted together, at finalize or commit
            row = session.scalars(select(Customer).where(Customer.id == customer_id)).one_or_none()
    if row is None:
        raise NotFound(f"no customer {customer_id}", param="customer")
    cache[customer_id] = row
    return row


def preload_customers(session: Session, customer_ids: Sequence[str]) -> None:
    """Read the customers a group of drafts names, and their currencies' default settlement
    tokens, in one query: `create_invoice` and finalize then ask nothing more of them."""
    wanted = sorted({customer_id for customer_id in customer_ids if is_id(customer_id, "cus")})
    if not wanted:
        return
    cache: dict[str, Customer] = session.info.setdefault("customers_by_id", {})
    tokens: dict[str, set[SettlementToken]] = defaultdict(set)
    statement = (
        select(Customer, SettlementToken)
        .outerjoin(SettlementToken, default_token_join(Customer.currency))
        .where(Customer.id.in_(wanted))
    )
    with session.no_autoflush:
        for customer, token in session.execute(statement):
            cache[customer.id] = customer
            tokens[customer.currency].update([token] if token is not None else [])
    preload_default_tokens(session, tokens)


def _settlement(settlement: dict[str, Any] | None) -> dict[str, Any] | None:
    if settlement is None:
        return None
    return {
        **settlement,
        "token": settlement["token"].lower(),
        "payee": settlement["payee"].lower() if settlement.get("payee") else None,
    }


def _terms_options(options: dict[str, Any] | None) -> dict[str, Any]:
    if not options:
        return {}
    result = dict(options)
    if result.get("payer"):
        result["payer"] = result["payer"].lower()
    return result


def update_invoice(session: Session, *, invoice_id: str, **changes: Any) -> Invoice:
    row = get_invoice(session, invoice_id=invoice_id, for_update=True)
    lines = changes.pop("lines", None)
    if row.status != "draft":
        raise IllegalTransition(f"cannot update a {row.status} invoice: only drafts change", param="id")
    if lines is not None:
        rules.set_lines(rules_state(row), line_items(lines))
        _set_lines(row, lines)
    if "settlement" in changes:
        row.settlement = _settlement(changes.pop("settlement"))
    if "terms" in changes:
        row.terms_options = _terms_options(changes.pop("terms"))
    if "metadata" in changes:
        row.metadata_ = changes.pop("metadata") or {}
    if changes.get("due_date") is not None:
        row.days_until_due = None
    if changes.get("days_until_due") is not None:
        row.due_date = None
    for name in ("description", "due_date", "days_until_due"):
        if name in changes:
            setattr(row, name, changes.pop(name))
    if changes:
        raise InvalidRequest(f"cannot update {sorted(changes)}", code="parameter_unknown")
    row.updated = now_s()
    return row


def delete_invoice(session: Session, *, invoice_id: str) -> None:
    row = get_invoice(session, invoice_id=invoice_id, for_update=True)
    if row.status != "draft":
        raise IllegalTransition(f"cannot delete a {row.status} invoice: void it instead", param="id")
    session.execute(delete(Invoice).where(Invoice.id == row.id))


# --- Finalize ----------------------------------------------------------------------------------
@dataclass
class _Issue:
    row: Invoice
    customer: Customer
    state: rules.Invoice  # the rules' finalized state (terms version 1)
    salt: bytes
    due_date: int


def _prepare_issue(row: Invoice, customer: Customer, payee_default: str | None, created: int) -> _Issue:
    if row.status != "draft":
        raise IllegalTransition(f"cannot finalize a {row.status} invoice", param="id")
    if not row.lines:
        raise InvalidRequest("an invoice needs at least one line to be finalized", code="invoice_empty", param="lines")
    settlement = row.settlement or {}
    payee = settlement.get("payee") or customer.payee_address or payee_default
    if not payee:
        raise InvalidRequest(
            "no payee: set settlement.payee, the customer's payee_address or TALLY_PAYEE_ADDRESS",
            code="payee_missing",
            param="settlement.payee",
        )
    exponent = currency_exponent(row.currency)
    token_decimals = settlement.get("token_decimals", exponent)
    due_date = (
        row.due_date
        if row.due_date is not None
        else created + DAY_S * (row.days_until_due if row.days_until_due is not None else default_days_until_due)
    )
    options = row.terms_options or {}
    terms = Terms(
        payee=payee,
        token=settlement.get("token", ZERO_ADDRESS),
        amount_due=to_token_units(row.total_minor, exponent, token_decimals),
        due_date=due_date,
        discount_bps=options.get("discount_bps", 0),
        discount_deadline=options.get("discount_deadline", 0),
        late_fee_bps=options.get("late_fee_bps", 0),
        late_fee_period=options.get("late_fee_period_s", 0),
        late_fee_periods_max=options.get("late_fee_periods_max", 0),
        partial_allowed=options.get("partial_allowed", False),
        payer=options.get("payer") or ZERO_ADDRESS,
        version=1,
    )
    state = rules.finalize(rules_state(row), terms=terms, token_decimals=token_decimals)
    return _Issue(row, customer, state, new_salt(), due_date)


def _refuse_over_credit_limits(session: Session, outcomes: list[_Issue | Refusal]) -> None:
    """Replace each issue that would take its customer beyond the credit limit (open balances
    plus the invoices before it that fit) with a `credit_limit_exceeded` refusal."""
    limited = {
        item.customer.id: item.customer
        for item in outcomes
        if isinstance(item, _Issue) and item.customer.credit_limit_minor is not None
    }
    for customer_id, customer in limited.items():
        # The customer's row lock (until commit) makes concurrent finalizes for a limited customer
        # take turns: two of them cannot both fit under the limit against the same balance.
        session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update())
        balance = int(
            session.scalar(
                select(
                    func.coalesce(
                        func.sum(
                            Invoice.total_minor - Invoice.credited_minor + Invoice.debited_minor - Invoice.paid_minor
                        ),
                        0,
                    )
                ).where(Invoice.customer_id == customer_id, Invoice.status.in_(("open", "partially_paid")))
            )
            or 0
        )
        limit = customer.credit_limit_minor or 0
        for index, item in enumerate(outcomes):
            if not isinstance(item, _Issue) or item.customer.id != customer_id:
                continue
            if balance + item.row.total_minor > limit:
                outcomes[index] = Conflict(
                    f"customer {customer_id}: open balance {balance} + {item.row.total_minor} "
                    f"exceeds the credit limit {limit}",
                    code="credit_limit_exceeded",
                    param="customer",
                )
            else:
                balance += item.row.total_minor


_SERIES = InvoiceSeries.__table__
# Bump a series counter by `count` (creating it at 1 + count); RETURNING the next free number.
# The upsert takes the counter's row lock until commit, so numbers never gap or repeat.
_BUMP_SERIES = {
    name: dialect.insert(_SERIES)
    .values(series=bindparam("series"), next_number=bindparam("created_next"))
    .on_conflict_do_update(index_elements=["series"], set_={"next_number": _SERIES.c.next_number + bindparam("count")})
    .returning(_SERIES.c.next_number)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _lock_series_and_head(
    session: Session, ledger_id: str, series_counts: dict[str, int]
) -> tuple[ledger_service.Head, dict[str, int]]:
    """The first number per series and the locked ledger head (one round trip on PostgreSQL).
    Series are locked in a fixed order, then the head: two groups or bulk requests never deadlock."""
    ordered = sorted(series_counts)
    rows = [{"series": name, "count": series_counts[name], "created_next": 1 + series_counts[name]} for name in ordered]
    statement = _BUMP_SERIES[session.get_bind().dialect.name]
    head, next_free = ledger_service.lock_head_after(session, ledger_id, statement, rows)
    return head, {name: int(value) - series_counts[name] for name, value in zip(ordered, next_free, strict=True)}


def _insert_fresh_invoices(session: Session, invoices: Sequence[Invoice]) -> None:
    """New rows (never added to the session) in one Core INSERT; stored drafts are left to the ORM."""
    fresh = [row for row in invoices if inspect(row).transient]
    if fresh:
        # A transient row holds every value it was given in its __dict__ (an attribute never set
        # is None, as getattr would say), read there without the ORM's attribute machinery.
        attributes = _insert_attributes()
        rows = [{key: vars(row).get(name) for key, name in attributes} for row in fresh]
        ledger_service.insert_rows(session, Invoice.__table__, rows)


@functools.cache
def _insert_attributes() -> tuple[tuple[str, str], ...]:
    """(column key, mapped attribute name) of every inserted invoice column."""
    mapper = Invoice.__mapper__
    return tuple(
        (column.key, mapper.get_property_by_column(column).key) for column in Invoice.__table__.columns
        if column.key != "pk"
    )  # fmt: skip


def _prepare_issues(
    session: Session, invoices: Sequence[Invoice], default_payee: str | None, created: int
) -> list[_Issue | Refusal]:
    """Each draft's issue (terms version 1, token, payee), or why it cannot be finalized."""
    defaults = settlement_defaults(session, invoices)
    outcomes: list[_Issue | Refusal] = []
    for row in invoices:
        try:
            apply_settlement_default(row, defaults)
            outcomes.append(_prepare_issue(row, _customer(session, row.customer_id), default_payee, created))
        except REFUSALS as error:
            outcomes.append(error)
    _refuse_over_credit_limits(session, outcomes)
    return outcomes


def finalize_invoices(
    session: Session, *, ledger_id: str, invoices: Sequence[Invoice], default_payee: str | None = None
) -> list[Invoice]:
    """Finalize drafts, all or none: numbers, terms version 1, `invoice_issued` entries, journal
    postings. The first refusal is raised before anything is written."""
    created = now_s()
    # No autoflush until the one flush below: new drafts are then inserted once, finalized, in a
    # single batch, instead of inserted as drafts and updated row by row.
    with session.no_autoflush:
        outcomes = _prepare_issues(session, invoices, default_payee, created)
        for item in outcomes:
            if not isinstance(item, _Issue):
                raise item
        return _issue(session, ledger_id=ledger_id, issues=cast(list[_Issue], outcomes), created=created)


def finalize_each(
    session: Session,
    *,
    ledger_id: str,
    invoices: Sequence[Invoice],
    default_payee: str | None = None,
    then: Callable[[list[Refusal | None]], None] | None = None,
) -> list[Refusal | None]:
    """Finalize every fresh draft (`create_invoice(add=False)`) that can be, together, and return
    each one's refusal, or None: what finalizing them one at a time, in this order, would give
    (the group commit of `POST /v1/invoices`, backend.services.group_commit).

    `then(refusals)` runs once the invoices carry their numbers and sequences, inside the append's
    round trip when there is one: its writes must be `ledger_service.execute_many`s."""
    created = now_s()
    with session.no_autoflush:
        outcomes = _prepare_issues(session, invoices, default_payee, created)
        refusals = [None if isinstance(item, _Issue) else item for item in outcomes]
        issues = [item for item in outcomes if isinstance(item, _Issue)]
        if issues:
            _issue(session, ledger_id=ledger_id, issues=issues, created=created,
                   then=None if then is None else functools.partial(then, refusals))  # fmt: skip
        elif then is not None:
            then(refusals)
    return refusals


def _issue(
    session: Session,
    *,
    ledger_id: str,
    issues: Sequence[_Issue],
    created: int,
    then: Callable[[], None] | None = None,
) -> list[Invoice]:
    invoices = [issue.row for issue in issues]
    key = ledger_service.ledger_key(ledger_id)
    documents = []
    for issue in issues:
        row = issue.row
        documents.append(
            ledger_service.NewEntry(
                ledger_service.assemble_document(  # validated once, by append_entries
                    EntryKind.INVOICE_ISSUED,
                    ledger_id=ledger_id,
                    created=created,
                    invoice_id=row.id,
                    salt=issue.salt,
                    customer_id=row.customer_id,
                    currency=row.currency,
                    lines=row.lines,
                    subtotal_minor=row.subtotal_minor,
                    tax_minor=row.tax_minor,
                    total_minor=row.total_minor,
                    due_date=issue.due_date,
                    token_decimals=issue.state.token_decimals,
                    terms=issue.state.terms,
                ),
                customer_id=row.customer_id,
                invoice_id=row.id,
            )
        )
    prepared = ledger_service.prepare_entries(documents)  # validate and hash before any lock
    for issue in issues:  # everything that needs neither a number nor a sequence, before the locks
        row = issue.row
        store_state(row, issue.state, created)
        assign(row, finalized_at=created, due_date=issue.due_date, salt=issue.salt,
               invoice_key=invoice_key(key, row.id, issue.salt))  # fmt: skip
    counts: dict[str, int] = defaultdict(int)
    for row in invoices:
        counts[row.series] += 1
    head, next_number = _lock_series_and_head(session, ledger_id, counts)
    for row in invoices:
        number = next_number[row.series]
        next_number[row.series] += 1
        assign(row, number_in_series=number, number=f"{row.series}-{number:06d}")

    def write_rows(appended: list[ledger_service.AppendedEntry]) -> None:
        # Inside the append's round trip: each invoice is inserted once, already carrying its
        # issued_sequence, then its journal posting (both Core statements, no results to read).
        for row, entry in zip(invoices, appended, strict=True):
            assign(row, issued_sequence=entry.sequence)
        _insert_fresh_invoices(session, invoices)
        journal.post_many(session, ledger_id=ledger_id, created=created, postings=_issue_postings(invoices))
        if then is not None:
            then()

    ledger_service.append_entries(session, ledger_id=ledger_id, entries=prepared, with_writes=write_rows, head=head)
    if any(not inspect(row).transient for row in invoices):
        session.flush()  # stored drafts (finalize of an existing draft): the ORM updates them
    return list(invoices)


def _issue_postings(invoices: Sequence[Invoice]) -> list[journal.Posting]:
    """Receivable / revenue / tax for each issued invoice (tied to its `invoice_issued` entry)."""
    return [
        journal.Posting(
            currency=row.currency,
            lines=[
                Line(Account.RECEIVABLE, row.total_minor),
                Line(Account.REVENUE, -row.subtotal_minor),
                Line(Account.TAX_PAYABLE, -row.tax_minor),
            ],
            entry_sequence=row.issued_sequence,
            customer_id=row.customer_id,
            invoice_id=row.id,
        )
        for row in invoices
    ]


# --- Void and write-off ------------------------------------------------------------------------
def invoice_lines_by_account(session: Session, invoice_id: str) -> dict[str, int]:
    rows = session.execute(
        select(JournalLine.account, func.sum(JournalLine.amount_minor))
        .where(JournalLine.invoice_id == invoice_id)
        .group_by(JournalLine.account)
    )
    return {account: int(total) for account, total in rows}


def amount_due(row: Invoice) -> int:
    """The ledger's balance identity: issued - credits + debits - payments."""
    if row.status == "draft":
        return row.total_minor
    return row.total_minor - row.credited_minor + row.debited_minor - row.paid_minor


def envelope(row: Invoice, ledger_id: str, created: int) -> dict[str, Any]:
    """The fields every invoice entry document starts with."""
    return {
        "ledger_id": ledger_service.ledger_key(ledger_id),
        "created": created,
        "invoice_id": row.id,
        "salt": row.salt,
    }


def append_for(
    session: Session, *, ledger_id: str, row: Invoice, documents: Sequence[dict[str, Any]]
) -> list[ledger_service.AppendedEntry]:
    return ledger_service.append_entries(
        session,
        ledger_id=ledger_id,
        entries=[
            ledger_service.NewEntry(document, customer_id=row.customer_id, invoice_id=row.id) for document in documents
        ],
    )


def void_invoice(session: Session, *, ledger_id: str, invoice_id: str, reason: str = "") -> Invoice:
    """Cancel a draft or an open invoice nothing was paid on. A finalized one gets `invoice_voided`
    (its terms are cancelled) and its receivable, revenue and tax are reversed."""
    row = get_invoice(session, invoice_id=invoice_id, for_update=True)
    was_draft = row.status == "draft"
    state = rules.void(rules_state(row))
    created = now_s()
    store_state(row, state, created)
    row.voided_at = created
    if was_draft:  # never in the ledger: nothing to record or reverse
        return row
    document = build_document(EntryKind.INVOICE_VOIDED, reason=reason, **envelope(row, ledger_id, created))
    reversal = [
        Line(Account(account), -total)
        for account, total in invoice_lines_by_account(session, row.id).items()
        if account in (Account.RECEIVABLE, Account.REVENUE, Account.TAX_PAYABLE)
    ]
    session.flush()
    (entry,) = append_for(session, ledger_id=ledger_id, row=row, documents=[document])
    journal.post(
        session,
        ledger_id=ledger_id,
        currency=row.currency,
        lines=reversal,
        created=created,
        entry_sequence=entry.sequence,
        customer_id=row.customer_id,
        invoice_id=row.id,
    )
    return row


def mark_uncollectible(session: Session, *, ledger_id: str, invoice_id: str, reason: str = "") -> Invoice:
    """Write the balance off to bad debt (`write_off` entry). The balance stays owed: a later
    payment still settles it (and is booked as a bad-debt recovery)."""
    row = get_invoice(session, invoice_id=invoice_id, for_update=True)
    state = rules.mark_uncollectible(rules_state(row))
    created = now_s()
    written_off = state.written_off_minor
    document = build_document(
        EntryKind.WRITE_OFF,
        currency=row.currency,
        amount_minor=written_off,
        reason=reason,
        **envelope(row, ledger_id, created),
    )
    store_state(row, state, created)
    row.marked_uncollectible_at = created
    session.flush()
    (entry,) = append_for(session, ledger_id=ledger_id, row=row, documents=[document])
    journal.post(
        session,
        ledger_id=ledger_id,
        currency=row.currency,
        created=created,
        lines=[Line(Account.BAD_DEBT, written_off), Line(Account.RECEIVABLE, -written_off)],
        entry_sequence=entry.sequence,
        customer_id=row.customer_id,
        invoice_id=row.id,
    )
    return row
