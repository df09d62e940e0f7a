"""The tree passes ruff, and ledger/ passes mypy --strict (issue 2's bar, held by CI)."""

from __future__ import annotations

import subprocess
import sys

from backend.settings import REPO_ROOT


def _run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *arguments], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_passes() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes_on_ledger() -> None:
    result = _run("mypy", "ledger")
    assert result.returncode == 0, result.stdout + result.stderr
