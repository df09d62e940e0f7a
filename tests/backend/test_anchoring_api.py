"""With `tally run`'s workers in the app, invoices are accepted during an RPC outage and all anchored after."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from anchoring_kit import LINE, PAYEE, Setup, make_setup, rpc_proxy
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.chain.anvil import Anvil
from backend.db import transaction
from backend.services.keys import create_key
from backend.settings import Settings
from backend.workers import start_workers

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class FastSettings(Settings):
    """The anchorer reads these optional knobs when Settings has them (AnchorerConfig.from_settings);
    tight values keep the outage test to a few seconds."""

    anchor_poll_s: float = 0.05
    anchor_backoff_max_s: float = 0.5


@pytest.fixture
def setup(postgres_url: str, anvil: Anvil, tmp_path) -> Iterator[Setup]:
    made = make_setup(postgres_url, anvil.url, tmp_path)
    yield made
    made.engine.dispose()


def test_invoices_are_accepted_during_an_rpc_outage_and_anchored_after(setup: Setup, anvil: Anvil) -> None:
    """The outage lasts about 3 s (the issue says 30 s; the back-off bound is a parameter here)."""
    with rpc_proxy(anvil.url) as proxy:
        settings = FastSettings(**{**setup.settings.model_dump(), "rpc_url": proxy.url, "anchor_interval_s": 0.2})
        app = create_app(settings, engine=setup.engine)
        with transaction(setup.sessions) as session:
            headers = {"Authorization": f"Bearer {create_key(session, role='admin')[1]}"}
        stop = start_workers(app.state.tally)
        try:
            with TestClient(app) as client:
                customer = client.post(
                    "/v1/customers", json={"name": "A", "currency": "usd", "payee_address": PAYEE}, headers=headers
                ).json()["id"]

                def invoice() -> str:
                    reply = client.post(
                        "/v1/invoices", json={"customer": customer, "lines": [LINE], "finalize": True}, headers=headers
                    )
                    assert reply.status_code == 200, reply.text
                    return str(reply.json()["id"])

                invoices = [invoice()]
                proxy.down()
                for _ in range(6):
                    invoices.append(invoice())
                    time.sleep(0.5)
                pending = client.get(f"/v1/invoices/{invoices[-1]}/receipt", headers=headers)
                assert pending.status_code == 409 and pending.json()["error"]["code"] == "not_anchored"
                proxy.up()
                deadline = time.monotonic() + 20
                for invoice_id in invoices:
                    while (
                        reply := client.get(f"/v1/invoices/{invoice_id}/receipt", headers=headers)
                    ).status_code != 200:
                        assert reply.status_code == 409 and time.monotonic() < deadline, reply.text
                        time.sleep(0.1)
        finally:
            stop()
    assert all(row.status == "confirmed" for row in setup.rows())
