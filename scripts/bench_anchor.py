"""Time from finalize to receipt available, at the default settings (issue 6, scenario `anchor`).

    python -m scripts.bench_anchor [--quick]      (or: make bench SCENARIOS=anchor)

The embedded default: a SQLite file, a local anvil (automine: a block per transaction), the
contracts deployed, the API app with the workers `tally run` starts (the anchorer at its defaults:
100 entries or 5 s, 1 confirmation, polling every 0.25 s). Invoices are finalized through the
API in two patterns:

- trickle: one invoice every 0.25 s (fewer than 100 entries per 5 s: anchors are time-triggered);
- burst: bulk finalize of 100 invoices at once, three times (count-triggered).

For each invoice, latency = the moment the first confirmed anchor covering its entry was recorded
(from then on GET /v1/invoices/{id}/receipt answers 200) minus the moment the finalize request
returned. Figures are p50 and p99 over the invoices. On a real chain add about
`confirmations x block time`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.app import create_app
from backend.chain.anvil import running_anvil
from backend.chain.client import Deployments, connect
from backend.chain.deploy import deploy_or_reuse
from backend.chain.signer import anchorer_account
from backend.db import migrate, transaction
from backend.models import AnchorTransaction
from backend.services.keys import create_key
from backend.settings import Settings
from backend.workers import start_workers

PAYEE = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
LINE = {"description": "Work", "quantity": 1, "unit_amount_minor": 10_000, "tax_bps": 1_000}
SETTLE_TIMEOUT_S_MAX = 60.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def _anchored_at_ms(state: Any, sequences: dict[str, int]) -> dict[str, int]:
    """Invoice id -> when the first confirmed anchor covering its entry was confirmed (ms)."""
    with transaction(state.sessions) as session:
        anchors = session.execute(
            select(AnchorTransaction.tree_size, AnchorTransaction.confirmed_ms)
            .where(AnchorTransaction.status == "confirmed")
            .order_by(AnchorTransaction.tree_size)
        ).all()
    found: dict[str, int] = {}
    for invoice_id, sequence in sequences.items():
        covering = [confirmed for size, confirmed in anchors if size > sequence]
        if covering:
            found[invoice_id] = min(covering)
    return found


def _wait_idle(client: TestClient, headers: dict[str, str]) -> None:
    """Until the ledger's head is anchored and confirmed."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S_MAX
    while time.monotonic() < deadline:
        size = client.get("/v1/ledger/head", headers=headers).json()["tree_size"]
        anchors = client.get("/v1/anchors?status=confirmed&limit=1", headers=headers).json()["data"]
        if anchors and anchors[0]["tree_size"] == size:
            return
        time.sleep(0.1)
    raise RuntimeError("the ledger's head was not anchored in time")


def _measure(
    client: TestClient, state: Any, headers: dict[str, str], customer: str, *, trickle: int, bursts: int
) -> dict[str, list[float]]:
    finalized_ms: dict[str, int] = {}
    sequences: dict[str, int] = {}
    pattern: dict[str, str] = {}
    _wait_idle(client, headers)  # the customer's own entry must not start the interval clock early
    for _ in range(trickle):
        reply = client.post(
            "/v1/invoices", json={"customer": customer, "lines": [LINE], "finalize": True}, headers=headers
        ).json()
        finalized_ms[reply["id"]], sequences[reply["id"]], pattern[reply["id"]] = (
            int(time.time() * 1000),
            reply["issued_entry"],
            "trickle",
        )
        time.sleep(0.25)
    _wait_idle(client, headers)  # the bursts must not carry the last trickle invoices along
    for _ in range(bursts):
        body = {"invoices": [{"customer": customer, "lines": [LINE]} for _ in range(100)]}
        reply = client.post("/v1/invoices/bulk", json=body, headers=headers).json()
        moment = int(time.time() * 1000)
        for invoice in reply["data"]:
            finalized_ms[invoice["id"]], sequences[invoice["id"]], pattern[invoice["id"]] = (
                moment,
                invoice["issued_entry"],
                "burst",
            )
        time.sleep(1.0)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S_MAX
    while len(anchored := _anchored_at_ms(state, sequences)) < len(sequences):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(sequences) - len(anchored)} invoices not anchored in {SETTLE_TIMEOUT_S_MAX} s")
        time.sleep(0.1)
    sample = next(iter(sequences))
    if client.get(f"/v1/invoices/{sample}/receipt", headers=headers).status_code != 200:
        raise RuntimeError("a confirmed anchor covers the invoice, but its receipt is not served")
    latencies: dict[str, list[float]] = {"trickle": [], "burst": []}
    for invoice_id, moment in finalized_ms.items():
        latencies[pattern[invoice_id]].append(max(0, anchored[invoice_id] - moment) / 1000)
    return latencies


def run(quick: bool = False) -> list[tuple[str, str]]:
    trickle, bursts = (30, 1) if quick else (120, 3)
    with tempfile.TemporaryDirectory(prefix="tally-bench-anchor-") as directory, running_anvil() as anvil:
        settings = Settings(
            database_url=f"sqlite:///{directory}/tally.sqlite",
            rpc_url=anvil.url,
            data_dir=Path(directory),
            ledger_id="bench-anchor",
        )
        migrate(settings.effective_database_url)
        w3 = connect(anvil.url)
        deploy_or_reuse(w3, anchorer_account(settings, w3.eth.chain_id), Deployments(settings.deployments_file))
        app = create_app(settings)
        state = app.state.tally
        with transaction(state.sessions) as session:
            headers = {"Authorization": f"Bearer {create_key(session, role='admin')[1]}"}
        stop = start_workers(state)
        try:
            with TestClient(app) as client:
                customer = client.post(
                    "/v1/customers", json={"name": "Bench", "currency": "usd", "payee_address": PAYEE}, headers=headers
                ).json()["id"]
                latencies = _measure(client, state, headers, customer, trickle=trickle, bursts=bursts)
        finally:
            stop()
            state.engine.dispose()
    figures = []
    for name, values in latencies.items():
        label = f"{name}: finalize -> receipt, p50 / p99 ({len(values)} invoices)"
        figures.append((label, f"{statistics.median(values):.2f} s / {_percentile(values, 0.99):.2f} s"))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    for label, figure in run(quick=parser.parse_args().quick):
        print(f"anchor     {label:<58} {figure}")


if __name__ == "__main__":
    main()
