"""API fixtures: an app over a fresh database (PostgreSQL, or both backends), and a live uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_support import Api, LiveServer, api_for, live_server_for


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
