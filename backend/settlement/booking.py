"""Applying chain payments: to an invoice, or to suspense; manual apply and unapply; reversal
when a reorg orphans the block a payment was in.

Every booking goes through `backend.services.payments.book_payment` (method `onchain` for an
InvoicePaid event, `transfer` for a plain ERC-20 transfer) and every undo through
`reverse_payment`, so each appends its ledger entry and balanced journal lines. All of it runs in
the caller's transaction (the reconciler's step, or an API request).

What the settlement contract computed is booked exactly: when an InvoicePaid completes the
invoice on-chain inside the discount window, the discount the contract granted is a credit note
("early-payment discount") booked before the payment; when a payment made after the due date
covers the invoice's balance, the late fee the contract computed (less late fees already booked)
is a debit note ("late fee") booked before it, and the terms version that note makes charges no
late fee (its amount due includes the fee: the contract would charge the fee on the fee); the
version the discount note makes grants no discount (the customer has had it: the contract would
discount whatever a later version adds inside the window). Both are undone (by the opposite note)
if the payment is reversed, and the next terms get the late fee or the discount back.

An InvoicePaid that completes its terms paid exactly what the contract asked, and is always booked:
when a discount or late fee made that a fraction of a minor unit (a 6-decimal token on a cent
currency), the payment is its floor in minor units, the adjustment note closes the invoice, and the
remainder (under one minor unit) stays on the chain payment (`amount_token`), never in the journal,
which holds whole minor units. An amount the payer chose (a partial payment) must convert exactly.

A payment parked in suspense whose token is registered is posted crypto clearing / suspense, so
the journal holds the money until someone applies it (the suspense posting is then reversed and
the payment booked as usual).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, inspect, or_, select
from sqlalchemy.orm import Session

from backend.models import ChainPayment, Customer, Invoice, LedgerEntry, Payment, SuspenseSuggestion
from backend.services import journal
from backend.services import notes as note_service
from backend.services import payments as payment_service
from backend.services.common import Conflict, NotFound, ServiceError, new_id, now_s
from backend.services.invoices import amount_due
from backend.services.journal import Account, Line
from backend.settlement import tokens as registry
from backend.settlement.chainlogs import Header, PaymentLog
from backend.settlement.store import now_ms
from ledger.errors import LedgerError, LogCorrupted, NodeMissing
from ledger.hexutil import to_hex
from ledger.money import currency_exponent
from ledger.terms import Terms, amount_due_at, remaining_at

ID_PREFIX = "cpm"
OPEN_STATUSES = ("open", "partially_paid")
candidate_invoices_max = 50
prefetch_hashes_max = 500  # transaction hashes per IN list


@dataclass(frozen=True)
class TokenInfo:
    currency: str
    decimals: int


@dataclass
class Context:
    """What one reconciler step (or one API call) needs, with per-step caches."""

    ledger_id: str
    chain_id: int
    suggestions_max: int = 5
    _tokens: dict[str, TokenInfo | None] = field(default_factory=dict)
    _wallets: dict[str, list[str]] | None = None
    _existing: dict[tuple[bytes, int], ChainPayment] | None = None
    _invoices: dict[bytes, Invoice] | None = None
    _locked: set[str] = field(default_factory=set)

    def prefetch(self, session: Session, logs: list[PaymentLog]) -> None:
        """Lock and load the rows of these logs' transactions in one query (one per chunk instead
        of one per log); `record` then looks them up here."""
        hashes = sorted({log.tx_hash for log in logs})
        found: dict[tuple[bytes, int], ChainPayment] = {}
        for start in range(0, len(hashes), prefetch_hashes_max):
            rows = session.scalars(
                select(ChainPayment).where(ChainPayment.chain_id == self.chain_id,
                                           ChainPayment.tx_hash.in_(hashes[start : start + prefetch_hashes_max]))
                .with_for_update()
            )  # fmt: skip
            found.update({(bytes(row.tx_hash), row.log_index): row for row in rows})
        self._existing = found
        keys = sorted({log.invoice_key for log in logs if log.invoice_key is not None})
        invoices: dict[bytes, Invoice] = {}
        for start in range(0, len(keys), prefetch_hashes_max):
            chunk = keys[start : start + prefetch_hashes_max]
            rows = session.scalars(
                select(Invoice).where(Invoice.invoice_key.in_(chunk)).order_by(Invoice.pk).with_for_update()
                .execution_options(populate_existing=True)
            )  # fmt: skip
            invoices.update({bytes(row.invoice_key or b""): row for row in rows})
        self._invoices = invoices
        self._locked.update(row.id for row in invoices.values())
        self._lock_transfer_candidates(session, logs)

    def _lock_transfer_candidates(self, session: Session, logs: list[PaymentLog]) -> None:
        """Lock every open invoice a plain transfer in this chunk could be matched to, now.

        The API locks an invoice, then the ledger head. Booking takes the head, so an invoice locked
        only once a transfer is matched (after an earlier log of the chunk was booked) would be
        locked in the opposite order and could deadlock with an API request on that invoice. Locking
        the candidates (open invoices of the payers' customers) before any booking keeps one order.
        """
        payers = {log.payer for log in logs if log.source == "transfer"}
        customers = sorted({customer for payer in payers for customer in self.customers_of_wallet(session, payer)})
        # Ids only: `lock_invoice` still loads the current state when one is booked (the row lock is
        # then already ours, so it does not wait).
        for start in range(0, len(customers), prefetch_hashes_max):
            session.execute(
                select(Invoice.id).where(Invoice.customer_id.in_(customers[start : start + prefetch_hashes_max]),
                                         Invoice.status.in_(OPEN_STATUSES))
                .order_by(Invoice.pk).with_for_update()
            )  # fmt: skip

    def invoice_of(self, session: Session, key: bytes) -> Invoice | None:
        if self._invoices is not None and key in self._invoices:
            return self._invoices[key]
        row = session.scalars(
            select(Invoice).where(Invoice.invoice_key == key).with_for_update()
            .execution_options(populate_existing=True)
        ).one_or_none()  # fmt: skip
        if row is not None:
            self._locked.add(row.id)
        return row

    def lock_invoice(self, session: Session, invoice_id: str) -> None:
        """Lock the invoice and load its current state, once per step: an invoice read earlier
        without a lock must not be booked from stale attributes (the session's identity map
        would keep them even under book_payment's FOR UPDATE)."""
        if invoice_id in self._locked:
            return
        session.execute(
            select(Invoice).where(Invoice.id == invoice_id).with_for_update()
            .execution_options(populate_existing=True)
        )  # fmt: skip
        self._locked.add(invoice_id)

    def existing(self, session: Session, log: PaymentLog) -> ChainPayment | None:
        if self._existing is not None:
            return self._existing.get((log.tx_hash, log.log_index))
        return session.scalars(
            select(ChainPayment).where(ChainPayment.chain_id == self.chain_id, ChainPayment.tx_hash == log.tx_hash,
                                       ChainPayment.log_index == log.log_index).with_for_update()
        ).one_or_none()  # fmt: skip

    def token(self, session: Session, address: str) -> TokenInfo | None:
        if address not in self._tokens:
            row = registry.token_at(session, self.chain_id, address)
            self._tokens[address] = TokenInfo(row.currency, row.decimals) if row else None
        return self._tokens[address]

    def customers_of_wallet(self, session: Session, wallet: str) -> list[str]:
        if self._wallets is None:
            index: dict[str, list[str]] = {}
            for customer_id, wallets in session.execute(select(Customer.id, Customer.wallet_addresses)):
                for address in wallets or []:
                    index.setdefault(str(address).lower(), []).append(customer_id)
            self._wallets = index
        return self._wallets.get(wallet, [])


class Parked(Exception):
    """Why a payment goes to suspense (a stable code) and what might fit."""

    def __init__(self, reason: str, detail: str, suggestions: list[Invoice] | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.suggestions = reason, detail, suggestions or []


def _minor(info: TokenInfo, amount_token: int) -> int:
    try:
        return registry.from_token_units(amount_token, currency_exponent(info.currency), info.decimals)
    except LedgerError as error:
        raise Parked("inexact_amount", str(error)) from error


def _floor_minor(info: TokenInfo, amount_token: int) -> int:
    exponent = currency_exponent(info.currency)
    if info.decimals >= exponent:
        return amount_token // 10 ** (info.decimals - exponent)
    return amount_token * 10 ** (exponent - info.decimals)


def _ceil_minor(info: TokenInfo, amount_token: int) -> int:
    return -_floor_minor(info, -amount_token)


def _settlement_minor(info: TokenInfo, terms: Terms, row: ChainPayment) -> int:
    """An InvoicePaid's amount in minor units. One that completes its terms (the contract's total
    paid under the key reached what the terms ask at the block) paid exactly what the contract
    asked: parking it would leave a customer who did everything right with an open invoice, so it
    is booked at the floor, and the adjustment note makes up the rest of the invoice. Any other
    amount was the payer's choice and converts exactly or is parked."""
    amount_token = int(row.amount_token)
    if remaining_at(terms, int(row.block_timestamp), int(row.total_paid_token or 0)) == 0:
        return _floor_minor(info, amount_token)
    return _minor(info, amount_token)


def reference_of(row: ChainPayment) -> str:
    base = f"{row.chain_id}:{to_hex(bytes(row.tx_hash))}:{row.log_index}"
    return base if row.bookings == 0 else f"{base}#{row.bookings + 1}"


def chain_document(row: ChainPayment) -> dict[str, Any]:
    return {"chain_id": row.chain_id, "tx_hash": to_hex(bytes(row.tx_hash)), "log_index": row.log_index,
            "token": row.token, "amount_token": row.amount_token}  # fmt: skip


# --- Recording what the chain says --------------------------------------------------------------


def record(session: Session, ctx: Context, log: PaymentLog, header: Header) -> ChainPayment | None:
    """Keep the log once by (chain_id, tx_hash, log_index) and apply it. A log seen before and still
    standing is left alone (duplicate delivery); one reversed by a reorg and mined again is
    applied again. None for a zero-amount transfer (address-poisoning spam, nothing to book)."""
    if log.amount == 0:
        return None
    row = ctx.existing(session, log)
    if row is not None and row.status != "reversed":
        return row
    moment = now_ms()
    fields = {
        "block_number": log.block_number, "block_hash": log.block_hash, "block_timestamp": header.timestamp,
        "source": log.source, "token": log.token, "payer": log.payer, "payee": log.payee,
        "amount_token": str(log.amount), "invoice_key": log.invoice_key, "terms_version": log.terms_version,
        "total_paid_token": None if log.total_paid is None else str(log.total_paid), "updated_ms": moment,
    }  # fmt: skip
    if row is None:  # added to the session once its outcome is known: one INSERT, no UPDATE
        row = ChainPayment(id=new_id(ID_PREFIX), chain_id=ctx.chain_id, tx_hash=log.tx_hash, log_index=log.log_index,
                           status="suspense", adjustment_minor=0, bookings=0, created_ms=moment, **fields)  # fmt: skip
    else:
        for name, value in fields.items():
            setattr(row, name, value)
        row.status, row.reason, row.detail, row.payment_id = "suspense", None, None, None
        row.adjustment_minor, row.adjustment_note_id, row.applied_by = 0, None, None
    apply(session, ctx, row)
    return row


def apply(session: Session, ctx: Context, row: ChainPayment) -> None:
    """Book `row` onto the invoice it belongs to, or park it in suspense saying why."""
    facts: dict[str, Any] = {}  # what was learnt before a refusal (a rolled-back savepoint forgets it)
    locked = set(ctx._locked)  # row locks taken inside a rolled-back savepoint are released with it
    try:
        with session.begin_nested():  # a refusal half-way leaves nothing behind
            if row.source == "settlement":
                _book_settlement(session, ctx, row, facts)
            else:
                _book_transfer(session, ctx, row, facts)
    except Parked as parked:
        ctx._locked = locked
        _park(session, ctx, row, parked, facts)
    except (LogCorrupted, NodeMissing):
        raise  # an invariant broke: stop, never park
    except (LedgerError, ServiceError) as error:
        ctx._locked = locked
        code = getattr(error, "code", type(error).__name__)
        _park(session, ctx, row, Parked("booking_refused", f"{code}: {error}"), facts)


def _learn(row: ChainPayment, facts: dict[str, Any], **values: Any) -> None:
    facts.update(values)
    for name, value in values.items():
        setattr(row, name, value)


def _book_settlement(session: Session, ctx: Context, row: ChainPayment, facts: dict[str, Any]) -> None:
    info = ctx.token(session, row.token)
    if info is None:
        raise Parked("token_not_registered", f"{row.token} is not a registered token on chain {row.chain_id}")
    invoice = ctx.invoice_of(session, bytes(row.invoice_key or b""))
    if invoice is None:
        raise Parked("unknown_invoice_key", f"no invoice has key {to_hex(bytes(row.invoice_key or b''))}")
    _learn(row, facts, customer_id=invoice.customer_id, invoice_id=invoice.id, currency=info.currency)
    if info.currency != invoice.currency:
        raise Parked("token_currency_mismatch", f"{row.token} stands for {info.currency}, the invoice is in "
                     f"{invoice.currency}", [invoice])  # fmt: skip
    terms = _terms_version(session, invoice, int(row.terms_version or 0))
    _learn(row, facts, amount_minor=_settlement_minor(info, terms, row))
    adjustment = _adjustment(session, info, terms, row, invoice)
    if adjustment:
        kind = "debit_note" if adjustment > 0 else "credit_note"
        label = "Late fee" if adjustment > 0 else "Early-payment discount"
        note = note_service.create_note(
            session, ledger_id=ctx.ledger_id, kind=kind, invoice_id=invoice.id,
            lines=[{"description": f"{label} (terms v{terms.version})", "quantity": 1,
                    "unit_amount_minor": abs(adjustment), "tax_bps": 0}],
            reason=f"{label.lower()} computed by InvoiceSettlement, tx {to_hex(bytes(row.tx_hash))}",
            metadata={"chain_payment": row.id}, late_fee=adjustment > 0, discount=adjustment < 0,
        )  # fmt: skip
        row.adjustment_minor, row.adjustment_note_id = adjustment, note.id
    _book(session, ctx, row, invoice.id, method="onchain")


def _terms_version(session: Session, invoice: Invoice, version: int) -> Terms:
    if invoice.terms and invoice.terms_version == version:
        return Terms.from_document(invoice.terms)
    document = session.scalar(
        select(LedgerEntry.document).where(LedgerEntry.invoice_id == invoice.id, LedgerEntry.terms_version == version)
        .order_by(LedgerEntry.sequence.desc()).limit(1)
    )  # fmt: skip
    if not isinstance(document, dict) or "terms" not in document:
        raise Parked("unknown_terms_version", f"invoice {invoice.id} has no terms version {version}", [invoice])
    return Terms.from_document(document["terms"])


def _adjustment(session: Session, info: TokenInfo, terms: Terms, row: ChainPayment, invoice: Invoice) -> int:
    """The discount (< 0) or late fee (> 0) in minor units the contract applied, as far as the
    ledger's balance shows it; 0 for none. The payment being booked at the floor of what the
    contract asked, the discount is rounded up and the fee down: the note closes the invoice.

    The late fee is booked once a late payment covers the balance (the fee accrues on what is
    owed; a smaller payment leaves the contract counting it), in full: the version the note makes
    charges no late fee, so a fee left out now would never be charged."""
    moment = int(row.block_timestamp)
    delta_token = amount_due_at(terms, moment) - terms.amount_due
    balance, amount = amount_due(invoice), int(row.amount_minor or 0)
    if delta_token < 0 and amount < balance:
        completes = remaining_at(terms, moment, int(row.total_paid_token or 0)) == 0
        return -min(balance - amount, _ceil_minor(info, -delta_token)) if completes else 0
    if delta_token > 0 and amount >= balance:
        charged = _adjustments_booked(session, invoice.id, row.id, late_fees=True)
        return max(0, _floor_minor(info, delta_token) - charged)
    return 0


def _adjustments_booked(session: Session, invoice_id: str, chain_payment_id: str, *, late_fees: bool) -> int:
    """Late fees (or discounts, as a positive sum) booked on the invoice by its other standing
    chain payments."""
    sign = 1 if late_fees else -1
    total = session.scalar(
        select(func.coalesce(func.sum(ChainPayment.adjustment_minor * sign), 0))
        .where(ChainPayment.invoice_id == invoice_id, ChainPayment.status == "booked",
               ChainPayment.adjustment_minor * sign > 0, ChainPayment.id != chain_payment_id)
    )  # fmt: skip
    return int(total or 0)


def _book_transfer(session: Session, ctx: Context, row: ChainPayment, facts: dict[str, Any]) -> None:
    info = ctx.token(session, row.token)
    if info is None:
        raise Parked("token_not_registered", f"{row.token} is not a registered token on chain {row.chain_id}")
    _learn(row, facts, currency=info.currency)
    _learn(row, facts, amount_minor=_minor(info, int(row.amount_token)))
    customers = ctx.customers_of_wallet(session, row.payer)
    if len(customers) != 1:
        reason = "unknown_payer" if not customers else "ambiguous_payer"
        detail = f"{row.payer} is the wallet of {len(customers)} customers"
        raise Parked(reason, detail, _suggestions(session, ctx, row, customers))
    _learn(row, facts, customer_id=customers[0])
    candidates = _open_invoices(session, row, customers)
    exact = [invoice for invoice in candidates if amount_due(invoice) == row.amount_minor]
    if len(exact) == 1:
        target = exact[0]
    elif not exact and len(candidates) == 1:
        target = candidates[0]  # partial, or over (the excess becomes customer credit)
    else:
        reason = "no_open_invoice" if not candidates else "ambiguous_invoice"
        detail = (
            f"{len(candidates)} open invoices of {customers[0]} to {row.payee}, {len(exact)} for {row.amount_minor}"
        )
        raise Parked(reason, detail, _suggestions(session, ctx, row, customers))
    _book(session, ctx, row, target.id, method="transfer")


def _open_invoices(session: Session, row: ChainPayment, customers: list[str]) -> list[Invoice]:
    invoices = session.scalars(
        select(Invoice).where(Invoice.customer_id.in_(customers), Invoice.currency == row.currency,
                              Invoice.status.in_(OPEN_STATUSES))
        .order_by(Invoice.pk).limit(candidate_invoices_max)
    )  # fmt: skip
    return [invoice for invoice in invoices if (invoice.terms or {}).get("payee") == row.payee]


def _suggestions(session: Session, ctx: Context, row: ChainPayment, customers: list[str]) -> list[Invoice]:
    """Open invoices in the payment's currency, payable to its payee: exact amounts first, then
    the payer's customers' invoices."""
    balance = Invoice.total_minor - Invoice.credited_minor + Invoice.debited_minor - Invoice.paid_minor
    conditions = [balance == row.amount_minor]
    if customers:
        conditions.append(Invoice.customer_id.in_(customers))
    rows = session.scalars(
        select(Invoice).where(Invoice.currency == row.currency, Invoice.status.in_(OPEN_STATUSES), or_(*conditions))
        .order_by(Invoice.pk).limit(candidate_invoices_max)
    )  # fmt: skip
    fitting = [invoice for invoice in rows if (invoice.terms or {}).get("payee") == row.payee]
    fitting.sort(key=lambda invoice: (amount_due(invoice) != row.amount_minor, invoice.customer_id not in customers))
    return fitting[: ctx.suggestions_max]


def _book(session: Session, ctx: Context, row: ChainPayment, invoice_id: str, *, method: str) -> None:
    ctx.lock_invoice(session, invoice_id)
    payment = payment_service.book_payment(
        session, ledger_id=ctx.ledger_id, invoice_id=invoice_id, amount_minor=int(row.amount_minor or 0),
        currency=str(row.currency), method=method, reference=reference_of(row),  # type: ignore[arg-type]
        received_at=int(row.block_timestamp), chain=chain_document(row),
        description=f"{'InvoiceSettlement payment' if method == 'onchain' else 'token transfer'} from {row.payer}",
        metadata={"chain_payment": row.id},
    )  # fmt: skip
    row.status, row.payment_id, row.invoice_id = "booked", payment.id, invoice_id
    row.customer_id = payment.customer_id
    row.reason, row.detail, row.bookings, row.updated_ms = None, None, row.bookings + 1, now_ms()
    row.applied_by = row.applied_by or "reconciler"
    _keep(session, row)


def _keep(session: Session, row: ChainPayment) -> None:
    """Add a new row to the session; clear an existing row's suggestions."""
    if inspect(row).transient:
        session.add(row)
    else:
        session.execute(delete(SuspenseSuggestion).where(SuspenseSuggestion.chain_payment_id == row.id))


def _park(
    session: Session, ctx: Context, row: ChainPayment, parked: Parked, facts: dict[str, Any] | None = None
) -> None:
    for name, value in (facts or {}).items():
        setattr(row, name, value)
    row.status, row.reason, row.detail, row.updated_ms = "suspense", parked.reason, parked.detail[:1000], now_ms()
    # A new row keeps what a rolled-back attempt set on it in Python: nothing of that was booked.
    row.payment_id, row.applied_by, row.adjustment_minor, row.adjustment_note_id = None, None, 0, None
    _keep(session, row)
    if row.currency and row.amount_minor and row.suspense_posting_id is None:
        amount = int(row.amount_minor)
        row.suspense_posting_id = journal.post(
            session, ledger_id=ctx.ledger_id, currency=row.currency, created=now_s(),
            lines=[Line(Account.CRYPTO_CLEARING, amount), Line(Account.SUSPENSE, -amount)], customer_id=row.customer_id,
        ) or None  # fmt: skip
    session.add_all(
        SuspenseSuggestion(chain_payment_id=row.id, invoice_id=invoice.id, customer_id=invoice.customer_id,
                           rank=rank, reason=_why(invoice, row))
        for rank, invoice in enumerate(parked.suggestions[: ctx.suggestions_max])
    )  # fmt: skip


def _why(invoice: Invoice, row: ChainPayment) -> str:
    due = amount_due(invoice)
    if due == row.amount_minor:
        return f"amount due {due} equals the payment"
    return f"open invoice of the payer's customer, amount due {due}"


def _release_suspense(session: Session, ctx: Context, row: ChainPayment) -> None:
    """Reverse the suspense posting (the money leaves suspense)."""
    if row.suspense_posting_id and row.currency and row.amount_minor:
        amount = int(row.amount_minor)
        journal.post(
            session, ledger_id=ctx.ledger_id, currency=row.currency, created=now_s(),
            lines=[Line(Account.SUSPENSE, amount), Line(Account.CRYPTO_CLEARING, -amount)], customer_id=row.customer_id,
        )  # fmt: skip
    row.suspense_posting_id = None


# --- Undoing ------------------------------------------------------------------------------------


def _unbook(session: Session, ctx: Context, row: ChainPayment, reason: str) -> None:
    """Reverse the payment and the adjustment note that came with it (opposite note)."""
    payment = session.scalars(select(Payment).where(Payment.id == row.payment_id)).one_or_none()
    if payment is not None and payment.status == "succeeded":
        payment_service.reverse_payment(session, ledger_id=ctx.ledger_id, payment_id=payment.id, reason=reason)
    if row.adjustment_minor and row.invoice_id:
        late_fee = row.adjustment_minor > 0
        kind = "credit_note" if late_fee else "debit_note"
        label = "Late fee reversed" if late_fee else "Early-payment discount reversed"
        restored = _terms_to_restore(session, row)
        note_service.create_note(
            session, ledger_id=ctx.ledger_id, kind=kind, invoice_id=row.invoice_id,
            lines=[{"description": label, "quantity": 1, "unit_amount_minor": abs(row.adjustment_minor), "tax_bps": 0}],
            reason=f"{label.lower()}: {reason}", allow_customer_credit=True, metadata={"chain_payment": row.id},
            late_fee_of=restored if late_fee else None, discount_of=None if late_fee else restored,
        )  # fmt: skip
    row.payment_id, row.adjustment_minor, row.adjustment_note_id = None, 0, None


def _terms_to_restore(session: Session, row: ChainPayment) -> Terms | None:
    """The terms whose late fee (or discount) comes back when `row`'s late fee (or discount) is
    reversed: the version it was computed under. None while another adjustment of the same kind
    stays booked on the invoice (the terms then still hold that fee, and must not charge a fee on
    it; that discount was taken, and must not be granted again)."""
    if not row.adjustment_minor or row.invoice_id is None:
        return None
    if _adjustments_booked(session, row.invoice_id, row.id, late_fees=row.adjustment_minor > 0):
        return None
    invoice = session.scalars(select(Invoice).where(Invoice.id == row.invoice_id)).one()
    return _terms_version(session, invoice, int(row.terms_version or 0))


def orphan(session: Session, ctx: Context, row: ChainPayment, reason: str) -> None:
    """The block holding `row` left the chain: undo whatever it booked; it stays `reversed`
    until (and unless) the same log is mined again."""
    if row.status == "booked":
        _unbook(session, ctx, row, reason)
    elif row.status == "suspense":
        _release_suspense(session, ctx, row)
    session.execute(delete(SuspenseSuggestion).where(SuspenseSuggestion.chain_payment_id == row.id))
    row.status, row.reason, row.detail, row.updated_ms = "reversed", "reorged", reason[:1000], now_ms()


def get_chain_payment(session: Session, chain_payment_id: str, *, for_update: bool = False,
                      partner_of: str | None = None) -> ChainPayment:  # fmt: skip
    statement = select(ChainPayment).where(ChainPayment.id == chain_payment_id)
    row = session.scalars(statement.with_for_update() if for_update else statement).one_or_none()
    if row is None or (partner_of is not None and row.customer_id != partner_of):
        raise NotFound(f"no chain payment {chain_payment_id}", param="id")
    return row


def manual_apply(session: Session, *, ledger_id: str, chain_payment_id: str, invoice_id: str) -> ChainPayment:
    """Apply a suspense payment to an invoice the back office chose."""
    row = get_chain_payment(session, chain_payment_id, for_update=True)
    if row.status != "suspense":
        raise Conflict(f"chain payment {row.id} is {row.status}, not in suspense", code="chain_payment_not_in_suspense")
    ctx = Context(ledger_id=ledger_id, chain_id=row.chain_id)
    info = ctx.token(session, row.token)
    if info is None:
        raise Conflict(f"{row.token} is not a registered token: register it before applying this payment",
                       code="token_not_registered", param="id")  # fmt: skip
    invoice = session.scalars(select(Invoice).where(Invoice.id == invoice_id)).one_or_none()
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}", param="invoice")
    bound = row.source == "settlement" and row.invoice_key is not None and invoice.invoice_key == row.invoice_key
    _release_suspense(session, ctx, row)  # with the values it was parked at
    row.applied_by = "manual"
    try:
        if bound:  # the contract's own invoice: booked as the reconciler books it (discount, fee, floor)
            _book_settlement(session, ctx, row, {})
        else:
            row.currency, row.amount_minor = info.currency, _minor(info, int(row.amount_token))
            _book(session, ctx, row, invoice.id, method="transfer")
    except Parked as parked:  # the request's transaction is rolled back: nothing was released
        raise Conflict(parked.detail, code=parked.reason, param="id") from parked
    return row


def manual_unapply(session: Session, *, ledger_id: str, chain_payment_id: str, reason: str = "") -> ChainPayment:
    """Take a booked transfer (or a manually applied payment) off its invoice, back to suspense.
    An InvoicePaid the reconciler booked is bound to its invoice by the contract: refused."""
    row = get_chain_payment(session, chain_payment_id, for_update=True)
    if row.status != "booked":
        raise Conflict(f"chain payment {row.id} is {row.status}, not booked", code="chain_payment_not_booked")
    if row.source == "settlement" and row.applied_by != "manual":
        raise Conflict("an InvoicePaid event is bound to its invoice by the settlement contract",
                       code="chain_payment_bound")  # fmt: skip
    ctx = Context(ledger_id=ledger_id, chain_id=row.chain_id)
    _unbook(session, ctx, row, reason or "unapplied by the back office")
    _park(session, ctx, row, Parked("unapplied", reason or "unapplied by the back office"))
    return row


def suggestions_of(session: Session, chain_payment_ids: list[str]) -> dict[str, list[SuspenseSuggestion]]:
    found: dict[str, list[SuspenseSuggestion]] = {}
    if not chain_payment_ids:
        return found
    for suggestion in session.scalars(
        select(SuspenseSuggestion).where(SuspenseSuggestion.chain_payment_id.in_(chain_payment_ids))
        .order_by(SuspenseSuggestion.chain_payment_id, SuspenseSuggestion.rank)
    ):  # fmt: skip
        found.setdefault(suggestion.chain_payment_id, []).append(suggestion)
    return found


def render(row: ChainPayment, suggestions: list[SuspenseSuggestion] | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "chain_payment",
        "chain_id": row.chain_id,
        "tx_hash": to_hex(bytes(row.tx_hash)),
        "log_index": row.log_index,
        "block_number": row.block_number,
        "block_hash": to_hex(bytes(row.block_hash)),
        "block_timestamp": row.block_timestamp,
        "source": row.source,
        "token": row.token,
        "payer": row.payer,
        "payee": row.payee,
        "amount_token": row.amount_token,
        "invoice_key": None if row.invoice_key is None else to_hex(bytes(row.invoice_key)),
        "terms_version": row.terms_version,
        "status": row.status,
        "reason": row.reason,
        "detail": row.detail,
        "currency": row.currency,
        "amount_minor": row.amount_minor,
        "customer": row.customer_id,
        "invoice": row.invoice_id,
        "payment": row.payment_id,
        "adjustment_minor": row.adjustment_minor,
        "adjustment_note": row.adjustment_note_id,
        "applied_by": row.applied_by,
        "suggestions": [
            {"invoice": item.invoice_id, "customer": item.customer_id, "rank": item.rank, "reason": item.reason}
            for item in suggestions or []
        ],
        "created": row.created_ms // 1000,
    }
