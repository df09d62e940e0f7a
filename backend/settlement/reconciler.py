"""The reconciler (DESIGN.md flow 5): reads payments from the chain and books them, exactly once.

One tick, in this order (every tick starts from the persisted cursor, never from memory):
1. Take or keep the one-reconciler lock (the anchorer's `WorkerLock`); without it, stand by.
2. Read the head; the safe block is `head - (confirmations - 1)` (confirmations count the block
   holding the log, as for anchors).
3. Caught up: check that the cursor's block is still on the chain (same hash); if not, repair.
4. Otherwise read the next range [cursor + 1, min(safe, cursor + range)] in one JSON-RPC batch: its
   first and last headers and every InvoicePaid and Transfer-into-a-payee log. The first header's
   parent hash must be the cursor's hash, or the chain reorganised under us: repair. Headers of the
   blocks holding logs are fetched next; a log whose block hash disagrees with its header means a
   reorg is under way: nothing is booked, the next tick reads again.
5. Book the logs in bounded chunks of whole blocks; each chunk, its block hashes and the cursor
   move commit in one database transaction (restart-safe at any point: a crash rolls back the
   chunk and the next tick reads it again; the unique (chain_id, tx_hash, log_index) and the
   cursor's compare-and-set make a second booking impossible even without the lock).

Repair (a reorg): the newest stored block whose hash is still canonical is the fork point; every
payment above it is reversed (`booking.orphan`), the stored blocks above it forgotten, and the
cursor set back to it, so the next ticks read the new branch (a payment mined again is booked
again). Failures back off exponentially within bounds; the loop goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.anchoring.chain import ChainUnavailable
from backend.anchoring.store import WorkerLock
from backend.db import transaction
from backend.settings import LOCAL_CHAIN_ID
from backend.settlement import booking, store
from backend.settlement import tokens as registry
from backend.settlement.chainlogs import ChainReader, Header, PaymentLog, RangeTooLarge
from backend.settlement.config import ReconcilerConfig
from ledger.hexutil import to_hex

log = logging.getLogger("tally.reconciler")
LOCK_PREFIX = "tally-reconciler:"


class ReorgTooDeep(RuntimeError):
    """No stored block within `reorg_depth_max` is still canonical: an operator looks."""


class Reconciler:
    """One reconciler worker. `tick()` does one step (tests drive it directly); `run()` loops."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        engine: Engine,
        ledger_id: str,
        config: ReconcilerConfig,
        connect_chain: Callable[[], ChainReader],
        default_payee: str | None = None,
        local_addresses: Callable[[int], dict[str, str]] | None = None,
        fault: Callable[[str], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.ledger_id = ledger_id
        self.config = config
        self.default_payee = default_payee
        self._connect_chain = connect_chain
        self._local_addresses = local_addresses
        self._chain: ChainReader | None = None
        self._range = config.block_range_max
        self._start_block = config.start_block
        self._invoice_payees: set[str] = set()
        self._payees_since_s = 0
        # A test seam: called at named points ("before_commit") to simulate a crash there.
        self._fault = fault or (lambda _point: None)
        self.lock: WorkerLock | None = None
        self._engine = engine
        self.last_state = "starting"
        self.failures = 0
        self.booked_count = 0

    # --- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set: at once while behind, every `poll_s` when caught up; back off
        (doubling, bounded) while ticks fail."""
        log.info("reconciler started for ledger %s", self.ledger_id)
        try:
            while not stop.is_set():
                delay = self.step()
                if delay:
                    stop.wait(delay)
        finally:
            self.close()
            log.info("reconciler stopped")

    def step(self) -> float:
        """One tick; the pause before the next (0 while there is more to read)."""
        try:
            self.last_state = self.tick()
            self.failures = 0
            return 0.0 if self.last_state in ("scanned", "reorg", "narrowed") else self.config.poll_s
        except Exception as error:  # noqa: BLE001 (the loop must outlive any one failure)
            self.failures += 1
            self.last_state = f"error: {type(error).__name__}"
            delay = min(self.config.backoff_max_s, self.config.backoff_min_s * 2 ** min(self.failures - 1, 30))
            level = logging.WARNING if isinstance(error, (ChainUnavailable, store.CursorMoved)) else logging.ERROR
            log.log(level, "reconciler tick failed (%s: %s); retrying in %.1f s", type(error).__name__,
                    str(error)[:300], delay)  # fmt: skip
            if isinstance(error, ChainUnavailable):
                self._chain = None
            return delay

    def close(self) -> None:
        if self.lock is not None:
            try:
                self.lock.release()
            except Exception as error:  # noqa: BLE001
                log.debug("releasing the reconciler lock failed: %s", error)

    # --- one tick ------------------------------------------------------------------------------

    def tick(self) -> str:
        chain = self._get_chain()
        if self.lock is None:
            self.lock = WorkerLock(self._engine, f"{LOCK_PREFIX}{self.ledger_id}:{chain.chain_id}",
                                   ttl_s=self.config.lease_ttl_s)  # fmt: skip
        if not self.lock.ensure():
            return "standby"
        head = chain.head()
        safe = head - max(self.config.confirmations - 1, 0)
        if self._start_block is None:
            self._start_block = self._first_block(chain, head)
        with transaction(self.sessions) as session:
            cursor = store.read_cursor(session, chain.chain_id, start_block=self._start_block)
            number, known_hash = cursor.block_number, (bytes(cursor.block_hash) if cursor.block_hash else None)
        if number >= safe:
            if known_hash is not None and self._cursor_orphaned(chain, number, known_hash):
                self._repair(chain, number)
                return "reorg"
            return "idle"
        first, last = number + 1, min(safe, number + self._range)
        payees = self._payees()
        try:
            logs, headers = chain.scan(first, last, payees, payees_per_filter_max=self.config.payees_per_filter_max)
        except RangeTooLarge:
            return self._narrow(first, last)
        if len(logs) > self.config.logs_per_range_max and last > first:
            return self._narrow(first, last)
        if first not in headers or last not in headers:
            raise ChainUnavailable(f"the node has no header for block {first} or {last} yet")
        if known_hash is not None and headers[first].parent_hash != known_hash:
            log.warning("reorg: block %d's parent is not the block %d we read", first, number)
            self._repair(chain, number)
            return "reorg"
        headers.update(chain.headers({item.block_number for item in logs} - set(headers)))
        if any(headers.get(item.block_number) is None or headers[item.block_number].hash != item.block_hash
               for item in logs):  # fmt: skip
            log.info("blocks %d..%d changed while being read; reading them again", first, last)
            return "unsettled"
        self._book(chain.chain_id, logs, headers, expected=number, last=headers[last])
        self._range = min(self.config.block_range_max, self._range * 2)
        return "scanned"

    def _get_chain(self) -> ChainReader:
        if self._chain is None:
            chain = self._connect_chain()
            if chain.chain_id == LOCAL_CHAIN_ID and self._local_addresses is not None:
                with transaction(self.sessions) as session:
                    registry.ensure_local_tokens(session, chain.chain_id, self._local_addresses(chain.chain_id))
            self._chain = chain
        return self._chain

    @property
    def start_block(self) -> int:
        if self._start_block is None:
            raise RuntimeError("the start block is known after the first tick")
        return self._start_block

    def _first_block(self, chain: ChainReader, head: int) -> int:
        """Where a fresh cursor starts (and where a reorg below every stored block rescans from):
        the configured block, or the settlement contract's deploy block."""
        if self.config.start_block is not None:
            return self.config.start_block
        return chain.deployed_at(head)

    def _narrow(self, first: int, last: int) -> str:
        self._range = max(1, (last - first + 1) // 2)
        log.info("blocks %d..%d hold too many logs; reading %d blocks at a time", first, last, self._range)
        return "narrowed"

    def _payees(self) -> list[str]:
        with transaction(self.sessions) as session:
            payees = store.customer_payees(session, self.default_payee)
            found, newest = store.invoice_payees_since(session, self._payees_since_s)
        self._invoice_payees |= found
        self._payees_since_s = newest
        return sorted(payees | self._invoice_payees)

    def _cursor_orphaned(self, chain: ChainReader, number: int, known_hash: bytes) -> bool:
        header = chain.headers([number]).get(number)
        return header is None or header.hash != known_hash

    # --- booking -------------------------------------------------------------------------------

    def _book(self, chain_id: int, logs: list[PaymentLog], headers: dict[int, Header], *, expected: int,
              last: Header) -> None:  # fmt: skip
        """Book `logs` (ordered) in chunks of whole blocks, each chunk with its cursor move."""
        for chunk, end in _chunks(logs, headers, last, self.config.logs_per_transaction_max):
            with transaction(self.sessions) as session:
                cursor = store.read_cursor(session, chain_id, start_block=self.start_block, lock=True)
                if cursor.block_number != expected:
                    raise store.CursorMoved(f"cursor at {cursor.block_number}, expected {expected}")
                ctx = booking.Context(ledger_id=self.ledger_id, chain_id=chain_id,
                                      suggestions_max=self.config.suggestions_max)  # fmt: skip
                ctx.prefetch(session, chunk)
                for item in chunk:
                    if booking.record(session, ctx, item, headers[item.block_number]) is not None:
                        self.booked_count += 1
                blocks = {headers[item.block_number] for item in chunk} | {end}
                store.store_blocks(session, chain_id, sorted(blocks, key=lambda header: header.number))
                store.advance_cursor(session, chain_id, expected=expected, header=end)
                if end.number % 64 == 0 or chunk:
                    store.prune_blocks(session, chain_id, below=end.number - self.config.blocks_kept_max)
                self._fault("before_commit")
            expected = end.number

    # --- reorgs --------------------------------------------------------------------------------

    def _repair(self, chain: ChainReader, number: int) -> None:
        """Reverse everything above the fork point and set the cursor back to it."""
        with transaction(self.sessions) as session:
            blocks = store.recent_blocks(session, chain.chain_id, at_most=number, limit=self.config.reorg_depth_max)
            stored = [(block.number, bytes(block.hash)) for block in blocks]
        canonical = chain.headers(block_number for block_number, _ in stored)
        fork: tuple[int, bytes | None] | None = None
        for block_number, block_hash in stored:
            header = canonical.get(block_number)
            if header is not None and header.hash == block_hash:
                fork = (block_number, block_hash)
                break
        if fork is None:
            if len(stored) >= self.config.reorg_depth_max:
                raise ReorgTooDeep(f"none of the last {len(stored)} blocks read is on the chain any more")
            fork = (self.start_block - 1, None)
        with transaction(self.sessions) as session:
            cursor = store.read_cursor(session, chain.chain_id, start_block=self.start_block, lock=True)
            if cursor.block_number != number:
                raise store.CursorMoved(f"cursor at {cursor.block_number}, expected {number}")
            ctx = booking.Context(ledger_id=self.ledger_id, chain_id=chain.chain_id)
            orphaned = store.payments_above(session, chain.chain_id, fork[0])
            for row in orphaned:
                booking.orphan(session, ctx, row, f"chain reorg: block {row.block_number} "
                               f"({to_hex(bytes(row.block_hash))[:18]}...) left the chain")  # fmt: skip
            store.forget_blocks_above(session, chain.chain_id, fork[0])
            store.rewind_cursor(session, chain.chain_id, number=fork[0], block_hash=fork[1])
        log.warning("reorg on chain %d: back to block %d (from %d); %d payment(s) reversed", chain.chain_id,
                    fork[0], number, len(orphaned))  # fmt: skip


def _chunks(logs: list[PaymentLog], headers: dict[int, Header], last: Header,
            per_chunk_max: int) -> list[tuple[list[PaymentLog], Header]]:  # fmt: skip
    """Split ordered logs into chunks of whole blocks of at most `per_chunk_max` logs (a bigger
    block is one chunk); each chunk ends at its last block, the final one at `last`."""
    chunks: list[tuple[list[PaymentLog], Header]] = []
    current: list[PaymentLog] = []
    index = 0
    while index < len(logs):
        block = logs[index].block_number
        block_logs = []
        while index < len(logs) and logs[index].block_number == block:
            block_logs.append(logs[index])
            index += 1
        if current and len(current) + len(block_logs) > per_chunk_max:
            chunks.append((current, headers[current[-1].block_number]))
            current = []
        current.extend(block_logs)
    chunks.append((current, last))
    return chunks


def describe(reconciler: Reconciler) -> dict[str, Any]:
    return {"state": reconciler.last_state, "failures": reconciler.failures, "booked": reconciler.booked_count}
