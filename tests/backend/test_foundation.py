"""The foundation works with real parts: PostgreSQL round-trip, anvil lifecycle, /healthz."""

from __future__ import annotations

import os
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend import db
from backend.app import create_app
from backend.chain.anvil import rpc_call, start_anvil
from backend.db import create_engine
from backend.settings import Settings, get_settings


def test_postgres_round_trip(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE round_trip (id integer primary key, amount numeric(78,0))"))
        connection.execute(text("INSERT INTO round_trip VALUES (1, :amount)"), {"amount": 2**256 - 1})
    with engine.connect() as connection:
        assert connection.execute(text("SELECT amount FROM round_trip")).scalar_one() == 2**256 - 1
    engine.dispose()


def test_a_pooled_connection_is_pinged_only_after_idling_and_a_dead_one_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "connection_idle_ping_s_max", 0.05)
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    pings: list[int] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(1) or ping(connection))
    with engine.connect() as connection:  # new: no ping
        first = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    with engine.connect() as connection:  # used a moment ago: no ping
        connection.execute(text("SELECT 1"))
    assert pings == []
    admin = create_engine(postgres_url, pool_size=1)
    with admin.connect() as connection:  # the server drops the pooled connection while it idles
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    admin.dispose()
    time.sleep(0.1)
    with engine.connect() as connection:  # idle: pinged, found dead, replaced without an error
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != first
    assert pings == [1]
    engine.dispose()


def test_anvil_starts_answers_and_stops_by_pid() -> None:
    chain = start_anvil()
    assert rpc_call(chain.url, "eth_chainId") == hex(31337)
    pid = chain.process.pid
    chain.stop()
    assert chain.process.poll() is not None
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_healthz_reports_database_and_chain(anvil, sqlite_url: str) -> None:
    client = TestClient(create_app(Settings(rpc_url=anvil.url, database_url=sqlite_url)))
    reply = client.get("/healthz")
    assert reply.status_code == 200
    body = reply.json()
    assert body["database"] == {"backend": "sqlite", "reachable": True}
    assert body["chain"]["chain_id"] == 31337
    assert body["chain"]["latest_block"] >= 0


def test_healthz_is_503_when_chain_unreachable(sqlite_url: str) -> None:
    client = TestClient(create_app(Settings(rpc_url="http://127.0.0.1:9", database_url=sqlite_url)))
    reply = client.get("/healthz")
    assert reply.status_code == 503
    assert reply.json()["chain"]["reachable"] is False


def test_dev_keys_refused_outside_development() -> None:
    import pytest
    from pydantic import ValidationError

    from backend.settings import ANVIL_DEV_KEYS

    with pytest.raises(ValidationError, match="public anvil key"):
        Settings(
            environment="production",
            rpc_url="http://127.0.0.1:8545",
            database_url="sqlite:///x",
            anchorer_private_key=ANVIL_DEV_KEYS[0],
        )


def test_the_server_app_freezes_its_startup_heap(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from backend.app import create_server_app

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("RPC_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    app = create_server_app()
    try:
        assert gc.get_freeze_count() > 0 and app.state.tally.settings.effective_database_url == sqlite_url
    finally:
        gc.unfreeze()  # the rest of the suite keeps the collector's usual view
        get_settings.cache_clear()
        app.state.tally.engine.dispose()
