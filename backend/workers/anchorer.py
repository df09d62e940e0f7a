"""The anchorer (DESIGN.md flow 2): anchors the ledger head on LedgerAnchor, crash-safe.

One tick, in this order (every tick starts from what the chain says, never from memory):
1. Take or keep the one-anchorer lock (backend.anchoring.store.WorkerLock); without it, stand by.
2. Read `latest()` from the contract.
3. Settle every transaction still in flight: a receipt makes it mined (its siblings with the same
   nonce replaced); a mined one whose receipt vanished was reorged out (dropped, or back to sent
   if the node still has it); enough blocks on top make it confirmed; a `built` row (the worker
   died before or after sending it) is sent again only if the chain still sits where its proof
   starts; a transaction stuck longer than `replace_after_s` is replaced with bumped fees.
   While anything is in flight nothing new is built: one nonce stream, one anchor at a time.
4. With nothing in flight: confirmed anchors above the chain's head (a deep reorg) become
   dropped; a head the chain has but the database does not record is recorded from its event.
5. If the ledger is ahead of the chain by `entries_max` entries, or has been for `interval_s`,
   plan the next head (backend.anchoring.plan), dry-run it (gas estimate), store the signed
   transaction as `built`, commit, then send it.

Failures (RPC down, database down, a refusal) back off exponentially within bounds and the loop
goes on; the API never waits for the anchorer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.anchoring import store
from backend.anchoring.chain import AnchorChain, ChainUnavailable, Fees, NonceConsumed, connect_rpc
from backend.anchoring.config import AnchorerConfig
from backend.anchoring.plan import plan_anchor
from backend.db import transaction
from backend.models import AnchorTransaction
from backend.services import ledger as ledger_service
from ledger.errors import LogCorrupted
from ledger.hexutil import to_hex

log = logging.getLogger("tally.anchorer")
LOCK_PREFIX = "tally-anchorer:"


class LedgerBehindChain(RuntimeError):
    """The chain has a head larger than the ledger: the database lost entries (or the contract
    belongs to another ledger). Nothing is sent until an operator looks."""


class Anchorer:
    """One anchorer worker. `tick()` does one step (tests drive it directly); `run()` loops."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        engine: Engine,
        ledger_id: str,
        config: AnchorerConfig,
        connect_chain: Callable[[], AnchorChain],
        fault: Callable[[str], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.ledger_id = ledger_id
        self.config = config
        self.lock = store.WorkerLock(engine, LOCK_PREFIX + ledger_id, ttl_s=config.lease_ttl_s)
        self._connect_chain = connect_chain
        self._chain: AnchorChain | None = None
        # A test seam: called at named points ("after_persist", "after_send") to simulate a crash.
        self._fault = fault or (lambda _point: None)
        self._pending_since: float | None = None
        self.last_state = "starting"
        self.sent_count = 0
        self.failures = 0

    # --- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Tick until `stop` is set; back off (doubling, bounded) while ticks fail."""
        log.info("anchorer started for ledger %s", self.ledger_id)
        try:
            while not stop.is_set():
                stop.wait(self._step())
        finally:
            self.close()
            log.info("anchorer stopped")

    def _step(self) -> float:
        try:
            self.last_state = self.tick()
            self.failures = 0
            return self.config.poll_s
        except Exception as error:  # noqa: BLE001 (the loop must outlive any one failure)
            self.failures += 1
            self.last_state = f"error: {type(error).__name__}"
            delay = min(self.config.backoff_max_s, self.config.backoff_min_s * 2 ** min(self.failures - 1, 30))
            level = logging.WARNING if isinstance(error, ChainUnavailable) else logging.ERROR
            log.log(
                level,
                "anchorer tick failed (%s: %s); retrying in %.1f s",
                type(error).__name__,
                str(error)[:300],
                delay,
            )
            if isinstance(error, ChainUnavailable):
                self._chain = None  # reconnect (and re-read the chain id) once it answers
            return delay

    def close(self) -> None:
        try:
            self.lock.release()
        except Exception as error:  # noqa: BLE001
            log.debug("releasing the anchorer lock failed: %s", error)

    # --- one tick ------------------------------------------------------------------------------

    def tick(self) -> str:
        if not self.lock.ensure():
            return "standby"
        chain = self._get_chain()
        onchain_size, onchain_root = chain.latest()
        self._observe_head(onchain_size)
        if self._settle_in_flight(chain, onchain_size):
            return "in_flight"
        with transaction(self.sessions) as session:
            self._drop_reorged(session, chain, onchain_size)
            self._record_chain_head(session, chain, onchain_size, onchain_root)
            head = ledger_service.read_head(session, self.ledger_id)
        if head.size < onchain_size:
            raise LedgerBehindChain(f"the chain's head is at size {onchain_size}, the ledger has {head.size} entries")
        if head.size == onchain_size:
            if onchain_size and head.root != onchain_root:
                raise LogCorrupted(f"the ledger's root at {head.size} differs from the anchored root")
            self._pending_since = None
            return "idle"
        waited = time.monotonic() - (self._pending_since or time.monotonic())
        if head.size - onchain_size < self.config.entries_max and waited < self.config.interval_s:
            return "waiting"
        self._send_new(chain, onchain_size, onchain_root, head.size)
        return "sent"

    def _get_chain(self) -> AnchorChain:
        if self._chain is None:
            self._chain = self._connect_chain()
        return self._chain

    def _observe_head(self, anchored_size: int) -> None:
        """Start the interval clock when the ledger is first seen ahead of the anchored head."""
        if self._pending_since is not None:
            return
        with transaction(self.sessions) as session:
            size = ledger_service.read_head(session, self.ledger_id).size
        if size > anchored_size:
            self._pending_since = time.monotonic()

    # --- in-flight transactions ----------------------------------------------------------------

    def _settle_in_flight(self, chain: AnchorChain, onchain_size: int) -> bool:
        """Advance every open row; True while any is still in flight."""
        with transaction(self.sessions) as session:
            rows = store.open_transactions(session, self.ledger_id, chain.chain_id)
        if not rows:
            return False
        for nonce in sorted({row.nonce for row in rows if row.status in ("built", "sent")}):
            self._resolve_nonce(chain, nonce, onchain_size)
        with transaction(self.sessions) as session:
            mined = [
                row for row in store.open_transactions(session, self.ledger_id, chain.chain_id) if row.status == "mined"
            ]
        for row in mined:
            self._check_mined(chain, row)
        with transaction(self.sessions) as session:
            return bool(store.open_transactions(session, self.ledger_id, chain.chain_id))

    def _resolve_nonce(self, chain: AnchorChain, nonce: int, onchain_size: int) -> None:
        with transaction(self.sessions) as session:
            group = store.nonce_group(session, self.ledger_id, chain.chain_id, chain.sender, nonce)
        for row in group:
            receipt = chain.receipt(row.tx_hash)
            if receipt is not None:
                self._mark_mined(row, receipt, siblings=[other for other in group if other.id != row.id])
                return
        if chain.nonce("latest") > nonce:
            self._set_group(group, "dropped", "the nonce was used by a transaction that is not ours")
            return
        current = next((row for row in reversed(group) if row.status in ("built", "sent")), None)
        if current is None:
            return
        if onchain_size != current.previous_size:
            # The chain moved since this transaction was built: its proof no longer fits.
            self._set_group(group, "dropped", f"the chain's head moved to {onchain_size} before it was mined")
            return
        if current.status == "built" or not chain.transaction_known(current.tx_hash):
            self._send_row(chain, current, group)
        elif store.now_ms() - (current.sent_ms or current.created_ms) > self.config.replace_after_s * 1000:
            self._replace(chain, current)

    def _send_row(self, chain: AnchorChain, row: AnchorTransaction, group: list[AnchorTransaction]) -> None:
        if row.raw_transaction is None:
            return
        try:
            chain.send_raw(bytes(row.raw_transaction))
        except NonceConsumed as error:
            self._set_group(group, "dropped", str(error))
            return
        with transaction(self.sessions) as session:
            store.set_status(session, row.id, "sent")
        log.info("sent anchor %s (size %d, nonce %d) %s", row.id, row.tree_size, row.nonce, to_hex(bytes(row.tx_hash)))

    def _replace(self, chain: AnchorChain, stuck: AnchorTransaction) -> None:
        fees = chain.bumped(Fees(stuck.max_fee_per_gas, stuck.max_priority_fee_per_gas))
        if fees is None:
            log.warning("anchor %s is stuck and its fees are at the cap; waiting", stuck.id)
            return
        with transaction(self.sessions) as session:
            proof = (
                ledger_service.consistency_proof(session, self.ledger_id, stuck.previous_size, stuck.tree_size)
                if stuck.previous_size
                else []
            )
        updates = [(bytes.fromhex(key[2:]), int(version)) for key, version in stuck.updates]
        signed = chain.build_anchor(
            new_size=stuck.tree_size,
            new_root=bytes(stuck.root),
            proof=proof,
            updates=updates,
            nonce=stuck.nonce,
            fees=fees,
            gas_limit=stuck.gas_limit,
        )
        with transaction(self.sessions) as session:
            store.set_status(session, stuck.id, "replaced", error="stuck: replaced with higher fees")
            row = store.insert_built(
                session,
                **_row_fields(
                    chain,
                    self.ledger_id,
                    stuck.tree_size,
                    bytes(stuck.root),
                    stuck.previous_size,
                    stuck.updates,
                    signed,
                ),
                replaces_id=stuck.id,
            )
        try:
            chain.send_raw(signed.raw)
        except (ChainUnavailable, NonceConsumed):
            raise
        except Exception as error:  # noqa: BLE001 (the node refused the replacement: wait on the original)
            with transaction(self.sessions) as session:
                store.set_status(session, row.id, "dropped", error=f"replacement refused: {str(error)[:200]}")
                store.set_status(session, stuck.id, "sent", sent_ms=store.now_ms(), error=None)
            log.warning("replacement of %s refused: %s", stuck.id, error)
            return
        with transaction(self.sessions) as session:
            store.set_status(session, row.id, "sent")
        log.info("replaced stuck anchor %s with %s (max fee %d wei)", stuck.id, row.id, fees.max_fee_per_gas)

    def _mark_mined(self, row: AnchorTransaction, receipt: Any, siblings: list[AnchorTransaction]) -> None:
        status = "mined" if receipt.status == 1 else "reverted"
        with transaction(self.sessions) as session:
            store.set_status(
                session,
                row.id,
                status,
                block_number=receipt.block_number,
                block_hash=receipt.block_hash,
                gas_used=receipt.gas_used,
                effective_gas_price=receipt.effective_gas_price,
                mined_ms=store.now_ms(),
            )
            for sibling in siblings:
                store.set_status(session, sibling.id, "replaced", error=f"{row.id} was mined with this nonce")
        log.info("anchor %s %s in block %d", row.id, status, receipt.block_number)

    def _check_mined(self, chain: AnchorChain, row: AnchorTransaction) -> None:
        receipt = chain.receipt(row.tx_hash)
        with transaction(self.sessions) as session:
            if receipt is None:
                if chain.transaction_known(row.tx_hash):  # back in the pool after a reorg
                    store.set_status(
                        session,
                        row.id,
                        "sent",
                        block_number=None,
                        block_hash=None,
                        sent_ms=store.now_ms(),
                        error="reorged out; pending again",
                    )
                else:
                    store.set_status(session, row.id, "dropped", error="removed from the chain by a reorg")
                    log.warning("anchor %s (size %d) was dropped by a reorg", row.id, row.tree_size)
                return
            if receipt.status != 1:
                store.set_status(
                    session, row.id, "reverted", block_number=receipt.block_number, block_hash=receipt.block_hash
                )
                return
            if receipt.block_hash != (bytes(row.block_hash) if row.block_hash else None):
                store.set_status(
                    session,
                    row.id,
                    "mined",
                    block_number=receipt.block_number,
                    block_hash=receipt.block_hash,
                    mined_ms=store.now_ms(),
                )
            depth = chain.block_number() - receipt.block_number + 1
            if depth >= self.config.confirmations and chain.root_at(row.tree_size) == bytes(row.root):
                store.set_status(session, row.id, "confirmed")
                log.info("anchor %s confirmed: size %d root %s", row.id, row.tree_size, to_hex(bytes(row.root)))

    def _set_group(self, group: list[AnchorTransaction], status: str, reason: str) -> None:
        with transaction(self.sessions) as session:
            for row in group:
                store.set_status(session, row.id, status, error=reason[:500])
        log.warning("anchor transactions %s %s: %s", [row.id for row in group], status, reason)

    # --- with nothing in flight ----------------------------------------------------------------

    def _drop_reorged(self, session: Session, chain: AnchorChain, onchain_size: int) -> None:
        for row in store.confirmed_above(session, self.ledger_id, chain.chain_id, onchain_size):
            if chain.root_at(row.tree_size) != bytes(row.root):
                store.set_status(session, row.id, "dropped", error="a reorg removed it after confirmation")
                log.warning("confirmed anchor %s (size %d) is gone from the chain", row.id, row.tree_size)

    def _record_chain_head(self, session: Session, chain: AnchorChain, size: int, root: bytes) -> None:
        """Record a head the chain has and the database does not (it was anchored by a worker
        whose record was lost, e.g. a database restored from a backup)."""
        if size == 0 or store.recorded_head(session, self.ledger_id, chain.chain_id, size) is not None:
            return
        head = ledger_service.read_head(session, self.ledger_id)
        if size > head.size or ledger_service.root_at(session, self.ledger_id, size) != root:
            return  # tick() names the problem; never record a head that is not ours
        event = chain.find_anchored(size)
        if event is None or event.root != root:
            return
        existing = store.by_tx_hash(session, event.tx_hash)
        depth = chain.block_number() - event.block_number + 1
        status = "confirmed" if depth >= self.config.confirmations else "mined"
        moment = store.now_ms()
        mined = {"block_number": event.block_number, "block_hash": event.block_hash, "mined_ms": moment}
        if status == "confirmed":
            mined["confirmed_ms"] = moment
        if existing is not None:
            store.set_status(session, existing.id, status, **mined, error="found on-chain")
            return
        found = chain.transaction(event.tx_hash)
        store.insert_built(
            session,
            status=status,
            **mined,
            ledger_id=self.ledger_id,
            chain_id=chain.chain_id,
            contract=chain.contract_address,
            sender=str(found["from"]).lower(),
            tree_size=size,
            root=root,
            previous_size=event.previous_size,
            updates=[],
            nonce=int(found["nonce"]),
            gas_limit=int(found["gas"]),
            max_fee_per_gas=int(found.get("maxFeePerGas") or 0),
            max_priority_fee_per_gas=int(found.get("maxPriorityFeePerGas") or 0),
            tx_hash=event.tx_hash,
            raw_transaction=None,
            error="recorded from the chain's HeadAnchored event",
        )
        log.info("recorded the chain's head %d from its event (tx %s)", size, to_hex(event.tx_hash))

    def _send_new(self, chain: AnchorChain, onchain_size: int, onchain_root: bytes, head_size: int) -> None:
        with transaction(self.sessions) as session:
            plan = plan_anchor(
                session,
                ledger_id=self.ledger_id,
                previous_size=onchain_size,
                previous_root=onchain_root,
                head_size=head_size,
                updates_max=self.config.updates_max,
            )
        fees = chain.fees()
        nonce = chain.nonce("pending")
        signed = chain.build_anchor(
            new_size=plan.tree_size,
            new_root=plan.root,
            proof=plan.consistency_proof,
            updates=plan.updates,
            nonce=nonce,
            fees=fees,
        )
        updates = [[to_hex(key), version] for key, version in plan.updates]
        with transaction(self.sessions) as session:  # committed before the first send
            row = store.insert_built(
                session, **_row_fields(chain, self.ledger_id, plan.tree_size, plan.root, onchain_size, updates, signed)
            )
        self._fault("after_persist")
        chain.send_raw(signed.raw)
        self.sent_count += 1
        self._fault("after_send")
        with transaction(self.sessions) as session:
            store.set_status(session, row.id, "sent")
        if plan.tree_size == head_size:
            self._pending_since = None
        log.info(
            "sent anchor %s: size %d -> %d, %d terms updates, nonce %d, tx %s",
            row.id,
            onchain_size,
            plan.tree_size,
            len(plan.updates),
            nonce,
            to_hex(signed.tx_hash),
        )


def _row_fields(
    chain: AnchorChain, ledger_id: str, tree_size: int, root: bytes, previous_size: int, updates: list[Any], signed: Any
) -> dict[str, Any]:
    return {
        "ledger_id": ledger_id,
        "chain_id": chain.chain_id,
        "contract": chain.contract_address,
        "sender": chain.sender,
        "tree_size": tree_size,
        "root": root,
        "previous_size": previous_size,
        "updates": updates,
        "nonce": signed.nonce,
        "gas_limit": signed.gas_limit,
        "max_fee_per_gas": signed.fees.max_fee_per_gas,
        "max_priority_fee_per_gas": signed.fees.max_priority_fee_per_gas,
        "tx_hash": signed.tx_hash,
        "raw_transaction": signed.raw,
    }


def chain_connector(
    settings: Any, deployments: Any, config: AnchorerConfig, rpc_url: str | None = None
) -> Callable[[], AnchorChain]:
    """A factory the worker calls (again after a failure) to reach the chain: the RPC endpoint,
    the LedgerAnchor recorded for its chain id, and the anchorer's key."""
    from backend.chain.signer import anchorer_account

    url = rpc_url or settings.effective_rpc_url

    def connect() -> AnchorChain:
        w3 = connect_rpc(url, settings.rpc_timeout_s)
        from backend.anchoring.chain import rpc

        chain_id = int(rpc(lambda: w3.eth.chain_id))
        address = deployments.for_chain(chain_id).get("LedgerAnchor")
        if not address:
            raise ChainUnavailable(f"no LedgerAnchor recorded for chain {chain_id} in {deployments.path}")
        return AnchorChain(w3, address, anchorer_account(settings, chain_id), config)

    return connect


def build_anchorer(
    settings: Any, engine: Engine, sessions: sessionmaker[Session], deployments: Any, **overrides: Any
) -> Anchorer:
    config = AnchorerConfig.from_settings(settings, **overrides)
    return Anchorer(
        sessions=sessions,
        engine=engine,
        ledger_id=settings.ledger_id,
        config=config,
        connect_chain=chain_connector(settings, deployments, config),
    )
