"""Every bound of the anchorer in one place (STYLE.md: put a limit on everything).

The knobs operators set come from `backend.settings.Settings` (environment variables
`TALLY_ANCHOR_*`, `TALLY_CONFIRMATIONS`); the rest have safe defaults here. Tests pass tight
values directly (`AnchorerConfig(poll_s=0.02, ...)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.settings import Settings

GWEI = 10**9
# LedgerAnchor.TERMS_UPDATES_MAX: more updates in one call revert.
CONTRACT_TERMS_UPDATES_MAX = 256


@dataclass(frozen=True, kw_only=True)
class AnchorerConfig:
    # When to anchor: this many new entries, or this long after the first unanchored entry.
    entries_max: int = 100
    interval_s: float = 5.0
    # Blocks (counting the one that holds the transaction) before an anchor is confirmed.
    confirmations: int = 1
    # How often the worker looks at the chain and the ledger.
    poll_s: float = 0.25
    # A sent transaction without a receipt this long is replaced (same nonce, higher fees).
    replace_after_s: float = 60.0
    # EIP-1559 fee bounds: the worker never offers more than these (wei per gas).
    max_fee_per_gas_max: int = 200 * GWEI
    priority_fee_max: int = 3 * GWEI
    priority_fee_min: int = 1  # some nodes suggest 0; a zero tip is never replaced upward
    # A replacement raises both fees by at least this factor (geth and anvil want >= 10%).
    replacement_bump_numerator: int = 1125
    replacement_bump_denominator: int = 1000
    # Gas: the estimate times 5/4, at most this much.
    gas_limit_max: int = 10_000_000
    # TermsUpdate entries per anchor call (the contract refuses more than 256).
    updates_max: int = CONTRACT_TERMS_UPDATES_MAX
    # Back-off while the RPC endpoint (or the database) fails: doubling from min to max.
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    # The lease a worker holds (SQLite; PostgreSQL uses an advisory lock).
    lease_ttl_s: float = 15.0
    # Blocks scanned per eth_getLogs call when looking up an anchored head's event.
    log_block_range_max: int = 10_000
    log_lookback_blocks_max: int = 1_000_000

    def __post_init__(self) -> None:
        if not 1 <= self.updates_max <= CONTRACT_TERMS_UPDATES_MAX:
            raise ValueError(f"updates_max must be in [1, {CONTRACT_TERMS_UPDATES_MAX}]")
        if self.entries_max < 1 or self.interval_s <= 0 or self.poll_s <= 0:
            raise ValueError("entries_max >= 1, interval_s > 0 and poll_s > 0 are required")
        if self.confirmations < 0 or self.priority_fee_min > self.priority_fee_max:
            raise ValueError("confirmations >= 0 and priority_fee_min <= priority_fee_max")
        if self.priority_fee_max > self.max_fee_per_gas_max:
            raise ValueError("priority_fee_max must not exceed max_fee_per_gas_max")
        if self.replacement_bump_numerator * 10 < self.replacement_bump_denominator * 11:
            raise ValueError("a replacement must raise fees by at least 10%")
        if not 0 < self.backoff_min_s <= self.backoff_max_s:
            raise ValueError("0 < backoff_min_s <= backoff_max_s")

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> AnchorerConfig:
        values: dict[str, Any] = {
            "entries_max": settings.anchor_entries_max,
            "interval_s": settings.anchor_interval_s,
            "confirmations": settings.confirmations,
            "poll_s": settings.anchor_poll_s,
            "replace_after_s": settings.anchor_replace_after_s,
            "max_fee_per_gas_max": settings.anchor_max_fee_gwei * GWEI,
            "priority_fee_max": settings.anchor_priority_fee_max_gwei * GWEI,
            "updates_max": settings.anchor_updates_max,
            "backoff_max_s": settings.anchor_backoff_max_s,
        }
        values.update(overrides)
        return cls(**values)
