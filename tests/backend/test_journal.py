"""The journal refuses an unbalanced posting before anything reaches the database."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from backend.db import create_engine, session_factory, transaction
from backend.models import JournalLine
from backend.services import journal
from backend.services.journal import Account, Line, UnbalancedPosting


def test_unbalanced_postings_are_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    refused = [
        [Line(Account.RECEIVABLE, 100), Line(Account.REVENUE, -99)],
        [Line(Account.CASH, 5)],
        [Line(Account.CASH, 1.0), Line(Account.REVENUE, -1)],  # type: ignore[arg-type]
        [Line("petty_cash", 1), Line(Account.REVENUE, -1)],  # type: ignore[arg-type]
    ]
    for lines in refused:
        with pytest.raises(UnbalancedPosting), transaction(sessions) as session:
            journal.post(session, ledger_id="l", currency="usd", lines=lines, created=1)
    with transaction(sessions) as session:
        posting = journal.post(
            session, ledger_id="l", currency="usd", created=1,
            lines=[Line(Account.RECEIVABLE, 110), Line(Account.REVENUE, -100), Line(Account.TAX_PAYABLE, -10),
                   Line(Account.SUSPENSE, 0)],
        )  # fmt: skip
        assert posting.startswith("jp_")
    with transaction(sessions) as session:
        assert session.scalar(select(func.count()).select_from(JournalLine)) == 3  # the zero line is dropped
        assert journal.unbalanced_currencies(session) == {}
        assert journal.journal_totals(session)[("accounts_receivable", "usd")] == 110
    engine.dispose()
