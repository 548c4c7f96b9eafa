"""PostgreSQL: a unit that is not durable commits without waiting for the WAL flush; every other unit waits
(a group of units commits so only when none of them is durable: see test_pg_group)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mesh.store.postgres import PostgresStore
from tests.pg import drop, fresh_schema_url


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    url = await fresh_schema_url()
    s = PostgresStore(url)
    await s.open()
    yield s
    await s.close()
    await drop(url)


async def test_a_lease_is_taken_in_a_unit_that_skips_the_flush(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with store.transaction() as tx:
        await tx.enqueue("webhook", {"n": 1})
    seen: list[bool] = []
    real = store.transaction

    def spy(*, durable: bool = True):  # type: ignore[no-untyped-def]
        seen.append(durable)
        return real(durable=durable)

    monkeypatch.setattr(store, "transaction", spy)
    [row] = await store.claim_outbox(now=10.0)
    assert row.kind == "webhook" and seen == [False]
