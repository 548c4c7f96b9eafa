"""The store under test, on each engine: a SQLite file and a fresh PostgreSQL schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mesh.store import Store
from mesh.store.postgres import PostgresStore
from mesh.store.sqlite import SQLiteStore
from tests.pg import drop, fresh_schema_url

Factory = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgresql"])
async def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """Makes store objects over one location, so a test can close one and open another on the same data."""
    if request.param == "sqlite":
        yield lambda: SQLiteStore(tmp_path / "store.db")
        return
    url = await fresh_schema_url()
    yield lambda: PostgresStore(url)
    await drop(url)


@pytest.fixture
async def store(new_store: Factory) -> AsyncIterator[Store]:
    s = new_store()
    await s.open()
    yield s
    await s.close()


