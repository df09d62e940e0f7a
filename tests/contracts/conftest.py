"""Fixtures for the contract tests (filled in below)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Ape (and py-solc-x) find "solc 0.8.28" here: the solcjs stand-in, since no native solc
# can be downloaded on these machines (TOOLCHAIN.md).
os.environ.setdefault("SOLCX_BINARY_PATH", str(REPO_ROOT / "contracts" / ".solcx"))
