"""The double-entry journal: every booking posts lines that sum to zero per currency.

`amount_minor > 0` debits the account, `< 0` credits it. `post()` refuses an unbalanced posting
before anything reaches the session, so an unbalanced journal can only come from editing the
database by hand (which `journal_totals` and the audit of issue 6 then show).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import JournalLine
from backend.services import ledger as ledger_service
from backend.services.common import new_id
from ledger.errors import LedgerError

posting_lines_max = 64


class Account(StrEnum):
    RECEIVABLE = "accounts_receivable"
    REVENUE = "revenue"
    TAX_PAYABLE = "tax_payable"
    CRYPTO_CLEARING = "crypto_clearing"
    CASH = "cash"
    CUSTOMER_CREDIT = "customer_credit"
    SUSPENSE = "suspense"
    # Written-off receivables (mark uncollectible); an expense, not a reduction of revenue.
    BAD_DEBT = "bad_debt"


class UnbalancedPosting(LedgerError):
    """A posting whose lines do not sum to zero per currency: refused at write time."""

    code = "unbalanced_posting"


@dataclass(frozen=True, slots=True)
class Line:
    account: Account
    amount_minor: int  # > 0 debit, < 0 credit


def check_balanced(lines: Sequence[Line], currency: str) -> None:
    if not 2 <= len(lines) <= posting_lines_max:
        raise UnbalancedPosting(f"a posting has 2..{posting_lines_max} lines, got {len(lines)}")
    for line in lines:
        if type(line.amount_minor) is not int:
            raise UnbalancedPosting(f"{line.account}: amount must be an int")
        if not isinstance(line.account, Account):
            raise UnbalancedPosting(f"unknown account {line.account!r}")
    total = sum(line.amount_minor for line in lines)
    if total != 0:
        raise UnbalancedPosting(f"posting in {currency} is off by {total} minor units")


@dataclass(frozen=True, slots=True)
class Posting:
    """One balanced set of lines in one currency, tied to the entry that records it."""

    currency: str
    lines: Sequence[Line]
    entry_sequence: int | None = None
    customer_id: str | None = None
    invoice_id: str | None = None
    payment_id: str | None = None


def post_many(session: Session, *, ledger_id: str, created: int, postings: Sequence[Posting]) -> list[str]:
    """Check every posting, then insert all their lines in one statement; return posting ids.

    Zero-amount lines are dropped; a posting left with no lines is skipped (id "").
    """
    rows: list[dict[str, object]] = []
    ids: list[str] = []
    for posting in postings:
        lines = [line for line in posting.lines if line.amount_minor != 0]
        if not lines:
            ids.append("")
            continue
        check_balanced(lines, posting.currency)
        posting_id = new_id("jp")
        ids.append(posting_id)
        rows.extend(
            {
                "ledger_id": ledger_id,
                "posting_id": posting_id,
                "entry_sequence": posting.entry_sequence,
                "account": str(line.account),
                "currency": posting.currency,
                "amount_minor": line.amount_minor,
                "customer_id": posting.customer_id,
                "invoice_id": posting.invoice_id,
                "payment_id": posting.payment_id,
                "created": created,
            }
            for line in lines
        )
    if rows:
        ledger_service.insert_rows(session, JournalLine.__table__, rows)  # Core or the append's pipeline
    return ids


def post(
    session: Session,
    *,
    ledger_id: str,
    currency: str,
    lines: Sequence[Line],
    created: int,
    entry_sequence: int | None = None,
    customer_id: str | None = None,
    invoice_id: str | None = None,
    payment_id: str | None = None,
) -> str:
    """Check and insert one balanced posting; return its id (see `post_many`)."""
    posting = Posting(currency, lines, entry_sequence, customer_id, invoice_id, payment_id)
    return post_many(session, ledger_id=ledger_id, created=created, postings=[posting])[0]


def journal_totals(session: Session) -> dict[tuple[str, str], int]:
    """Balance per (account, currency); debits positive."""
    rows = session.execute(
        select(JournalLine.account, JournalLine.currency, func.sum(JournalLine.amount_minor)).group_by(
            JournalLine.account, JournalLine.currency
        )
    )
    return {(account, currency): int(total) for account, currency, total in rows}


def unbalanced_currencies(session: Session) -> dict[str, int]:
    """Currencies whose journal does not sum to zero (empty when the books balance)."""
    sums: dict[str, int] = defaultdict(int)
    for (_, currency), total in journal_totals(session).items():
        sums[currency] += total
    return {currency: total for currency, total in sums.items() if total != 0}
