"""Shared fixtures: a throw-away PostgreSQL database, a SQLite file, and a local anvil chain.

PostgreSQL tests skip with a one-line reason when no server answers, unless
TALLY_REQUIRE_POSTGRES=1 (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from backend.chain.anvil import Anvil, start_anvil
from backend.db import create_engine, migrate

POSTGRES_ADMIN_URL = os.environ.get(
    "TALLY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("TALLY_REQUIRE_POSTGRES") == "1"


def _postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, pool_size=1)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as error:  # noqa: BLE001 (any failure means: not available)
        return f"PostgreSQL not reachable at {make_url(POSTGRES_ADMIN_URL).render_as_string()}: {type(error).__name__}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The admin URL of a reachable PostgreSQL server (or skip/fail)."""
    reason = _postgres_available()
    if reason is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"TALLY_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    yield POSTGRES_ADMIN_URL


def create_postgres_database(admin_url: str) -> str:
    """Create an empty, uniquely named database and return its URL."""
    name = f"tally_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test, dropped afterwards."""
    url = create_postgres_database(postgres_server)
    migrate(url)
    yield url
    drop_postgres_database(postgres_server, url)


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    """A fresh, migrated SQLite file for one test."""
    url = f"sqlite:///{tmp_path}/tally.sqlite"
    migrate(url)
    return url


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The same test on PostgreSQL and on SQLite, where behaviour must match."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    """One real anvil chain for the test session, stopped by its PID at the end."""
    chain = start_anvil()
    yield chain
    chain.stop()
