"""PostgreSQL for tests: a fresh schema per test, skipped with a reason when no server answers
(but never skipped under ``CI=true``, where PostgreSQL must be there)."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest

PG_URL = os.environ.get("AIRLOCK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def _reachable() -> str | None:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(PG_URL), 5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def fresh_schema_url() -> str:
    """A URL naming a schema of its own (the store creates it; :func:`drop` removes it)."""
    problem = await _reachable()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_URL} is required under CI=true: {problem}")
        pytest.skip(f"PostgreSQL at {PG_URL} is not reachable ({problem}); set AIRLOCK_TEST_PG")
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}schema=airlock_test_{uuid.uuid4().hex[:12]}"


async def drop(url: str) -> None:
    from mesh.store.postgres import drop_schema

    await drop_schema(url)
