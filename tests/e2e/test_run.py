"""`tally run` serves /healthz with the real chain and contracts, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from backend.chain.anvil import free_port
from backend.settings import REPO_ROOT

STARTUP_TIMEOUT_S_MAX = 120


def _tally_run(data_dir: Path, api_port: int, anvil_port: int) -> subprocess.Popen[str]:
    environment = {
        key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "RPC_URL")
    }
    environment.update(
        TALLY_DATA_DIR=str(data_dir), TALLY_API_PORT=str(api_port), TALLY_ANVIL_PORT=str(anvil_port)
    )
    return subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "run"],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_healthy(url: str, process: subprocess.Popen[str]) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S_MAX
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"tally run exited early:\n{process.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return json.loads(reply.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError("tally run did not become healthy")


def _stop_with_ctrl_c(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    return output


def _anvil_pids(port: int) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"anvil.*--port {port}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_run_serves_health_keeps_data_and_stops_cleanly(tmp_path: Path) -> None:
    api_port, anvil_port = free_port(), free_port()
    process = _tally_run(tmp_path, api_port, anvil_port)
    health = _wait_healthy(f"http://127.0.0.1:{api_port}/healthz", process)
    assert health["status"] == "ok"
    assert health["database"]["backend"] == "sqlite"
    assert health["chain"]["chain_id"] == 31337
    contracts = health["chain"]["contracts"]
    assert set(contracts) >= {"LedgerAnchor", "InvoiceSettlement"}
    assert _anvil_pids(anvil_port)
    first_output = _stop_with_ctrl_c(process)
    assert process.returncode == 0, first_output
    assert "tally_sk_" in first_output  # the fresh admin key, printed on first start
    assert not _anvil_pids(anvil_port), "anvil outlived tally run"

    # Second start: same chain state (anvil --state), same contracts, no new admin key.
    process = _tally_run(tmp_path, api_port, anvil_port)
    health = _wait_healthy(f"http://127.0.0.1:{api_port}/healthz", process)
    assert health["chain"]["contracts"] == contracts
    second_output = _stop_with_ctrl_c(process)
    assert "tally_sk_" not in second_output
    assert not _anvil_pids(anvil_port)
