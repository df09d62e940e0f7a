"""The anchorer's records (`anchor_transactions`) and the lock that keeps one anchorer at a time.

Status transitions, and who makes them (backend.workers.anchorer):

    built --send--> sent --receipt--> mined --confirmations--> confirmed
    built/sent --a sibling with the same nonce was mined--> replaced
    sent --stuck past replace_after_s--> replaced (a new row with the same nonce is built)
    mined --receipt gone and the node has never heard of it (reorg)--> dropped
    mined --receipt with status 0--> reverted
    confirmed --the chain's latest head is below it (deep reorg)--> dropped

Every row is written (committed) before its transaction is sent, so after a crash the worker
finds what it may have sent and looks for it on-chain before it builds anything new.

The lock: on PostgreSQL a session-level advisory lock held on a dedicated connection for as long
as the worker runs (the server releases it when that connection dies, so a killed worker never
blocks the next one); on SQLite a lease row renewed every tick (one machine, a short TTL).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from backend.models import AnchorTransaction, WorkerLease
from backend.services.common import new_id

log = logging.getLogger("tally.anchorer")

OPEN_STATUSES = ("built", "sent", "mined")
# Rows checked against the chain while their nonce is unresolved (a replaced transaction can
# still be the one that gets mined).
PENDING_STATUSES = ("built", "sent", "replaced")
anchors_page_max = 100


def now_ms() -> int:
    return int(time.time() * 1000)


def open_transactions(session: Session, ledger_id: str, chain_id: int) -> list[AnchorTransaction]:
    """Rows still in flight (built, sent, mined) for this ledger and chain, oldest first."""
    return list(
        session.scalars(
            select(AnchorTransaction)
            .where(
                AnchorTransaction.ledger_id == ledger_id,
                AnchorTransaction.chain_id == chain_id,
                AnchorTransaction.status.in_(OPEN_STATUSES),
            )
            .order_by(AnchorTransaction.pk)
        )
    )


def nonce_group(session: Session, ledger_id: str, chain_id: int, sender: str, nonce: int) -> list[AnchorTransaction]:
    """Every row that used `nonce` and may still be mined (built, sent, replaced)."""
    return list(
        session.scalars(
            select(AnchorTransaction)
            .where(
                AnchorTransaction.ledger_id == ledger_id,
                AnchorTransaction.chain_id == chain_id,
                AnchorTransaction.sender == sender,
                AnchorTransaction.nonce == nonce,
                AnchorTransaction.status.in_(PENDING_STATUSES),
            )
            .order_by(AnchorTransaction.pk)
        )
    )


def insert_built(session: Session, *, status: str = "built", **fields: Any) -> AnchorTransaction:
    """Insert a row (`built` unless recording a head found on-chain)."""
    moment = now_ms()
    row = AnchorTransaction(id=new_id("anc"), status=status, created_ms=moment, updated_ms=moment, **fields)
    session.add(row)
    session.flush()
    return row


def set_status(session: Session, row_id: str, status: str, **fields: Any) -> None:
    moment = now_ms()
    stamp = {"sent": "sent_ms", "mined": "mined_ms", "confirmed": "confirmed_ms"}.get(status)
    values: dict[str, Any] = {"status": status, "updated_ms": moment, **fields}
    if stamp is not None and stamp not in fields:
        values[stamp] = moment
    session.execute(
        update(AnchorTransaction)
        .where(AnchorTransaction.id == row_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def confirmed_above(session: Session, ledger_id: str, chain_id: int, tree_size: int) -> list[AnchorTransaction]:
    return list(
        session.scalars(
            select(AnchorTransaction).where(
                AnchorTransaction.ledger_id == ledger_id,
                AnchorTransaction.chain_id == chain_id,
                AnchorTransaction.status == "confirmed",
                AnchorTransaction.tree_size > tree_size,
            )
        )
    )


def by_tx_hash(session: Session, tx_hash: bytes) -> AnchorTransaction | None:
    return session.scalars(select(AnchorTransaction).where(AnchorTransaction.tx_hash == tx_hash)).first()


def recorded_head(session: Session, ledger_id: str, chain_id: int, tree_size: int) -> AnchorTransaction | None:
    """A confirmed or mined row for `tree_size` (the head is recorded), else None."""
    return session.scalars(
        select(AnchorTransaction)
        .where(
            AnchorTransaction.ledger_id == ledger_id,
            AnchorTransaction.chain_id == chain_id,
            AnchorTransaction.tree_size == tree_size,
            AnchorTransaction.status.in_(("mined", "confirmed")),
        )
        .limit(1)
    ).first()


def latest_confirmed(
    session: Session, ledger_id: str, *, chain_id: int | None = None, covering: int | None = None
) -> AnchorTransaction | None:
    """The confirmed anchor with the largest tree size (that covers leaf `covering`, if given)."""
    statement = select(AnchorTransaction).where(
        AnchorTransaction.ledger_id == ledger_id, AnchorTransaction.status == "confirmed"
    )
    if chain_id is not None:
        statement = statement.where(AnchorTransaction.chain_id == chain_id)
    if covering is not None:
        statement = statement.where(AnchorTransaction.tree_size > covering)
    return session.scalars(statement.order_by(AnchorTransaction.tree_size.desc()).limit(1)).first()


def list_anchors(
    session: Session,
    ledger_id: str,
    *,
    statuses: Sequence[str] | None = None,
    limit: int = anchors_page_max,
    before_pk: int | None = None,
) -> list[AnchorTransaction]:
    """Newest first, for the API (paged by `pk`)."""
    statement = select(AnchorTransaction).where(AnchorTransaction.ledger_id == ledger_id)
    if statuses:
        statement = statement.where(AnchorTransaction.status.in_(list(statuses)))
    if before_pk is not None:
        statement = statement.where(AnchorTransaction.pk < before_pk)
    return list(session.scalars(statement.order_by(AnchorTransaction.pk.desc()).limit(min(limit, anchors_page_max))))


# --- The one-anchorer lock ---------------------------------------------------------------------


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class WorkerLock:
    """Held by at most one worker process per `name` (see the module docstring)."""

    def __init__(self, engine: Engine, name: str, *, ttl_s: float) -> None:
        self._engine = engine
        self._name = name
        self._ttl_ms = int(ttl_s * 1000)
        self._holder = f"{uuid.uuid4().hex[:16]}"
        self._connection: Connection | None = None
        self._postgres = engine.dialect.name == "postgresql"

    @property
    def holder(self) -> str:
        return self._holder

    def ensure(self) -> bool:
        """Take or keep the lock; False when another worker holds it."""
        return self._ensure_advisory() if self._postgres else self._renew_lease()

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _advisory_key(self._name)})
                self._connection.commit()
            except Exception as error:  # noqa: BLE001 (closing the connection releases it anyway)
                log.debug("advisory unlock failed: %s", error)
            finally:
                self._close()
        if not self._postgres:
            with self._engine.begin() as connection:
                connection.execute(
                    delete(WorkerLease).where(WorkerLease.name == self._name, WorkerLease.holder == self._holder)
                )

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception as error:  # noqa: BLE001 (a dead connection is what we are dropping)
                log.debug("closing the lock connection failed: %s", error)
            self._connection = None

    def _ensure_advisory(self) -> bool:
        if self._connection is not None:
            try:  # still our session? (a dead connection means the server released the lock)
                self._connection.execute(text("SELECT 1"))
                self._connection.commit()
                return True
            except Exception as error:  # noqa: BLE001
                log.warning("lost the anchorer lock's connection: %s", type(error).__name__)
                self._close()
        connection = self._engine.connect()
        try:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": _advisory_key(self._name)}
            ).scalar_one()
            connection.commit()
        except Exception:
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        self._connection = connection
        return True

    def _renew_lease(self) -> bool:
        moment = now_ms()
        expires = moment + self._ttl_ms
        with self._engine.begin() as connection:
            renewed = connection.execute(
                update(WorkerLease)
                .where(WorkerLease.name == self._name)
                .where((WorkerLease.holder == self._holder) | (WorkerLease.expires_ms < moment))
                .values(holder=self._holder, expires_ms=expires)
            ).rowcount
            if renewed:
                return True
            insert = (postgresql.insert if self._postgres else sqlite.insert)(WorkerLease)
            inserted = connection.execute(
                insert.values(
                    name=self._name, holder=self._holder, expires_ms=expires, acquired_ms=moment
                ).on_conflict_do_nothing(index_elements=["name"])
            ).rowcount
            return bool(inserted)
