"""What to anchor next: the head, its consistency proof from the on-chain head, its TermsUpdates.

formats.md: the anchorer tells LedgerAnchor an invoice key's current terms version when it anchors
the head that contains that version; voided and written-off invoices become cancelled
(`type(uint32).max`). Version 1 (the issued invoice) needs no update: the contract accepts the
first version of a key it has never heard of. One call carries at most `updates_max` updates
(the contract refuses more), so a range with more distinct keys is anchored in several heads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import LedgerEntry
from backend.services import ledger as ledger_service
from ledger import merkle
from ledger.entries import EntryKind
from ledger.errors import LogCorrupted
from ledger.terms import CANCELLED_VERSION

# Kinds that change an invoice key's current version on-chain.
TERMS_KINDS = frozenset({EntryKind.CREDIT_NOTE, EntryKind.DEBIT_NOTE, EntryKind.TERMS_UPDATED})
CANCELLING_KINDS = frozenset({EntryKind.INVOICE_VOIDED, EntryKind.WRITE_OFF})
UPDATE_KINDS = TERMS_KINDS | CANCELLING_KINDS | {EntryKind.INVOICE_ISSUED}

TermsUpdate = tuple[bytes, int]  # (invoice key, version)
UpdateSource = tuple[int, int, bytes, int | None]  # (sequence, kind, subject, terms_version)


@dataclass(frozen=True)
class AnchorPlan:
    previous_size: int
    tree_size: int
    root: bytes
    consistency_proof: list[bytes]
    updates: list[TermsUpdate]


def entry_version(kind: int, terms_version: int | None) -> int | None:
    """The on-chain version an entry sets for its invoice key, None when it sets none."""
    entry_kind = EntryKind(kind)
    if entry_kind in CANCELLING_KINDS:
        return CANCELLED_VERSION
    if entry_kind in TERMS_KINDS or entry_kind is EntryKind.INVOICE_ISSUED:
        if terms_version is None:
            raise LogCorrupted(f"a {entry_kind.document_kind} entry without a terms version")
        return terms_version if terms_version > 1 else None
    return None


def collect_updates(sources: Iterable[UpdateSource], updates_max: int) -> tuple[list[TermsUpdate], int | None]:
    """The TermsUpdate list for entries in sequence order, and the sequence where the range must
    be cut (the first entry whose key would be update number `updates_max + 1`), or None."""
    versions: dict[bytes, int] = {}
    for sequence, kind, subject, terms_version in sources:
        version = entry_version(kind, terms_version)
        if version is None:
            continue
        key = bytes(subject)
        if key not in versions and len(versions) == updates_max:
            return sorted(versions.items()), sequence
        versions[key] = max(version, versions.get(key, 0))
    return sorted(versions.items()), None


def plan_anchor(
    session: Session, *, ledger_id: str, previous_size: int, previous_root: bytes, head_size: int, updates_max: int
) -> AnchorPlan:
    """The next head after the on-chain `(previous_size, previous_root)`, at most `head_size`.

    Raises LogCorrupted when the ledger's own root at `previous_size` differs from the chain's
    (anchoring on top of it would be refused, and something is badly wrong)."""
    if not previous_size < head_size:
        raise ValueError(f"nothing to anchor: chain at {previous_size}, ledger at {head_size}")
    if previous_size and ledger_service.root_at(session, ledger_id, previous_size) != previous_root:
        raise LogCorrupted(f"the ledger's root at size {previous_size} differs from the anchored root")
    kinds = [int(kind) for kind in UPDATE_KINDS]
    rows = session.execute(
        select(LedgerEntry.sequence, LedgerEntry.kind, LedgerEntry.subject, LedgerEntry.terms_version)
        .where(
            LedgerEntry.ledger_id == ledger_id,
            LedgerEntry.sequence >= previous_size,
            LedgerEntry.sequence < head_size,
            LedgerEntry.kind.in_(kinds),
        )
        .order_by(LedgerEntry.sequence)
    )
    updates, cut = collect_updates(((s, k, bytes(j), v) for s, k, j, v in rows), updates_max)
    tree_size = head_size if cut is None else cut
    root = ledger_service.root_at(session, ledger_id, tree_size)
    proof = ledger_service.consistency_proof(session, ledger_id, previous_size, tree_size) if previous_size else []
    # Check on our side what the contract will check (STYLE.md: the same property on two paths).
    if previous_size and not merkle.verify_consistency(previous_size, tree_size, previous_root, root, proof):
        raise LogCorrupted(f"consistency proof {previous_size} -> {tree_size} does not verify")
    return AnchorPlan(previous_size, tree_size, root, proof, updates)
