"""The ledger export bundle (DESIGN.md flow 6): what an auditor takes away and replays.

Two containers, the same records (one JSON object per line, each with an `object` field):

- the HTTP stream `GET /v1/ledger/export` (NDJSON): `ledger_entry` lines in sequence order, a
  `ledger_head` line, then `anchor`, `invoice` and `journal_line` lines, and a last
  `export_manifest` line;
- the directory `tally export DIR`: `entries.ndjson`, `anchors.ndjson`, `invoices.ndjson`,
  `journal.ndjson` and `manifest.json`.

The manifest holds the format version, the ledger, the head exported (`tree_size`, `root`), the
number of records and the SHA-256 of each section's bytes exactly as written (`entries`,
`anchors`, `invoices`, `journal`), so a bundle damaged in transit is named as such by the audit.
The manifest is not a signature: what makes the bundle trustworthy is the chain (the audit
rebuilds every anchored root from the documents and compares it with `rootAt`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.db import transaction
from backend.models import AnchorTransaction, Invoice, JournalLine, LedgerEntry
from backend.services import ledger as ledger_service
from ledger.hexutil import to_hex

EXPORT_FORMAT = 1
SECTIONS = ("entries", "anchors", "invoices", "journal")
SECTION_FILES = {name: f"{name}.ndjson" for name in SECTIONS}
MANIFEST_FILE = "manifest.json"
OBJECT_SECTION = {"ledger_entry": "entries", "anchor": "anchors", "invoice": "invoices", "journal_line": "journal"}
export_batch_rows_max = 2_000
bundle_line_bytes_max = 1024 * 1024


def line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def entry_record(row: LedgerEntry) -> dict[str, Any]:
    from backend.api import render  # the API's public shape of an entry, one definition

    return render.entry(row)


def anchor_record(row: AnchorTransaction) -> dict[str, Any]:
    return {
        "object": "anchor",
        "id": row.id,
        "status": row.status,
        "tree_size": row.tree_size,
        "root": to_hex(bytes(row.root)),
        "previous_size": row.previous_size,
        "chain_id": row.chain_id,
        "contract": row.contract,
        "tx_hash": to_hex(bytes(row.tx_hash)),
        "block_number": row.block_number,
    }


def invoice_record(row: Invoice) -> dict[str, Any]:
    return {
        "object": "invoice",
        "id": row.id,
        "customer": row.customer_id,
        "status": row.status,
        "currency": row.currency,
        "total_minor": row.total_minor,
        "credited_minor": row.credited_minor,
        "debited_minor": row.debited_minor,
        "paid_minor": row.paid_minor,
        "written_off_minor": row.written_off_minor,
        "issued_entry": row.issued_sequence,
        "invoice_key": to_hex(bytes(row.invoice_key)) if row.invoice_key else None,
    }


def journal_record(row: JournalLine) -> dict[str, Any]:
    return {
        "object": "journal_line",
        "posting_id": row.posting_id,
        "entry_sequence": row.entry_sequence,
        "account": row.account,
        "currency": row.currency,
        "amount_minor": row.amount_minor,
        "customer": row.customer_id,
        "invoice": row.invoice_id,
        "payment": row.payment_id,
    }


def _paged(
    sessions: sessionmaker[Session], statement: Any, key: Any, render: Callable[[Any], dict[str, Any]]
) -> Iterator[bytes]:
    """Rows of `statement` in `key` order, read in bounded batches (keyset paging)."""
    last = None
    while True:
        page = statement if last is None else statement.where(key > last)
        with transaction(sessions) as session:
            rows = list(session.scalars(page.order_by(key).limit(export_batch_rows_max)))
            lines = [line(render(row)) for row in rows]
        if not rows:
            return
        yield b"".join(lines)
        last = getattr(rows[-1], key.key)


def section_chunks(sessions: sessionmaker[Session], ledger_id: str, section: str, tree_size: int) -> Iterator[bytes]:
    """The lines of one section, in bounded chunks."""
    statement: Any
    if section == "entries":
        statement = select(LedgerEntry).where(LedgerEntry.ledger_id == ledger_id, LedgerEntry.sequence < tree_size)
        return _paged(sessions, statement, LedgerEntry.sequence, entry_record)
    if section == "anchors":
        statement = select(AnchorTransaction).where(
            AnchorTransaction.ledger_id == ledger_id,
            AnchorTransaction.status == "confirmed",
            AnchorTransaction.tree_size <= tree_size,
        )
        return _paged(sessions, statement, AnchorTransaction.pk, anchor_record)
    if section == "invoices":
        statement = select(Invoice).where(Invoice.status != "draft")
        return _paged(sessions, statement, Invoice.pk, invoice_record)
    statement = select(JournalLine).where(JournalLine.ledger_id == ledger_id)
    return _paged(sessions, statement, JournalLine.pk, journal_record)


@dataclass
class SectionDigest:
    count: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)

    def add(self, chunk: bytes) -> None:
        self.count += chunk.count(b"\n")
        self.sha256.update(chunk)


def manifest(ledger_id: str, tree_size: int, root: bytes, digests: dict[str, SectionDigest]) -> dict[str, Any]:
    return {
        "object": "export_manifest",
        "format": EXPORT_FORMAT,
        "ledger_id": ledger_id,
        "ledger_key": to_hex(ledger_service.ledger_key(ledger_id)),
        "head": {"tree_size": tree_size, "root": to_hex(root)},
        "counts": {name: digests[name].count for name in SECTIONS},
        "sha256": {name: "0x" + digests[name].sha256.hexdigest() for name in SECTIONS},
        "created": int(time.time()),
    }


def stream_with_manifest(
    sessions: sessionmaker[Session], ledger_id: str, entry_chunks: Iterable[bytes], tree_size: int
) -> Iterator[bytes]:
    """Pass the entry stream through (hashing the entry lines; the `ledger_head` line is kept as
    is), then the other sections, then the manifest line."""
    digests = {name: SectionDigest() for name in SECTIONS}
    for chunk in entry_chunks:
        if b'"object":"ledger_head"' in chunk:
            entries, _, _head = chunk.rpartition(b"\n{")
            if entries:
                digests["entries"].add(entries + b"\n")
            yield chunk
            continue
        digests["entries"].add(chunk)
        yield chunk
    for name in SECTIONS[1:]:
        for chunk in section_chunks(sessions, ledger_id, name, tree_size):
            digests[name].add(chunk)
            yield chunk
    with transaction(sessions) as session:
        root = ledger_service.root_at(session, ledger_id, tree_size)
    yield line(manifest(ledger_id, tree_size, root, digests))


def write_bundle(
    sessions: sessionmaker[Session], ledger_id: str, directory: Path, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Write the directory bundle of the ledger's current head; return the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    with transaction(sessions) as session:
        head = ledger_service.read_head(session, ledger_id)
    digests = {name: SectionDigest() for name in SECTIONS}
    for name in SECTIONS:
        temporary = directory / (SECTION_FILES[name] + ".tmp")
        with open(temporary, "wb") as output:
            for chunk in section_chunks(sessions, ledger_id, name, head.size):
                digests[name].add(chunk)
                output.write(chunk)
                if progress is not None and name == "entries":
                    progress(chunk.count(b"\n"))
        os.replace(temporary, directory / SECTION_FILES[name])
    result = manifest(ledger_id, head.size, head.root, digests)
    (directory / MANIFEST_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


# --- Reading a bundle (the audit's input) -----------------------------------------------------


class BundleUnreadable(ValueError):
    pass


@dataclass
class Bundle:
    """A bundle being read: entries stream; the other sections are collected as they pass."""

    path: Path
    manifest: dict[str, Any] | None = None
    head_line: dict[str, Any] | None = None
    anchors: list[dict[str, Any]] = field(default_factory=list)
    invoices: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    digests: dict[str, SectionDigest] = field(default_factory=lambda: {name: SectionDigest() for name in SECTIONS})

    def expected_entries(self) -> int | None:
        if self.path.is_dir():
            return int(_read_manifest(self.path)["counts"]["entries"])
        return None

    def entries(self) -> Iterator[dict[str, Any]]:
        """Entry records in file order; other records are collected on the way (stream form)."""
        if self.path.is_dir():
            self.manifest = _read_manifest(self.path)
            for name in SECTIONS[1:]:
                for record in self._lines(self.path / SECTION_FILES[name], name):
                    self._collect(name, record)
            yield from self._lines(self.path / SECTION_FILES["entries"], "entries")
            return
        for record in self._lines(self.path, None):
            kind = record.get("object")
            if kind == "ledger_entry":
                yield record
            elif kind == "ledger_head":
                self.head_line = record
            elif kind == "export_manifest":
                self.manifest = record
            elif kind in OBJECT_SECTION:
                self._collect(OBJECT_SECTION[kind], record)
            else:
                raise BundleUnreadable(f"{self.path}: unknown record object {kind!r:.40}")

    def _collect(self, section: str, record: dict[str, Any]) -> None:
        {"anchors": self.anchors, "invoices": self.invoices, "journal": self.journal}[section].append(record)

    def _lines(self, path: Path, section: str | None) -> Iterator[dict[str, Any]]:
        try:
            handle = open(path, "rb")
        except OSError as error:
            raise BundleUnreadable(f"cannot read {path}: {error.strerror or error}") from error
        with handle:
            for number, raw in enumerate(handle, start=1):
                if len(raw) > bundle_line_bytes_max:
                    raise BundleUnreadable(f"{path}:{number}: line longer than {bundle_line_bytes_max} bytes")
                try:
                    record = json.loads(raw)
                except ValueError as error:
                    raise BundleUnreadable(f"{path}:{number}: not JSON ({error})") from error
                if not isinstance(record, dict):
                    raise BundleUnreadable(f"{path}:{number}: not a JSON object")
                name = section or OBJECT_SECTION.get(str(record.get("object")))
                if name is not None:
                    self.digests[name].add(raw)
                yield record


def _read_manifest(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as error:
        raise BundleUnreadable(f"{directory / MANIFEST_FILE}: {error}") from error
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise BundleUnreadable(f"{directory / MANIFEST_FILE}: not an export manifest of format {EXPORT_FORMAT}")
    return data
