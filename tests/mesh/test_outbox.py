"""The outbox worker: a builder that raises is a failed attempt with backoff, never a row stuck in its lease."""

from __future__ import annotations

import asyncio
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


async def test_a_worker_stops_when_cancelled_just_as_it_is_woken(tmp_path: Path) -> None:
    """Every commit wakes the worker, so at shutdown the cancel often lands in the same turn as a wake; it
    must still stop (``asyncio.wait_for`` on Python 3.11 returned the wake and dropped the cancel, and the
    server never exited)."""
    store = SQLiteStore(tmp_path / "o.db")
    await store.open()
    worker = OutboxWorker(Mesh(store, MeshConfig()), {})
    task = asyncio.create_task(worker.run())
    try:
        while not worker.wake._waiters:  # type: ignore[attr-defined]  # until it waits for a wake
            await asyncio.sleep(0.01)
        worker.wake.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        assert task in done and task.cancelled()
    finally:
        task.cancel()
        await store.close()
