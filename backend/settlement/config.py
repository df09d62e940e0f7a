"""Every bound of the reconciler in one place (STYLE.md: put a limit on everything).

`confirmations` comes from `backend.settings.Settings` (shared with the anchorer, and meaning the
same: blocks counting the one that holds the log, so 1 = as soon as it is mined), and so do the
operator's knobs (`TALLY_RECONCILE_*`); the other bounds have their defaults here. Tests pass tight
values directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.settings import Settings


@dataclass(frozen=True, kw_only=True)
class ReconcilerConfig:
    # Blocks, counting the one holding the log, before a payment is read (see module docstring).
    confirmations: int = 1
    # How often the worker looks at the chain when it has caught up.
    poll_s: float = 0.25
    # Blocks per eth_getLogs range; the range halves while a node refuses or returns too many logs.
    block_range_max: int = 2_000
    # Logs one scan step processes in one database transaction (whole blocks: a block with more
    # logs than this is still processed in one go). Each booking appends under the ledger head's
    # lock, held to the commit: this bounds how long API writers wait (about 1 s at 128).
    logs_per_transaction_max: int = 128
    # A node answering with more logs than this for one range gets a smaller range.
    logs_per_range_max: int = 10_000
    # Payee addresses per Transfer filter (topic lists are bounded by nodes).
    payees_per_filter_max: int = 500
    # Block headers per JSON-RPC batch.
    headers_per_batch_max: int = 500
    # A reorg deeper than this many stored blocks is not repaired automatically: the worker stops
    # advancing and says so (an operator looks).
    reorg_depth_max: int = 256
    # Stored blocks older than this many below the cursor are pruned (payments keep their own hash).
    blocks_kept_max: int = 1_024
    # The first block scanned on a fresh database; None: the block InvoiceSettlement was deployed
    # in (found by bisecting eth_getCode), so a long chain is not read from its genesis.
    start_block: int | None = None
    # Suggestions kept per suspense payment.
    suggestions_max: int = 5
    # Back-off while the RPC endpoint (or the database) fails: doubling from min to max.
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    # The lease a worker holds (SQLite; PostgreSQL uses an advisory lock).
    lease_ttl_s: float = 15.0

    def __post_init__(self) -> None:
        if self.confirmations < 0 or self.poll_s <= 0 or (self.start_block is not None and self.start_block < 0):
            raise ValueError("confirmations >= 0, poll_s > 0 and start_block >= 0 are required")
        if min(self.block_range_max, self.logs_per_transaction_max, self.logs_per_range_max) < 1:
            raise ValueError("block_range_max, logs_per_transaction_max and logs_per_range_max must be >= 1")
        if min(self.payees_per_filter_max, self.headers_per_batch_max, self.suggestions_max) < 1:
            raise ValueError("payees_per_filter_max, headers_per_batch_max and suggestions_max must be >= 1")
        if not 1 <= self.reorg_depth_max <= self.blocks_kept_max:
            raise ValueError("1 <= reorg_depth_max <= blocks_kept_max")
        if not 0 < self.backoff_min_s <= self.backoff_max_s:
            raise ValueError("0 < backoff_min_s <= backoff_max_s")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ReconcilerConfig:
        values: dict[str, Any] = {
            "confirmations": settings.confirmations,
            "poll_s": settings.reconcile_poll_s,
            "block_range_max": settings.reconcile_block_range_max,
            "start_block": settings.reconcile_start_block,
            "backoff_max_s": settings.reconcile_backoff_max_s,
        }
        values.update(overrides)
        return cls(**values)
