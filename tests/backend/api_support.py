"""Helpers for the API tests: an app over a database, an admin key, a live uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.db import transaction
from backend.services.keys import create_key
from backend.settings import Settings

# No chain is needed by these tests; an unroutable RPC URL keeps web3 from connecting anywhere.
NO_CHAIN = "http://127.0.0.1:9"
PAYEE = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3"


def make_app(database_url: str, **settings: Any) -> FastAPI:
    return create_app(Settings(database_url=database_url, rpc_url=NO_CHAIN, ledger_id="test-ledger", **settings))


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class Api:
    """A TestClient plus an admin key, with helpers for the common setup steps."""

    app: FastAPI
    client: TestClient
    admin: str

    def post(self, path: str, body: Any = None, key: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.post(
            path, json=body, headers={**auth(key or self.admin), **kwargs.pop("headers", {})}, **kwargs
        )

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers=auth(key or self.admin), **kwargs)

    def delete(self, path: str, key: str | None = None) -> httpx.Response:
        return self.client.delete(path, headers=auth(key or self.admin))

    def key(self, role: str, customer: str | None = None) -> str:
        with transaction(self.app.state.tally.sessions) as session:
            return create_key(session, role=role, customer_id=customer)[1]

    def customer(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "Acme", "currency": "usd", "payee_address": PAYEE, **fields}
        reply = self.post("/v1/customers", body)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def invoice(self, customer: str, finalize: bool = False, **fields: Any) -> dict[str, Any]:
        body = {
            "customer": customer,
            "lines": [{"description": "Work", "quantity": 2, "unit_amount_minor": 5000, "tax_bps": 1000}],
            "finalize": finalize,
            **fields,
        }
        reply = self.post("/v1/invoices", body)
        assert reply.status_code == 200, reply.text
        return reply.json()


def api_for(database_url: str) -> Iterator[Api]:
    app = make_app(database_url)
    with transaction(app.state.tally.sessions) as session:
        admin = create_key(session, role="admin")[1]
    with TestClient(app) as client:
        yield Api(app, client, admin)
    app.state.tally.engine.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    admin: str


def live_server_for(database_url: str, **settings: Any) -> Iterator[LiveServer]:
    """A real uvicorn serving the API on a free loopback port, in a thread, stopped afterwards."""
    app = make_app(database_url, **settings)
    with transaction(app.state.tally.sessions) as session:
        admin = create_key(session, role="admin")[1]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, admin)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.tally.engine.dispose()
