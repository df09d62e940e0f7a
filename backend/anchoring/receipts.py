"""Receipts from the database (DESIGN.md flow 3): an entry, the latest confirmed anchored head that
covers it, the inclusion proof, the anchor transaction.

An invoice's receipt is the receipt of its *current* entry: the latest entry of the invoice that
carries settlement terms (issued, credit note, debit note, terms updated) — what a payer needs to
pay under the current terms version — unless the invoice was later voided or written off, in
which case it is that cancelling entry (what proves the invoice is no longer payable). Every
other entry's receipt (the issued entry included) is at `/v1/ledger/entries/{entry}/receipt`.

Before a receipt leaves, the stored row is checked against its document (leaf input and leaf
hash recomputed), the root at the anchored size against the anchor's root, and
`ledger.receipts.build_receipt` verifies the whole receipt offline.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.anchoring import store
from backend.models import AnchorTransaction, LedgerEntry
from backend.services import ledger as ledger_service
from ledger.entries import Entry, EntryKind
from ledger.errors import LogCorrupted
from ledger.merkle import leaf_hash
from ledger.receipts import Anchor, build_receipt

CURRENT_KINDS = (
    EntryKind.INVOICE_ISSUED,
    EntryKind.CREDIT_NOTE,
    EntryKind.DEBIT_NOTE,
    EntryKind.TERMS_UPDATED,
    EntryKind.INVOICE_VOIDED,
    EntryKind.WRITE_OFF,
)
# Without history to go by, what one anchor takes from sending to confirmed.
CONFIRM_S_DEFAULT = 2.0
latency_samples_max = 20


class NotAnchored(Exception):
    """No confirmed anchored head covers the entry yet."""

    def __init__(self, sequence: int, expected_wait_s: int, in_flight: bool) -> None:
        super().__init__(f"entry {sequence} is not anchored yet")
        self.sequence = sequence
        self.expected_wait_s = expected_wait_s
        self.in_flight = in_flight

    def message(self) -> str:
        where = "an anchor covering it is on its way" if self.in_flight else "it waits for the next anchor"
        return (
            f"entry {self.sequence} is in the ledger but not anchored yet ({where}); "
            f"expected within about {self.expected_wait_s} s"
        )


def current_invoice_entry(session: Session, ledger_id: str, invoice_id: str) -> LedgerEntry | None:
    """The invoice's current entry (see the module docstring), None for a draft."""
    return session.scalars(
        select(LedgerEntry)
        .where(
            LedgerEntry.ledger_id == ledger_id,
            LedgerEntry.invoice_id == invoice_id,
            LedgerEntry.kind.in_([int(kind) for kind in CURRENT_KINDS]),
        )
        .order_by(LedgerEntry.sequence.desc())
        .limit(1)
    ).first()


def receipt_for(session: Session, *, ledger_id: str, row: LedgerEntry, settings: Any) -> dict[str, Any]:
    """The receipt of `row` against the latest confirmed head covering it; NotAnchored if none."""
    anchor = store.latest_confirmed(session, ledger_id, covering=row.sequence)
    if anchor is None:
        raise expected_wait(session, ledger_id=ledger_id, sequence=row.sequence, settings=settings)
    entry = Entry(row.sequence, row.document)
    stored_leaf = bytes(row.leaf_input)
    if entry.leaf_input() != stored_leaf or leaf_hash(stored_leaf) != bytes(row.leaf_hash):
        raise LogCorrupted(f"entry {row.sequence}: the stored leaf does not match its document")
    root = ledger_service.root_at(session, ledger_id, anchor.tree_size)
    if root != bytes(anchor.root):
        raise LogCorrupted(f"the ledger's root at {anchor.tree_size} differs from anchor {anchor.id}")
    proof = ledger_service.inclusion_proof(session, ledger_id, row.sequence, anchor.tree_size)
    return build_receipt(
        entry,
        tree_size=anchor.tree_size,
        root=root,
        inclusion_proof=proof,
        anchor=Anchor(anchor.chain_id, anchor.contract, bytes(anchor.tx_hash), int(anchor.block_number or 0)),
    )


def expected_wait(session: Session, *, ledger_id: str, sequence: int, settings: Any) -> NotAnchored:
    """How long until a confirmed head covers `sequence`: the typical send-to-confirmed time of
    recent anchors, plus the batching interval unless an anchor covering it is already sent."""
    in_flight = session.scalar(
        select(func.count())
        .select_from(AnchorTransaction)
        .where(
            AnchorTransaction.ledger_id == ledger_id,
            AnchorTransaction.tree_size > sequence,
            AnchorTransaction.status.in_(store.OPEN_STATUSES),
        )
    )
    recent = session.execute(
        select(AnchorTransaction.created_ms, AnchorTransaction.confirmed_ms)
        .where(
            AnchorTransaction.ledger_id == ledger_id,
            AnchorTransaction.status == "confirmed",
            AnchorTransaction.confirmed_ms.is_not(None),
        )
        .order_by(AnchorTransaction.pk.desc())
        .limit(latency_samples_max)
    ).all()
    samples = sorted((confirmed - created) / 1000 for created, confirmed in recent if (confirmed or 0) >= created)
    confirm_s = samples[len(samples) // 2] if samples else CONFIRM_S_DEFAULT
    wait_s = confirm_s + (0 if in_flight else float(settings.anchor_interval_s))
    return NotAnchored(sequence, max(1, math.ceil(wait_s)), bool(in_flight))
