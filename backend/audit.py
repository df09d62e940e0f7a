"""`tally audit` (DESIGN.md flow 6): replay the ledger from the database or an export bundle.

What is checked, and the finding codes the report uses (each names the entry, head, invoice,
posting or file it is about):

- every entry, in order: its position is its sequence (`sequence_gap`, `sequence_out_of_order`);
  its document is valid (`document_invalid`); the stored `document_hash` is SHA-256 of the
  document's canonical JSON (`document_hash_mismatch`); the stored leaf input is the one the
  document and sequence give (`leaf_input_mismatch`, naming the fields that differ); the stored
  leaf hash is SHA-256(0x00 || leaf input) (`leaf_hash_mismatch`);
- the tree is rebuilt from the documents (not from stored hashes); the database's stored head and
  Merkle nodes must agree with it (`stored_head_mismatch`, `stored_node_mismatch`);
- every anchored head — those recorded as confirmed and every `HeadAnchored` event on-chain — is
  compared with the chain's `rootAt` and the rebuilt root (`head_mismatch`, `head_not_on_chain`,
  `head_record_mismatch`, `head_beyond_ledger`, `head_not_rebuildable`), and consecutive heads must
  be consistent by an RFC 9162 proof from the rebuilt tree (`heads_inconsistent`);
- every invoice's stored amounts equal a replay of its entries (issued, credits applied, debits,
  payments applied net of reversals, written off; `invoice_mismatch`, `invoice_without_entries`,
  `invoice_balance_negative`), and the double-entry journal sums to zero per posting and per
  currency (`posting_unbalanced`, `journal_unbalanced`);
- a bundle's manifest matches its sections (`bundle_count_mismatch`, `bundle_hash_mismatch`);
- receipts given with `--receipt` match the ledger and the chain (`receipt_invalid`,
  `receipt_document_mismatch`, `receipt_root_mismatch`, `receipt_not_anchored`).

Chain failures are findings too (`chain_unreachable`), unless the audit runs `--offline`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import itertools
import multiprocessing
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger import merkle
from ledger.entries import Entry, EntryKind, parse_leaf_input
from ledger.errors import LedgerError
from ledger.hexutil import from_hex, to_hex
from ledger.receipts import verify_receipt_offline

findings_max = 10_000  # the report keeps this many; counts go on
rebuild_batch_max = 4_096
check_chunk_entries = 1_000  # entries per unit of work handed to a worker process
workers_max = 8
parallel_entries_min = 20_000
ZERO32 = b"\x00" * 32


@dataclass(frozen=True)
class Finding:
    code: str
    subject: str  # "entry 12", "head 40", "invoice inv_...", "posting jp_...", "bundle entries"
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "subject": self.subject, "message": self.message}


@dataclass
class AuditReport:
    source: str
    ledger_id: str = ""
    entries: int = 0
    heads: int = 0
    invoices: int = 0
    postings: int = 0
    root: str = ""
    chain: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    findings_total: int = 0
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.findings_total == 0

    def add(self, code: str, subject: str, message: str) -> None:
        self.findings_total += 1
        if len(self.findings) < findings_max:
            self.findings.append(Finding(code, subject, message))

    def to_json(self) -> dict[str, Any]:
        return {
            "object": "audit_report",
            "ok": self.ok,
            "source": self.source,
            "ledger_id": self.ledger_id,
            "checked": {
                "entries": self.entries,
                "anchored_heads": self.heads,
                "invoices": self.invoices,
                "postings": self.postings,
            },
            "rebuilt_root": self.root,
            "chain": self.chain,
            "findings_total": self.findings_total,
            "findings": [finding.to_json() for finding in self.findings],
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True)
class EntryRecord:
    """One stored entry as the audit sees it, from the database or a bundle."""

    sequence: int
    document: Any
    document_hash: bytes | None
    leaf_input: bytes | None
    leaf_hash: bytes | None
    invoice_id: str | None = None


@dataclass(frozen=True)
class AnchorRecord:
    tree_size: int
    root: bytes
    chain_id: int
    contract: str
    tx_hash: str


class ChainView:
    """The chain side of the audit: `rootAt` and the `HeadAnchored` events of one contract."""

    def __init__(self, reader: Any, *, from_block: int = 0) -> None:
        self.reader = reader
        self.from_block = from_block
        self._roots: dict[int, bytes] = {}

    def root_at(self, tree_size: int) -> bytes:
        if tree_size not in self._roots:
            self._roots[tree_size] = self.reader.root_at(tree_size)
        return self._roots[tree_size]

    def heads(self) -> list[tuple[int, bytes]]:
        events = self.reader.head_events(self.from_block)
        for event in events:
            self._roots.setdefault(event["tree_size"], event["root"])
        return [(event["tree_size"], event["root"]) for event in events]


# --- Entries and the rebuilt tree --------------------------------------------------------------


Check = tuple[list[tuple[str, str]], bytes, bytes | None]  # (findings as (code, message), leaf hash, doc hash)


def check_entry(record: EntryRecord) -> Check:
    """Check one stored entry against its document (pure: runs in worker processes too).
    Returns the findings, the leaf hash the document gives (the stored one if the document is
    unusable), and the document's hash (None when invalid)."""
    findings: list[tuple[str, str]] = []
    try:
        entry = Entry(record.sequence, record.document)
    except LedgerError as error:
        findings.append(("document_invalid", f"the document is not a valid entry document: {error}"))
        return findings, record.leaf_hash or merkle.leaf_hash(record.leaf_input or b""), None
    if record.document_hash is not None and record.document_hash != entry.document_hash:
        findings.append(
            (
                "document_hash_mismatch",
                f"stored document_hash {to_hex(record.document_hash)} is not "
                f"SHA-256 of the document ({to_hex(entry.document_hash)}): the document was changed",
            )
        )
    leaf_input = entry.leaf_input()
    if record.leaf_input is not None and record.leaf_input != leaf_input:
        findings.append(
            (
                "leaf_input_mismatch",
                f"the stored leaf input differs from the document's in {_leaf_differences(record.leaf_input, entry)}",
            )
        )
    stored = record.leaf_input if record.leaf_input is not None else leaf_input
    if record.leaf_hash is not None and record.leaf_hash != merkle.leaf_hash(stored):
        findings.append(
            ("leaf_hash_mismatch", f"stored leaf hash {to_hex(record.leaf_hash)} is not SHA-256(0x00 || leaf input)")
        )
    return findings, merkle.leaf_hash(leaf_input), entry.document_hash


def check_chunk(records: list[EntryRecord]) -> list[Check]:
    return [check_entry(record) for record in records]


class Rebuilder:
    """Takes checked entries in order, names gaps, and rebuilds the Merkle tree from the leaf
    hashes their documents give."""

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        self.store = merkle.MemoryNodeStore()
        self.frontier: list[bytes] = []
        self.size = 0  # leaves in the rebuilt tree (up to the first gap)
        self.position = 0
        self.broken_at: int | None = None  # first missing leaf: no root at or above it
        self._pending: list[bytes] = []
        self.document_hashes: dict[int, bytes] = {}

    def add(self, record: EntryRecord, checked: Check) -> bool:
        """Place one entry; False when it is out of order (and so not part of the tree)."""
        report = self.report
        if record.sequence != self.position:
            if record.sequence < self.position:
                report.add(
                    "sequence_out_of_order",
                    f"entry {record.sequence}",
                    f"entry {record.sequence} appears again (or out of order) at position {self.position}",
                )
                return False
            report.add(
                "sequence_gap",
                f"entry {self.position}",
                f"expected entry {self.position}, found entry {record.sequence}: entries "
                f"{self.position}..{record.sequence - 1} are missing or out of order",
            )
            self._flush()
            if self.broken_at is None:
                self.broken_at = self.position
            self.position = record.sequence
        findings, leaf, document_hash = checked
        for code, message in findings:
            report.add(code, f"entry {record.sequence}", message)
        if document_hash is not None:
            self.document_hashes[record.sequence] = document_hash
        report.entries += 1
        if self.broken_at is None:
            self._pending.append(leaf)
            if len(self._pending) >= rebuild_batch_max:
                self._flush()
        self.position += 1
        return True

    def _flush(self) -> None:
        if self._pending and self.broken_at is None:
            self.frontier, runs = merkle.append_batch(self.frontier, self.size, self._pending)
            for level, first, hashes in runs:
                self.store.put_level_run(level, first, hashes)
            self.size += len(self._pending)
        self._pending = []

    def finish(self) -> None:
        self._flush()

    def root(self, tree_size: int) -> bytes | None:
        if tree_size > self.size:
            return None
        if tree_size == self.size:
            return merkle.root_from_frontier(self.frontier)
        return merkle.root_at(self.store, tree_size)

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        return merkle.consistency_proof(self.store, old_size, new_size)


def _leaf_differences(stored: bytes, entry: Entry) -> str:
    try:
        fields = parse_leaf_input(stored)
    except LedgerError as error:
        return f"its encoding ({error.message})"
    names = [
        name
        for name, stored_value, value in (
            ("sequence", fields.sequence, entry.sequence),
            ("kind", fields.kind, entry.kind),
            ("subject", fields.subject, entry.subject),
            ("document_hash", fields.document_hash, entry.document_hash),
            ("terms", fields.terms, entry.terms),
        )
        if stored_value != value
    ]
    if fields.sequence != entry.sequence:
        names[0] = f"sequence (it says {fields.sequence})"
    return ", ".join(names) or "its encoding"


# --- Heads -------------------------------------------------------------------------------------


def check_heads(report: AuditReport, tree: Rebuilder, anchors: Sequence[AnchorRecord], chain: ChainView | None) -> None:
    """Every recorded and every on-chain head against the rebuilt tree, and consecutive heads
    against each other."""
    recorded = {anchor.tree_size: anchor.root for anchor in anchors}
    onchain: dict[int, bytes] = {}
    if chain is not None:
        onchain = dict(chain.heads())
        for size in recorded:
            onchain.setdefault(size, chain.root_at(size))
    sizes = sorted(set(recorded) | {size for size, root in onchain.items() if root != ZERO32})
    report.heads = len(sizes)
    checked: list[tuple[int, bytes]] = []
    for size in sizes:
        subject = f"head {size}"
        chain_root = onchain.get(size)
        if chain is not None and (chain_root is None or chain_root == ZERO32):
            report.add("head_not_on_chain", subject, f"recorded as anchored, but rootAt({size}) on the chain is zero")
        if size in recorded and chain_root not in (None, ZERO32) and recorded[size] != chain_root:
            report.add("head_record_mismatch", subject, "the recorded root differs from the chain's root")
        truth = chain_root if chain_root not in (None, ZERO32) else recorded.get(size)
        rebuilt = tree.root(size)
        if rebuilt is None:
            code, why = (
                ("head_not_rebuildable", f"entries from {tree.broken_at} are missing")
                if tree.broken_at is not None and tree.broken_at < size
                else ("head_beyond_ledger", f"the ledger has only {tree.position} entries")
            )
            report.add(code, subject, f"cannot rebuild the root of size {size}: {why}")
            continue
        if truth is not None and rebuilt != truth:
            report.add(
                "head_mismatch",
                subject,
                f"the root rebuilt from the documents ({to_hex(rebuilt)}) differs "
                f"from the anchored root ({to_hex(truth)})",
            )
        if truth is not None:
            checked.append((size, truth))
    for (old_size, old_root), (new_size, new_root) in itertools.pairwise(checked):
        proof = tree.consistency(old_size, new_size)
        if not merkle.verify_consistency(old_size, new_size, old_root, new_root, proof):
            report.add(
                "heads_inconsistent",
                f"head {new_size}",
                f"no consistency proof from the rebuilt tree links head {old_size} to head {new_size}",
            )


# --- Invoices and the journal ------------------------------------------------------------------


@dataclass
class InvoiceReplay:
    issued_minor: int = 0
    credits_minor: int = 0
    debits_minor: int = 0
    payments_minor: int = 0
    written_off_minor: int = 0
    applied_by_payment: dict[str, int] = field(default_factory=dict)
    issued: bool = False

    @property
    def balance_minor(self) -> int:
        return self.issued_minor - self.credits_minor + self.debits_minor - self.payments_minor


def replay_invoice_entry(replays: dict[str, InvoiceReplay], document: Any) -> None:
    """Apply one entry document to the replay of its invoice (ledger.invoices' balance rules)."""
    if not isinstance(document, dict) or "invoice_id" not in document:
        return
    try:
        kind = EntryKind.from_document_kind(document.get("kind"))
    except LedgerError:
        return
    state = replays.setdefault(str(document["invoice_id"]), InvoiceReplay())
    amount = document.get("amount_minor", 0) if isinstance(document.get("amount_minor"), int) else 0
    if kind is EntryKind.INVOICE_ISSUED:
        state.issued, state.issued_minor = True, int(document.get("total_minor", 0))
    elif kind is EntryKind.CREDIT_NOTE:
        state.credits_minor += int(document.get("applied_minor", 0))
    elif kind is EntryKind.DEBIT_NOTE:
        state.debits_minor += amount
    elif kind is EntryKind.PAYMENT_BOOKED:
        applied = min(amount, max(state.balance_minor, 0))
        state.payments_minor += applied
        state.applied_by_payment[str(document.get("payment_id"))] = applied
    elif kind is EntryKind.PAYMENT_REVERSED:
        state.payments_minor -= state.applied_by_payment.pop(str(document.get("payment_id")), 0)
    elif kind is EntryKind.WRITE_OFF:
        # One per write-off, and one more per payment booked before it and reversed after it
        # (ledger.invoices.reverse_payment): the sum is what the invoice has written off.
        state.written_off_minor += amount


INVOICE_FIELDS = (
    ("total_minor", "issued_minor"),
    ("credited_minor", "credits_minor"),
    ("debited_minor", "debits_minor"),
    ("paid_minor", "payments_minor"),
    ("written_off_minor", "written_off_minor"),
)


def check_invoices(report: AuditReport, replays: dict[str, InvoiceReplay], invoices: Iterable[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for invoice in invoices:
        invoice_id = str(invoice["id"])
        seen.add(invoice_id)
        report.invoices += 1
        state = replays.get(invoice_id)
        subject = f"invoice {invoice_id}"
        if state is None or not state.issued:
            report.add(
                "invoice_without_entries", subject, f"a {invoice.get('status')} invoice with no invoice_issued entry"
            )
            continue
        differences = [
            f"{stored} is {invoice.get(stored)}, the entries give {getattr(state, replayed)}"
            for stored, replayed in INVOICE_FIELDS
            if invoice.get(stored) != getattr(state, replayed)
        ]
        if differences:
            report.add("invoice_mismatch", subject, "; ".join(differences))
        if state.balance_minor < 0:
            report.add(
                "invoice_balance_negative", subject, f"issued - credits + debits - payments = {state.balance_minor}"
            )
    for invoice_id in sorted(set(replays) - seen):
        report.add(
            "invoice_missing", f"invoice {invoice_id}", "entries name this invoice, but no invoice record exists"
        )


def check_journal(report: AuditReport, lines: Iterable[dict[str, Any]]) -> None:
    postings: dict[str, int] = defaultdict(int)
    currencies: dict[str, int] = defaultdict(int)
    for journal_line in lines:
        amount = int(journal_line["amount_minor"])
        postings[str(journal_line["posting_id"])] += amount
        currencies[str(journal_line["currency"])] += amount
    report.postings = len(postings)
    for posting_id, total in sorted(postings.items()):
        if total:
            report.add("posting_unbalanced", f"posting {posting_id}", f"its lines sum to {total}, not zero")
    for currency, total in sorted(currencies.items()):
        if total:
            report.add(
                "journal_unbalanced", f"journal {currency}", f"the journal in {currency} sums to {total}, not zero"
            )


# --- Receipts ----------------------------------------------------------------------------------


def check_receipt(report: AuditReport, tree: Rebuilder, chain: ChainView | None, name: str, receipt: Any) -> None:
    subject = f"receipt {name}"
    try:
        verify_receipt_offline(receipt)
    except LedgerError as error:
        report.add("receipt_invalid", subject, error.message)
        return
    sequence, tree_size = receipt["leaf_index"], receipt["tree_size"]
    known = tree.document_hashes.get(sequence)
    if known is None or to_hex(known) != receipt["document_hash"]:
        report.add("receipt_document_mismatch", subject, f"the ledger's entry {sequence} has another document")
    rebuilt = tree.root(tree_size)
    if rebuilt is None or to_hex(rebuilt) != receipt["root"]:
        report.add("receipt_root_mismatch", subject, f"the ledger's root at size {tree_size} is not the receipt's root")
    if chain is not None:
        onchain = chain.root_at(tree_size)
        if onchain == ZERO32:
            report.add("receipt_not_anchored", subject, f"no head of size {tree_size} was ever anchored")
        elif to_hex(onchain) != receipt["root"]:
            report.add("receipt_root_mismatch", subject, f"the chain's root at size {tree_size} differs")


# --- Running it -------------------------------------------------------------------------------


def _chunks(records: Iterator[EntryRecord], size: int) -> Iterator[list[EntryRecord]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


def _checked_chunks(
    records: Iterator[EntryRecord], workers: int | None
) -> Iterator[tuple[list[EntryRecord], list[Check]]]:
    """Chunks of records with their checks, in order. With several workers, a bounded window of
    chunks is in flight in a process pool (memory stays bounded; order is kept)."""
    count = min(workers or os.cpu_count() or 1, workers_max)
    if count <= 1:
        for chunk in _chunks(records, check_chunk_entries):
            yield chunk, check_chunk(chunk)
        return
    window: collections.deque[tuple[list[EntryRecord], Any]] = collections.deque()
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=count, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        for chunk in _chunks(records, check_chunk_entries):
            window.append((chunk, pool.submit(check_chunk, chunk)))
            if len(window) >= 2 * count:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()


# --- Sources -----------------------------------------------------------------------------------


@dataclass
class AuditInput:
    """What a source hands the audit. `entries` is consumed once, in order."""

    source: str
    ledger_id: str
    entries: Iterator[EntryRecord]
    anchors: Callable[[], list[AnchorRecord]]
    invoices: Callable[[], list[dict[str, Any]]]
    journal: Callable[[], list[dict[str, Any]]]
    expected_entries: int | None = None
    extra_checks: Callable[[AuditReport, Rebuilder], None] | None = None


def run_audit(
    source: AuditInput,
    *,
    chain: ChainView | None,
    receipts: Sequence[tuple[str, Any]] = (),
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> AuditReport:
    """Run every check over `source`; `workers` processes check entries in parallel (default:
    the CPU count, at most `workers_max`, for ledgers of `parallel_entries_min` entries or more;
    1 checks in this process)."""
    started = time.perf_counter()
    report = AuditReport(source=source.source, ledger_id=source.ledger_id)
    tree = Rebuilder(report)
    replays: dict[str, InvoiceReplay] = {}
    if workers is None and (source.expected_entries or 0) < parallel_entries_min:
        workers = 1  # starting worker processes costs more than it saves on a small ledger
    for records, checks in _checked_chunks(source.entries, workers):
        for record, checked in zip(records, checks, strict=True):
            if tree.add(record, checked):
                replay_invoice_entry(replays, record.document)
        if progress is not None:
            progress(len(records))
    tree.finish()
    report.root = to_hex(tree.root(tree.size) or merkle.EMPTY_ROOT)
    if chain is not None:
        report.chain = {"contract": chain.reader.contract}
    check_heads(report, tree, source.anchors(), chain)
    check_invoices(report, replays, source.invoices())
    check_journal(report, source.journal())
    if source.extra_checks is not None:
        source.extra_checks(report, tree)
    for name, receipt in receipts:
        check_receipt(report, tree, chain, name, receipt)
    report.duration_s = time.perf_counter() - started
    return report


def hex_or_none(value: Any, length: int | None = None) -> bytes | None:
    if value is None:
        return None
    try:
        return from_hex(value, length=length, error=LedgerError)
    except LedgerError:
        return b""


def bundle_entry(record: dict[str, Any]) -> EntryRecord:
    return EntryRecord(
        sequence=int(record.get("sequence", -1)),
        document=record.get("document"),
        document_hash=hex_or_none(record.get("document_hash"), 32),
        leaf_input=hex_or_none(record.get("leaf_input")),
        leaf_hash=hex_or_none(record.get("leaf_hash"), 32),
        invoice_id=record.get("invoice"),
    )


def bundle_anchor(record: dict[str, Any]) -> AnchorRecord:
    return AnchorRecord(
        int(record["tree_size"]),
        hex_or_none(record["root"], 32) or b"",
        int(record["chain_id"]),
        str(record["contract"]),
        str(record["tx_hash"]),
    )


def sha256_hex(data: bytes) -> str:
    return "0x" + hashlib.sha256(data).hexdigest()


# --- The database and the bundle as audit inputs ----------------------------------------------

entry_batch_rows_max = 2_000


def database_input(sessions: Any, ledger_id: str) -> AuditInput:
    """The ledger as stored: entry rows (gaps are findings, not errors), confirmed anchors,
    invoices, journal lines; then the stored head and Merkle nodes against the rebuilt tree."""
    from sqlalchemy import func, select

    from backend.anchoring.export import invoice_record, journal_record
    from backend.db import transaction
    from backend.models import AnchorTransaction, Invoice, JournalLine, LedgerEntry

    def entries() -> Iterator[EntryRecord]:
        last = -1
        while True:
            with transaction(sessions) as session:
                rows = session.execute(
                    select(
                        LedgerEntry.sequence,
                        LedgerEntry.document,
                        LedgerEntry.document_hash,
                        LedgerEntry.leaf_input,
                        LedgerEntry.leaf_hash,
                        LedgerEntry.invoice_id,
                    )
                    .where(LedgerEntry.ledger_id == ledger_id, LedgerEntry.sequence > last)
                    .order_by(LedgerEntry.sequence)
                    .limit(entry_batch_rows_max)
                ).all()
            if not rows:
                return
            for sequence, document, document_hash, leaf_input, leaf_hash, invoice_id in rows:
                yield EntryRecord(
                    sequence, document, bytes(document_hash), bytes(leaf_input), bytes(leaf_hash), invoice_id
                )
            last = rows[-1][0]

    def anchors() -> list[AnchorRecord]:
        with transaction(sessions) as session:
            rows = session.scalars(
                select(AnchorTransaction).where(
                    AnchorTransaction.ledger_id == ledger_id, AnchorTransaction.status == "confirmed"
                )
            )
            return [
                AnchorRecord(row.tree_size, bytes(row.root), row.chain_id, row.contract, to_hex(bytes(row.tx_hash)))
                for row in rows
            ]

    def invoices() -> list[dict[str, Any]]:
        with transaction(sessions) as session:
            return [invoice_record(row) for row in session.scalars(select(Invoice).where(Invoice.status != "draft"))]

    def journal() -> list[dict[str, Any]]:
        with transaction(sessions) as session:
            rows = session.scalars(select(JournalLine).where(JournalLine.ledger_id == ledger_id))
            return [journal_record(row) for row in rows]

    with transaction(sessions) as session:
        count = session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.ledger_id == ledger_id))
    return AuditInput(
        f"database ({ledger_id})",
        ledger_id,
        entries(),
        anchors,
        invoices,
        journal,
        expected_entries=int(count or 0),
        extra_checks=lambda report, tree: _check_stored_tree(report, tree, sessions, ledger_id),
    )


def _check_stored_tree(report: AuditReport, tree: Rebuilder, sessions: Any, ledger_id: str) -> None:
    """The stored head and every stored Merkle node against the tree rebuilt from documents."""
    from sqlalchemy import select

    from backend.db import transaction
    from backend.models import LedgerHead, MerkleNode

    with transaction(sessions) as session:
        head = session.get(LedgerHead, ledger_id)
        head_size, head_root = (head.size, bytes(head.root)) if head is not None else (0, merkle.EMPTY_ROOT)
    rebuilt = tree.root(head_size)
    if rebuilt is None or rebuilt != head_root or head_size != tree.position:
        report.add(
            "stored_head_mismatch",
            f"head {head_size}",
            f"the stored head (size {head_size}, root {to_hex(head_root)}) is not the rebuilt tree's "
            f"({tree.position} entries, root {to_hex(rebuilt) if rebuilt else 'not rebuildable'})",
        )
    levels = tree.store._levels  # the rebuilt tree, level by level (ledger.merkle.MemoryNodeStore)
    bad: list[str] = []
    bad_count = 0
    last: tuple[int, int] = (-1, -1)
    while True:
        with transaction(sessions) as session:
            rows = session.execute(
                select(MerkleNode.level, MerkleNode.node_index, MerkleNode.hash)
                .where(
                    MerkleNode.ledger_id == ledger_id,
                    (MerkleNode.level > last[0]) | ((MerkleNode.level == last[0]) & (MerkleNode.node_index > last[1])),
                )
                .order_by(MerkleNode.level, MerkleNode.node_index)
                .limit(entry_batch_rows_max * 2)
            ).all()
        if not rows:
            break
        for level, index, hash_ in rows:
            expected = levels[level][index] if level < len(levels) and index < len(levels[level]) else None
            if expected is not None and bytes(hash_) != expected:
                bad_count += 1
                if len(bad) < 20:
                    first = index << level
                    bad.append(f"({level}, {index}) covering entries {first}..{first + (1 << level) - 1}")
        last = (rows[-1][0], rows[-1][1])
    if bad_count:
        report.add(
            "stored_node_mismatch",
            "merkle_nodes",
            f"{bad_count} stored Merkle node(s) differ from the rebuilt tree: {', '.join(bad)}",
        )


def bundle_input(path: Any) -> AuditInput:
    """An export bundle (a directory or the NDJSON stream); the manifest is checked at the end."""
    from backend.anchoring.export import SECTIONS, Bundle

    bundle = Bundle(path)

    def extra(report: AuditReport, tree: Rebuilder) -> None:
        manifest = bundle.manifest
        if manifest is None:
            report.add("bundle_manifest_missing", "bundle manifest", "the bundle has no export manifest")
            return
        report.ledger_id = str(manifest.get("ledger_id", ""))
        for name in SECTIONS:
            digest = bundle.digests[name]
            if manifest.get("counts", {}).get(name) != digest.count:
                report.add(
                    "bundle_count_mismatch",
                    f"bundle {name}",
                    f"the manifest counts "
                    f"{manifest.get('counts', {}).get(name)} {name}, the bundle holds {digest.count}",
                )
            if manifest.get("sha256", {}).get(name) != "0x" + digest.sha256.hexdigest():
                report.add(
                    "bundle_hash_mismatch", f"bundle {name}", f"the {name} section's SHA-256 is not the manifest's"
                )
        head = manifest.get("head", {})
        rebuilt = tree.root(int(head.get("tree_size", -1))) if isinstance(head.get("tree_size"), int) else None
        if rebuilt is None or to_hex(rebuilt) != head.get("root") or head.get("tree_size") != tree.position:
            report.add(
                "stored_head_mismatch",
                f"head {head.get('tree_size')}",
                "the exported head is not the root of the tree rebuilt from the exported documents",
            )

    return AuditInput(
        f"bundle {path}",
        "",
        (bundle_entry(record) for record in bundle.entries()),
        lambda: [bundle_anchor(record) for record in bundle.anchors],
        lambda: bundle.invoices,
        lambda: bundle.journal,
        expected_entries=bundle.expected_entries(),
        extra_checks=extra,
    )
