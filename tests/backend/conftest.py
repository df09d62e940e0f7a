"""API fixtures: an app over a fresh database (PostgreSQL, or both backends), and a live uvicorn server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from api_support import Api, LiveServer, api_for, live_server_for
from sqlalchemy import text
from sqlalchemy.engine import make_url

from backend.db import create_engine, migrate


@pytest.fixture
def api(postgres_url: str) -> Iterator[Api]:
    """The API over a fresh PostgreSQL database."""
    yield from api_for(postgres_url)


@pytest.fixture
def any_api(database_url: str) -> Iterator[Api]:
    """The API over PostgreSQL, then over SQLite (behaviour that must match on both)."""
    yield from api_for(database_url)


@pytest.fixture
def live_server(postgres_url: str) -> Iterator[LiveServer]:
    """A real uvicorn serving the API over PostgreSQL on a free loopback port, in a thread."""
    yield from live_server_for(postgres_url)


def _create_database(admin_url: str, template: str | None = None) -> str:
    name = f"tally_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin_url: str, url: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _postgres_template(postgres_server: str) -> Iterator[str]:
    """A migrated database used as the template of every test database (cloning beats migrating)."""
    url = _create_database(postgres_server)
    migrate(url)
    yield make_url(url).database or ""
    _drop_database(postgres_server, url)


@pytest.fixture
def postgres_url(postgres_server: str, _postgres_template: str) -> Iterator[str]:
    """Overrides tests/conftest.py's: the same fresh, migrated database per test, cloned from the
    migrated template instead of migrated again."""
    url = _create_database(postgres_server, _postgres_template)
    yield url
    _drop_database(postgres_server, url)
