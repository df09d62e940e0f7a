"""The reconciler's records: the cursor, the blocks it read, and the known payee addresses.

The cursor says every log in blocks <= `block_number` is processed; it moves only in the same
database transaction as the bookings of the blocks it passes (restart-safe at any point), and only
from the value the transaction read under a row lock (two workers never both advance it).
"""

from __future__ import annotations

import time

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.models import ChainBlock, ChainCursor, ChainPayment, Customer, Invoice
from backend.settlement.chainlogs import Header
from ledger.hexutil import normalize_address

CURSOR_NAME = "reconciler"


class CursorMoved(RuntimeError):
    """Another worker advanced the cursor since this one read it: drop this step's work."""


def now_ms() -> int:
    return int(time.time() * 1000)


def _insert(session: Session, model: type) -> object:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def read_cursor(session: Session, chain_id: int, *, start_block: int, lock: bool = False) -> ChainCursor:
    """The cursor row (created at `start_block - 1` on first use); FOR UPDATE when `lock`."""
    statement = select(ChainCursor).where(ChainCursor.chain_id == chain_id, ChainCursor.name == CURSOR_NAME)
    if lock:
        statement = statement.with_for_update()
    row = session.scalars(statement).one_or_none()
    if row is None:
        session.execute(
            _insert(session, ChainCursor)  # type: ignore[attr-defined]
            .values(chain_id=chain_id, name=CURSOR_NAME, block_number=start_block - 1, block_hash=None,
                    updated_ms=now_ms())
            .on_conflict_do_nothing(index_elements=["chain_id", "name"])
        )  # fmt: skip
        row = session.scalars(statement.execution_options(populate_existing=True)).one()
    return row


def advance_cursor(session: Session, chain_id: int, *, expected: int, header: Header) -> None:
    """Move the cursor from `expected` to `header` (compare-and-set; CursorMoved otherwise)."""
    moved = session.execute(
        update(ChainCursor)
        .where(ChainCursor.chain_id == chain_id, ChainCursor.name == CURSOR_NAME, ChainCursor.block_number == expected)
        .values(block_number=header.number, block_hash=header.hash, updated_ms=now_ms())
        .execution_options(synchronize_session=False)
    ).rowcount  # fmt: skip
    if moved != 1:
        raise CursorMoved(f"chain {chain_id}: the cursor is no longer at block {expected}")


def rewind_cursor(session: Session, chain_id: int, *, number: int, block_hash: bytes | None) -> None:
    session.execute(
        update(ChainCursor)
        .where(ChainCursor.chain_id == chain_id, ChainCursor.name == CURSOR_NAME)
        .values(block_number=number, block_hash=block_hash, updated_ms=now_ms())
        .execution_options(synchronize_session=False)
    )  # fmt: skip


def store_blocks(session: Session, chain_id: int, headers: list[Header]) -> None:
    """Remember these headers (a block read again after a reorg replaces the old row)."""
    if not headers:
        return
    moment = now_ms()
    rows = [{"chain_id": chain_id, "number": header.number, "hash": header.hash, "parent_hash": header.parent_hash,
             "timestamp": header.timestamp, "seen_ms": moment} for header in headers]  # fmt: skip
    statement = _insert(session, ChainBlock)
    session.execute(
        statement.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=["chain_id", "number"],
            set_={"hash": statement.excluded.hash, "parent_hash": statement.excluded.parent_hash,  # type: ignore[attr-defined]
                  "timestamp": statement.excluded.timestamp, "seen_ms": statement.excluded.seen_ms},  # type: ignore[attr-defined]
        ),
        rows,
    )  # fmt: skip


def recent_blocks(session: Session, chain_id: int, *, at_most: int, limit: int) -> list[ChainBlock]:
    """Stored blocks at or below `at_most`, newest first, at most `limit`."""
    return list(session.scalars(
        select(ChainBlock).where(ChainBlock.chain_id == chain_id, ChainBlock.number <= at_most)
        .order_by(ChainBlock.number.desc()).limit(limit)
    ))  # fmt: skip


def forget_blocks_above(session: Session, chain_id: int, number: int) -> None:
    session.execute(delete(ChainBlock).where(ChainBlock.chain_id == chain_id, ChainBlock.number > number))


def prune_blocks(session: Session, chain_id: int, *, below: int) -> None:
    session.execute(delete(ChainBlock).where(ChainBlock.chain_id == chain_id, ChainBlock.number < below))


def payments_above(session: Session, chain_id: int, number: int) -> list[ChainPayment]:
    """Chain payments still standing (booked or in suspense) in blocks above `number`, newest first
    (so reversals undo the latest booking first)."""
    return list(session.scalars(
        select(ChainPayment)
        .where(ChainPayment.chain_id == chain_id, ChainPayment.block_number > number,
               ChainPayment.status.in_(("booked", "suspense")))
        .order_by(ChainPayment.block_number.desc(), ChainPayment.log_index.desc())
        .with_for_update()
    ))  # fmt: skip


def customer_payees(session: Session, default_payee: str | None) -> set[str]:
    """The default payee and every customer's payee address."""
    payees = {normalize_address(default_payee)} if default_payee else set()
    payees.update(address.lower() for address in session.scalars(
        select(Customer.payee_address).where(Customer.payee_address.is_not(None)).distinct()) if address)  # fmt: skip
    return payees


def invoice_payees_since(session: Session, since_s: int) -> tuple[set[str], int]:
    """Payees named on invoices themselves (`settlement.payee`) among invoices changed at or after
    `since_s`, and the newest change time read: the caller keeps the set and asks only for what
    changed since (a second of overlap, so a change in the same second is never missed)."""
    payees: set[str] = set()
    newest = since_s
    for updated, settlement in session.execute(
        select(Invoice.updated, Invoice.settlement).where(Invoice.updated >= since_s)
    ):
        newest = max(newest, int(updated))
        if isinstance(settlement, dict) and settlement.get("payee"):
            payees.add(str(settlement["payee"]).lower())
    return payees, newest
