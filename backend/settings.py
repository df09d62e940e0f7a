"""Tally's settings: one pydantic-settings class, read from the environment (see README's table).

Unset variables give the embedded default: a SQLite file and a local anvil chain that `tally run`
starts itself. Outside development the well-known anvil keys and the default admin bootstrap
are refused.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_CHAIN_ID = 31337

# Anvil's default accounts (from its published test mnemonic). Public knowledge: refused on any
# chain but the local one.
ANVIL_DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TALLY_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    data_dir: Path = REPO_ROOT / ".tally"

    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "TALLY_DATABASE_URL"),
        description="SQLAlchemy URL; empty = SQLite file in data_dir.",
    )
    rpc_url: str = Field(
        default="",
        validation_alias=AliasChoices("RPC_URL", "TALLY_RPC_URL"),
        description="JSON-RPC endpoint; empty = a local anvil started by `tally run`.",
    )
    anvil_port: int = Field(default=8545, ge=1, le=65535)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)

    # The anchorer's key: a keystore file (+ password) or a raw key. On the local chain the first
    # anvil account is used when neither is set.
    anchorer_private_key: str = ""
    anchorer_keystore: Path | None = None
    anchorer_keystore_password: str = ""

    ledger_id: str = Field(default="tally-dev", min_length=1, max_length=64)
    # Default payee of settlement terms for customers without their own payee_address (0x hex).
    payee_address: str = Field(default="", pattern=r"^(0x[0-9a-fA-F]{40})?$")
    confirmations: int = Field(default=1, ge=0, le=1000)
    anchor_entries_max: int = Field(default=100, ge=1, le=100_000)
    anchor_interval_s: float = Field(default=5.0, gt=0, le=86_400)
    rpc_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # The anchorer's transaction policy (backend/anchoring/config.py holds the bounds it enforces).
    anchor_poll_s: float = Field(default=0.25, gt=0, le=60)
    anchor_replace_after_s: float = Field(default=60.0, gt=0, le=3600)
    anchor_max_fee_gwei: int = Field(default=200, ge=1, le=1_000_000)
    anchor_priority_fee_max_gwei: int = Field(default=3, ge=1, le=1_000_000)
    anchor_updates_max: int = Field(default=256, ge=1, le=256)
    anchor_backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    # The reconciler (backend/settlement/config.py holds its other bounds).
    reconcile_poll_s: float = Field(default=0.25, gt=0, le=60)
    reconcile_block_range_max: int = Field(default=2_000, ge=1, le=100_000)
    reconcile_start_block: int | None = Field(default=None, ge=0)
    reconcile_backoff_max_s: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        # psycopg 3 is the only PostgreSQL driver installed; accept the common spellings.
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_development(self) -> Settings:
        if self.environment != "development":
            if self.anchorer_private_key.lower() in ANVIL_DEV_KEYS:
                raise ValueError("TALLY_ANCHORER_PRIVATE_KEY is a public anvil key: refused outside development")
            if not self.rpc_url:
                raise ValueError("RPC_URL must be set outside development (no local anvil in production)")
            if not self.database_url:
                raise ValueError("DATABASE_URL must be set outside development")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tally.sqlite'}"

    @property
    def local_chain(self) -> bool:
        """True when Tally starts and owns the chain (no RPC_URL given)."""
        return not self.rpc_url

    @property
    def effective_rpc_url(self) -> str:
        return self.rpc_url or f"http://127.0.0.1:{self.anvil_port}"

    @property
    def deployments_file(self) -> Path:
        return self.data_dir / "deployments.json"

    @property
    def anvil_state_file(self) -> Path:
        return self.data_dir / "anvil-state.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
