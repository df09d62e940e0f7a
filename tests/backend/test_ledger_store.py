"""The ledger in the database: appends keep sequence, nodes and head exact under concurrency."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from backend.db import create_engine, session_factory, transaction
from backend.models import LedgerEntry, LedgerHead, MerkleNode
from backend.services import ledger as ledger_service
from backend.services.common import new_id
from ledger import merkle
from ledger.entries import EntryKind, build_document
from ledger.errors import InvalidTreeRange, LogCorrupted

LEDGER = "test-ledger"


def customer_entry(created: int = 1_700_000_000) -> ledger_service.NewEntry:
    customer_id = new_id("cus")
    document = build_document(
        EntryKind.CUSTOMER_CREATED,
        ledger_id=ledger_service.ledger_key(LEDGER),
        created=created,
        customer_id=customer_id,
        currency="usd",
    )
    return ledger_service.NewEntry(document, customer_id=customer_id)


def reference_log(sessions) -> merkle.MerkleLog:
    log = merkle.MerkleLog()
    with transaction(sessions) as session:
        log.append_many(row.leaf_input for row in ledger_service.iter_entries(session, LEDGER))
    return log


def test_appends_match_a_recomputed_log(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    for batch in (1, 3, 1, 7, 20):
        with transaction(sessions) as session:
            ledger_service.append_entries(session, ledger_id=LEDGER, entries=[customer_entry() for _ in range(batch)])
    log = reference_log(sessions)
    with transaction(sessions) as session:
        head = ledger_service.read_head(session, LEDGER)
        assert head.size == log.size == 32
        assert head.root == log.root()
        for size in (1, 2, 5, 17, 32):
            assert ledger_service.root_at(session, LEDGER, size) == log.root(size)
            for index in {0, size // 2, size - 1}:
                assert ledger_service.inclusion_proof(session, LEDGER, index, size) == log.inclusion_proof(index, size)
            for old in {1, size // 2 or 1, size}:
                assert ledger_service.consistency_proof(session, LEDGER, old, size) == log.consistency_proof(old, size)
        with pytest.raises(InvalidTreeRange):
            ledger_service.inclusion_proof(session, LEDGER, 0, 33)
        assert session.scalar(select(func.count()).select_from(MerkleNode)) == 2 * 32 - 1
    engine.dispose()


def test_failed_transaction_leaves_no_trace(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        ledger_service.append_entry(session, ledger_id=LEDGER, entry=customer_entry())
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        ledger_service.append_entry(session, ledger_id=LEDGER, entry=customer_entry())
        raise RuntimeError("the business change failed after the append")
    with transaction(sessions) as session:
        assert ledger_service.read_head(session, LEDGER).size == 1
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 1
    engine.dispose()


def test_tampered_head_is_refused(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        ledger_service.append_entries(session, ledger_id=LEDGER, entries=[customer_entry(), customer_entry()])
    with transaction(sessions) as session:
        session.get(LedgerHead, LEDGER).root = b"\x11" * 32
    with pytest.raises(LogCorrupted), transaction(sessions) as session:
        ledger_service.append_entry(session, ledger_id=LEDGER, entry=customer_entry())
    engine.dispose()


def test_concurrent_writers_never_gap_or_repeat(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=8)
    sessions = session_factory(engine)
    writers, appends_each = 8, 15
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            barrier.wait()
            for position in range(appends_each):
                with transaction(sessions) as session:
                    count = 1 + position % 3
                    ledger_service.append_entries(
                        session, ledger_id=LEDGER, entries=[customer_entry() for _ in range(count)]
                    )
        except BaseException as error:  # noqa: BLE001 (reported by the main thread)
            errors.append(error)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    expected = writers * sum(1 + position % 3 for position in range(appends_each))
    with transaction(sessions) as session:
        sequences = list(session.scalars(select(LedgerEntry.sequence).order_by(LedgerEntry.sequence)))
        assert sequences == list(range(expected))
        head = ledger_service.read_head(session, LEDGER)
    log = reference_log(sessions)
    assert head.size == log.size == expected
    assert head.root == log.root()
    engine.dispose()
