"""The ledger in the database: append entries, read the head, prove inclusion and consistency.

Appends are serialized per ledger by the head row: `SELECT ... FOR UPDATE` on PostgreSQL, and
SQLite's `BEGIN IMMEDIATE` (backend.db) on the embedded default. Each append runs inside the
caller's transaction, so the business change, its entry and its journal lines commit together or
not at all. Callers should do their business writes first and append last: the head lock is then
held only for the append itself and the commit.

The rules (documents, leaf inputs, the Merkle log) are `ledger/`'s; this module only stores them:
`ledger_entries` (one row per leaf), `merkle_nodes` (`ledger.merkle.NodeStore`), `ledger_heads`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak
from psycopg.rows import namedtuple_row
from psycopg.types.json import Json
from sqlalchemy import JSON, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.models import LedgerEntry, LedgerHead, MerkleNode
from backend.services.common import NotFound, is_id, new_id, now_s
from ledger import merkle
from ledger.entries import DOCUMENT_FORMAT, Entry, EntryKind
from ledger.entries import leaf_input as leaf_input_of
from ledger.errors import InvalidTreeRange, LogCorrupted, NodeMissing
from ledger.hexutil import to_hex
from ledger.terms import Terms

HASH_BYTES = 32
append_batch_max = 10_000  # entries per append_entries call (bulk invoices, reconciler batches)
node_keys_per_query_max = 500


@functools.cache
def ledger_key(ledger_id: str) -> bytes:
    """The bytes32 form of a ledger's name, used in documents and keys: keccak256(utf-8 name)."""
    return keccak(ledger_id.encode())


def assemble_document(kind: EntryKind, *, ledger_id: str, created: int, **fields: Any) -> dict[str, Any]:
    """The same document as `ledger.entries.build_document`, without validating it here: use it
    on hot paths whose documents go straight to `append_entries`, which validates every document
    (`ledger.entries.Entry`) before anything is written. Validating twice costs a third of a bulk
    finalize."""
    document: dict[str, Any] = {
        "format": DOCUMENT_FORMAT,
        "kind": EntryKind(kind).document_kind,
        "ledger_id": to_hex(ledger_key(ledger_id)),
        "created": created,
    }
    for name, value in fields.items():
        if isinstance(value, Terms):
            value = value.to_document()
        elif isinstance(value, bytes):
            value = to_hex(value)
        document[name] = value
    return document


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry to append: its document (built with `ledger.entries.build_document`) and what it
    is about (for partner scoping and receipts; not part of the leaf)."""

    document: dict[str, Any]
    customer_id: str | None = None
    invoice_id: str | None = None


@dataclass(frozen=True, slots=True)
class PreparedEntries:
    """Entries validated and hashed (`prepare_entries`), ready for `append_entries` under the lock."""

    entries: tuple[NewEntry, ...]
    checked: tuple[Entry, ...]


def prepare_entries(entries: Sequence[NewEntry]) -> PreparedEntries:
    """Validate and hash documents without any lock: the sequence is not in the document, only
    in the leaf input. Callers that take other locks first (invoice series) prepare before them."""
    if not 1 <= len(entries) <= append_batch_max:
        raise ValueError(f"append 1..{append_batch_max} entries at a time, got {len(entries)}")
    return PreparedEntries(tuple(entries), tuple(Entry(0, new.document) for new in entries))


@dataclass(frozen=True, slots=True)
class AppendedEntry:
    id: str
    sequence: int
    kind: EntryKind
    document_hash: bytes
    leaf_hash: bytes
    terms_version: int | None


@dataclass(frozen=True, slots=True)
class Head:
    ledger_id: str
    size: int
    root: bytes
    frontier: tuple[bytes, ...]
    updated: int


class DbNodeStore:
    """`ledger.merkle.NodeStore` over `merkle_nodes`: a batch of keys is one query."""

    def __init__(self, session: Session, ledger_id: str) -> None:
        self._session = session
        self._ledger_id = ledger_id

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> list[bytes]:
        wanted = list(dict.fromkeys((int(level), int(index)) for level, index in keys))
        found: dict[tuple[int, int], bytes] = {}
        for start in range(0, len(wanted), node_keys_per_query_max):
            chunk = wanted[start : start + node_keys_per_query_max]
            rows = self._session.execute(
                select(MerkleNode.level, MerkleNode.node_index, MerkleNode.hash).where(
                    MerkleNode.ledger_id == self._ledger_id,
                    tuple_(MerkleNode.level, MerkleNode.node_index).in_(chunk),
                )
            )
            found.update({(level, index): bytes(hash_) for level, index, hash_ in rows})
        missing = [key for key in wanted if key not in found]
        if missing:
            raise NodeMissing(f"merkle_nodes lacks {len(missing)} node(s), first {missing[0]}")
        return [found[(int(level), int(index))] for level, index in keys]


def _split_frontier(blob: bytes) -> tuple[bytes, ...]:
    if len(blob) % HASH_BYTES:
        raise LogCorrupted(f"frontier blob of {len(blob)} bytes is not a list of hashes")
    return tuple(blob[i : i + HASH_BYTES] for i in range(0, len(blob), HASH_BYTES))


def _head_from_row(row: Any) -> Head:
    head = Head(row.ledger_id, row.size, bytes(row.root), _split_frontier(bytes(row.frontier)), row.updated)
    _check_head(head)
    return head


def _check_head(head: Head) -> None:
    """The stored root must be the root of the stored frontier, which must fit the size."""
    if len(head.frontier) != head.size.bit_count():
        raise LogCorrupted(f"head of {head.ledger_id}: {len(head.frontier)} frontier hashes for size {head.size}")
    if merkle.root_from_frontier(list(head.frontier)) != head.root:
        raise LogCorrupted(f"head of {head.ledger_id}: root does not match its frontier")


# The hot path uses Core statements on the tables (not ORM entities): an append is a handful of
# statements executed while the head is locked, and ORM bookkeeping would lengthen the lock.
_HEADS = LedgerHead.__table__
_ENTRIES = LedgerEntry.__table__
_NODES = MerkleNode.__table__
_MOVE_HEAD_SQL = (
    "UPDATE ledger_heads SET size = %(size)s, root = %(root)s, frontier = %(frontier)s, updated = %(updated)s "
    "WHERE ledger_id = %(ledger_id)s AND size = %(size_before)s"
)


def _insert_statement(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_HEADS)


def _lock_head(session: Session, ledger_id: str) -> Head:
    """Lock (PostgreSQL: FOR UPDATE) and return the head row, creating the empty head once."""
    statement = select(_HEADS).where(_HEADS.c.ledger_id == ledger_id).with_for_update()
    row = session.execute(statement).one_or_none()
    if row is None:
        session.execute(
            _insert_statement(session)
            .values(ledger_id=ledger_id, size=0, root=merkle.EMPTY_ROOT, frontier=b"", updated=now_s())
            .on_conflict_do_nothing(index_elements=["ledger_id"])
        )
        row = session.execute(statement).one()
    return _head_from_row(row)


_LOCK_HEAD_SQL = (
    "SELECT ledger_id, size, root, frontier, updated FROM ledger_heads WHERE ledger_id = %(ledger_id)s FOR UPDATE"
)


def lock_head_after(
    session: Session, ledger_id: str, statement: Any, rows: Sequence[dict[str, Any]]
) -> tuple[Head, list[Any]]:
    """Execute `statement` (a module constant: DML ... RETURNING one value) once per row, then
    lock the head, and return the head (for `append_entries(head=...)`) and each row's value. For
    locks every appender of this kind takes before the head's (invoice series counters): on
    PostgreSQL all of it is one pipelined round trip instead of one per statement."""
    driver = _driver(session)
    if driver is None:
        values = [session.execute(statement, row).scalar_one() for row in rows]
        return _lock_head(session, ledger_id), values
    sql, defaults = _driver_sql(statement, session.get_bind().dialect)
    with driver.pipeline():
        cursors = [driver.cursor() for _ in rows]
        for cursor, row in zip(cursors, rows, strict=True):
            cursor.execute(sql, {**defaults, **row})
        head_cursor = driver.cursor(row_factory=namedtuple_row)
        head_cursor.execute(_LOCK_HEAD_SQL, {"ledger_id": ledger_id})
    values = [cursor.fetchone()[0] for cursor in cursors]  # type: ignore[index]  # RETURNING one row each
    locked = head_cursor.fetchone()
    return (_head_from_row(locked) if locked is not None else _lock_head(session, ledger_id)), values


def _driver(session: Session) -> Any:
    """The psycopg connection under the session's transaction on PostgreSQL, else None."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return session.connection().connection.driver_connection


def read_head(session: Session, ledger_id: str) -> Head:
    """The current head without locking (size 0 and the empty root before the first append)."""
    row = session.get(LedgerHead, ledger_id)
    if row is None:
        return Head(ledger_id, 0, merkle.EMPTY_ROOT, (), 0)
    return _head_from_row(row)


def append_entries(
    session: Session,
    *,
    ledger_id: str,
    entries: Sequence[NewEntry] | PreparedEntries,
    with_writes: Callable[[list[AppendedEntry]], None] | None = None,
    head: Head | None = None,
) -> list[AppendedEntry]:
    """Append `entries` in order to the ledger, inside the caller's transaction.

    Validates every document (unless given `prepare_entries`' result), then locks the head, gives
    each entry the next sequence number, stores the entry rows and the Merkle nodes each append
    completes, and moves the head. Nothing is committed here: the caller's commit releases the lock.

    `head` is the head the caller locked itself in this transaction (`lock_head_after`).

    `with_writes(appended)` lets the caller add its own writes that need the new sequence numbers
    (invoice rows, journal lines) to the same round trip: on PostgreSQL the entry, node, caller and
    head statements go out as one psycopg pipeline, so the head lock waits for one round trip
    instead of one per statement. It must only execute statements that return nothing (no ORM
    flush, no RETURNING): their results are not read until the pipeline ends.
    """
    batch = entries if isinstance(entries, PreparedEntries) else prepare_entries(entries)
    entries, prepared = batch.entries, batch.checked
    if head is None:
        head = _lock_head(session, ledger_id)
    elif head.ledger_id != ledger_id:
        raise ValueError(f"append to {ledger_id} given the head of {head.ledger_id}")
    created = now_s()
    size = head.size
    entry_rows: list[dict[str, Any]] = []
    leaf_hashes: list[bytes] = []
    appended: list[AppendedEntry] = []
    for new, entry in zip(entries, prepared, strict=True):
        leaf_input = leaf_input_of(entry.kind, size, entry.subject, entry.document_hash, entry.terms)
        leaf_hash = merkle.leaf_hash(leaf_input)
        leaf_hashes.append(leaf_hash)
        terms_version = entry.terms.version if entry.terms is not None else None
        entry_id = new_id("ent")
        entry_rows.append(
            {
                "ledger_id": ledger_id,
                "sequence": size,
                "id": entry_id,
                "kind": int(entry.kind),
                "subject": entry.subject,
                "document": new.document,
                "document_hash": entry.document_hash,
                "leaf_input": leaf_input,
                "leaf_hash": leaf_hash,
                "terms_version": terms_version,
                "customer_id": new.customer_id,
                "invoice_id": new.invoice_id,
                "created": created,
            }
        )
        appended.append(AppendedEntry(entry_id, size, entry.kind, entry.document_hash, leaf_hash, terms_version))
        size += 1
    frontier, runs = merkle.append_batch(head.frontier, head.size, leaf_hashes)
    node_rows = [
        {"ledger_id": ledger_id, "level": level, "node_index": index, "hash": hash_}
        for level, index, hash_ in merkle.runs_to_nodes(runs)
    ]
    root = merkle.root_from_frontier(list(frontier))
    move = {"ledger_id": ledger_id, "size_before": head.size, "size": size, "root": root,
            "frontier": b"".join(frontier), "updated": created}  # fmt: skip
    with _pipeline(session) as pipelined:
        insert_rows(session, _ENTRIES, entry_rows)
        insert_rows(session, _NODES, node_rows)
        if with_writes is not None:
            with_writes(appended)
        moved = _move_head(session, pipelined, move)
    if moved.rowcount != 1:  # the lock makes this impossible; check it anyway (STYLE.md)
        raise LogCorrupted(f"head of {ledger_id} moved during an append from size {head.size}")
    return appended


def _move_head(session: Session, pipelined: Any, values: dict[str, Any]) -> Any:
    """The head UPDATE (guarded by the size it had when locked); the returned object's
    `rowcount` is valid once any pipeline has synced."""
    if pipelined is None:
        return session.execute(
            update(_HEADS)
            .where(_HEADS.c.ledger_id == values["ledger_id"], _HEADS.c.size == values["size_before"])
            .values(size=values["size"], root=values["root"], frontier=values["frontier"], updated=values["updated"])
        )
    cursor = pipelined.cursor()  # the driver's cursor: SQLAlchemy reads a row count before the sync
    cursor.execute(_MOVE_HEAD_SQL, values)
    return cursor


@contextmanager
def _pipeline(session: Session) -> Iterator[Any]:
    """PostgreSQL: a psycopg pipeline on the session's connection (statements are sent without
    waiting for each reply; leaving the block syncs and raises the first error), yielding the
    driver connection. Other databases: nothing to batch, yields None."""
    driver = _driver(session)
    if driver is None:
        yield None
        return
    session.info["pipeline"] = driver
    try:
        with driver.pipeline():
            yield driver
    finally:
        del session.info["pipeline"]


def insert_rows(session: Session, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT `rows` (dicts with the same keys) into `table`, asking nothing back. Inside
    `append_entries`' pipeline they go straight to the driver's `executemany` (the rows are plain
    values; JSON columns are adapted as SQLAlchemy's JSON type would, None included as JSON null),
    which costs a fraction of SQLAlchemy's per-statement work while the head is locked."""
    if not rows:
        return
    driver = session.info.get("pipeline")
    if driver is None:
        session.execute(insert(table).inline(), rows)
        return
    statement, json_columns = _raw_insert(table, tuple(rows[0]))
    if json_columns:
        rows = [{**row, **{name: Json(row[name]) for name in json_columns}} for row in rows]
    driver.cursor().executemany(statement, rows)


def execute_many(session: Session, statement: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Execute a Core DML `statement` (its bind parameters named as the rows' keys) once per row,
    asking nothing back: inside `append_entries`' pipeline straight on the driver, so it costs no
    round trip of its own; elsewhere through SQLAlchemy. `statement` must be a module constant."""
    if not rows:
        return
    driver = session.info.get("pipeline")
    if driver is None:
        session.execute(statement, rows)
        return
    sql, defaults = _driver_sql(statement, session.get_bind().dialect)
    driver.cursor().executemany(sql, [{**defaults, **row} for row in rows])


_DRIVER_SQL: dict[int, tuple[Any, str, dict[str, Any]]] = {}


def _driver_sql(statement: Any, dialect: Any) -> tuple[str, dict[str, Any]]:
    """The statement compiled once for the driver: its SQL and the values it binds itself."""
    cached = _DRIVER_SQL.get(id(statement))
    if cached is None or cached[0] is not statement:
        compiled = statement.compile(dialect=dialect)
        cached = _DRIVER_SQL[id(statement)] = (statement, compiled.string, dict(compiled.params))
    return cached[1], cached[2]


@functools.cache
def _raw_insert(table: Any, columns: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    if any(isinstance(table.c[name].type, JSON) and table.c[name].type.none_as_null for name in columns):
        raise ValueError(f"{table.name}: a JSON column with none_as_null needs its own adaptation")
    json_columns = tuple(name for name in columns if isinstance(table.c[name].type, JSON))
    names = ", ".join(table.c[name].name for name in columns)
    values = ", ".join(f"%({name})s" for name in columns)
    # Names from the table's metadata, never from input; the values are bound parameters.
    return f"INSERT INTO {table.name} ({names}) VALUES ({values})", json_columns  # noqa: S608


def append_entry(session: Session, *, ledger_id: str, entry: NewEntry) -> AppendedEntry:
    """Append one entry (see `append_entries`)."""
    return append_entries(session, ledger_id=ledger_id, entries=[entry])[0]


def _check_within(session: Session, ledger_id: str, size: int, name: str) -> Head:
    head = read_head(session, ledger_id)
    if not 0 <= size <= head.size:
        raise InvalidTreeRange(f"{name} {size} is beyond the ledger's size {head.size}", param=name)
    return head


def root_at(session: Session, ledger_id: str, size: int) -> bytes:
    """The tree head hash at an earlier (or the current) size: O(log n) node reads."""
    head = _check_within(session, ledger_id, size, "tree_size")
    if size == head.size:
        return head.root
    return merkle.root_at(DbNodeStore(session, ledger_id), size)


def inclusion_proof(session: Session, ledger_id: str, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves (one node query)."""
    _check_within(session, ledger_id, size, "tree_size")
    return merkle.inclusion_proof(DbNodeStore(session, ledger_id), index, size)


def consistency_proof(session: Session, ledger_id: str, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 consistency proof between sizes 0 < old_size <= new_size (one node query)."""
    _check_within(session, ledger_id, new_size, "second")
    return merkle.consistency_proof(DbNodeStore(session, ledger_id), old_size, new_size)


def iter_entries(
    session: Session, ledger_id: str, *, start: int = 0, end: int | None = None, batch: int = 1_000
) -> Iterator[LedgerEntry]:
    """Entries with start <= sequence < end in order, read in bounded batches."""
    position = start
    while end is None or position < end:
        statement = (
            select(LedgerEntry)
            .where(LedgerEntry.ledger_id == ledger_id, LedgerEntry.sequence >= position)
            .order_by(LedgerEntry.sequence)
            .limit(batch if end is None else min(batch, end - position))
        )
        rows = list(session.scalars(statement))
        if not rows:
            return
        for row in rows:
            if row.sequence != position:  # a gap means a deleted or renumbered entry
                raise LogCorrupted(f"ledger {ledger_id}: expected sequence {position}, found {row.sequence}")
            yield row
            position += 1


def hex_or_none(data: bytes | None) -> str | None:
    return None if data is None else to_hex(bytes(data))


def find_entry(session: Session, *, ledger_id: str, entry: str, partner_of: str | None = None) -> LedgerEntry:
    """An entry by sequence number or `ent_` id; NotFound for anything else, or for another
    customer's entry when `partner_of` is set (a partner learns nothing of others' entries)."""
    statement = select(LedgerEntry).where(LedgerEntry.ledger_id == ledger_id)
    if entry.isascii() and entry.isdigit() and len(entry) <= 19:
        statement = statement.where(LedgerEntry.sequence == int(entry))
    elif is_id(entry, "ent"):
        statement = statement.where(LedgerEntry.id == entry)
    else:
        raise NotFound(f"no ledger entry {entry}", param="entry")
    row = session.scalars(statement).one_or_none()
    if row is None or (partner_of is not None and row.customer_id != partner_of):
        raise NotFound(f"no ledger entry {entry}", param="entry")
    return row
