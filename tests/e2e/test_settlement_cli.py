"""`tally demo` tells the whole story and ends clean; `tally pay` pays from a keystore wallet using the API, saved instructions or a receipt, and names a refusal."""  # noqa: E501

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "backend"))

from settlement_kit import World, make_world, serve

from backend.settings import REPO_ROOT

DEMO_TIMEOUT_S = 120


def _tally(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "RPC_URL")}
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout_s)  # fmt: skip


def test_tally_demo_runs_the_whole_story_and_the_audit_is_clean() -> None:
    done = _tally("demo", timeout_s=DEMO_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("Anchored: the receipt of the invoice", "reconciled", "credit note", "CLEAN"):
        assert step in done.stdout, step
    assert done.stdout.count("invoice paid") == 2


@pytest.fixture
def world(postgres_url: str, tmp_path: Path) -> Iterator[World]:
    with make_world(postgres_url, tmp_path) as made:
        yield made


def test_tally_pay_from_a_keystore_via_api_instructions_and_receipt(world: World, tmp_path: Path) -> None:
    payer = world.wallet()
    keystore = tmp_path / "payer.json"
    keystore.write_text(json.dumps(Account.encrypt(payer.key, "correct horse", kdf="pbkdf2", iterations=1_000)))
    customer = world.customer([payer.address])
    by_api, by_file, by_receipt = (world.invoice(customer, 1_000 * (index + 1)) for index in range(3))
    partner = world.api("POST", "/v1/api_keys", {"role": "partner", "customer": customer})["secret"]
    world.anchor()
    wallet = ["--keystore", str(keystore), "--password", "correct horse", "--rpc-url", world.anvil.url]

    with serve(world) as api_url:
        done = _tally("pay", by_api["id"], *wallet, "--api-url", api_url, "--api-key", partner)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "paid" in done.stdout and "approved" in done.stdout

    saved = tmp_path / "instructions.json"
    saved.write_text(json.dumps(world.instructions(by_file["id"])))
    assert _tally("pay", str(saved), *wallet).returncode == 0

    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(world.api("GET", f"/v1/invoices/{by_receipt['id']}/receipt")))
    settlement = world.addresses["InvoiceSettlement"]
    assert _tally("pay", str(receipt), *wallet, "--settlement", settlement).returncode == 0

    world.reconcile()
    assert [world.get_invoice(item["id"])["status"] for item in (by_api, by_file, by_receipt)] == ["paid"] * 3
    again = _tally("pay", str(saved), *wallet)
    assert again.returncode == 2 and "nothing is due" in again.stderr, again.stderr
    forced = _tally("pay", str(saved), *wallet, "--amount-token", "1")  # dry-run names the contract's refusal
    assert forced.returncode == 2 and "InvoiceSettlementAlreadyPaid" in forced.stderr, forced.stderr
