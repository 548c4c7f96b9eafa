"""The outbox worker: a builder that raises is a failed attempt with backoff, never a row stuck in its lease."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from mesh.outbox import OutboxWorker, backoff, running
from mesh.service import Mesh, MeshConfig
from mesh.store.base import OutboxRecord
from mesh.store.sqlite import SQLiteStore


async def test_a_builder_that_raises_counts_as_an_attempt_and_is_retried_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "o.db")
    await store.open()
    now = 1000.0
    mesh = Mesh(store, MeshConfig(), clock=lambda: now)
    async with store.transaction() as tx:
        await tx.enqueue("broken", {"n": 1}, not_before=now)

    async def broken(_mesh: Mesh, _row: OutboxRecord):  # type: ignore[no-untyped-def]
        raise KeyError("no such field")

    worker = OutboxWorker(mesh, {"broken": broken})
    try:
        async with running(worker):
            with caplog.at_level(logging.ERROR, logger="airlock"):
                await worker.run_once()
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "o.db") as conn:
        attempts, next_at, error = conn.execute("SELECT attempts, next_attempt_at, last_error FROM outbox").fetchone()
    assert attempts == 1 and next_at == now + backoff(1) and error == "build failed: KeyError"
    assert "building the delivery failed" in caplog.text
