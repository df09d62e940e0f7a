"""`tally run` anchors on its own; its receipt verifies with `tally verify` and `tally audit` passes the ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from backend.chain.anvil import free_port
from backend.settings import REPO_ROOT

STARTUP_TIMEOUT_S_MAX = 120
RECEIPT_TIMEOUT_S_MAX = 60
PAYEE = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"


def _environment(data_dir: Path, **extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "RPC_URL")}
    environment.update(TALLY_DATA_DIR=str(data_dir), **extra)
    return environment


def _request(method: str, url: str, key: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_tally_run_anchors_and_the_receipt_verifies_and_the_audit_passes(tmp_path: Path) -> None:
    api_port, anvil_port = free_port(), free_port()
    base, rpc_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{anvil_port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "run"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_environment(
            tmp_path, TALLY_API_PORT=str(api_port), TALLY_ANVIL_PORT=str(anvil_port), TALLY_ANCHOR_INTERVAL_S="0.5"
        ),
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S_MAX
        while not any("Press Ctrl-C" in line for line in output):
            assert process.poll() is None and time.monotonic() < deadline, "".join(output)
            time.sleep(0.1)
        key = next(line.split()[2] for line in output if "admin key" in line)
        while True:  # the banner is printed just before uvicorn listens
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "".join(output)
                time.sleep(0.1)
        status, customer = _request(
            "POST", f"{base}/v1/customers", key, {"name": "Acme", "currency": "usd", "payee_address": PAYEE}
        )
        assert status == 200, customer
        status, invoice = _request(
            "POST",
            f"{base}/v1/invoices",
            key,
            {
                "customer": customer["id"],
                "finalize": True,
                "lines": [{"description": "Work", "quantity": 1, "unit_amount_minor": 1000, "tax_bps": 0}],
            },
        )
        assert status == 200, invoice
        deadline = time.monotonic() + RECEIPT_TIMEOUT_S_MAX
        while (reply := _request("GET", f"{base}/v1/invoices/{invoice['id']}/receipt", key))[0] != 200:
            assert reply[0] == 409 and time.monotonic() < deadline, reply
            time.sleep(0.2)
        (tmp_path / "receipt.json").write_text(json.dumps(reply[1]))
        verified = subprocess.run(
            [sys.executable, "-m", "backend.cli", "verify", str(tmp_path / "receipt.json"), "--rpc-url", rpc_url],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        assert verified.returncode == 0 and "VALID" in verified.stdout, verified.stdout + verified.stderr
        audited = subprocess.run(
            [sys.executable, "-m", "backend.cli", "audit", "--json", "--rpc-url", rpc_url],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            env=_environment(tmp_path),
        )
        report = json.loads(audited.stdout)
        assert audited.returncode == 0 and report["ok"], audited.stdout + audited.stderr
        assert report["checked"]["entries"] >= 2 and report["checked"]["anchored_heads"] >= 1
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        reader.join(timeout=5)
    assert process.returncode == 0, "".join(output)
