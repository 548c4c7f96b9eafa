"""The outbox worker: a sender that raises is a failed attempt with backoff, never a row stuck in its lease;
a row that used up its attempts is a dead letter."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from aiohttp import web

from mesh.core.config import MeshConfig
from mesh.delivery import outbox
from mesh.delivery.outbox import Delivery, OutboxWorker, Undeliverable, backoff, posting, running
from mesh.store.base import OutboxRecord
from mesh.store.sqlite import SQLiteStore
from mesh.wiring import Mesh
from tests.conftest import listening


async def test_a_sender_that_raises_counts_as_an_attempt_and_is_retried_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteStore(tmp_path / "o.db")
    await store.open()
    now = 1000.0
    mesh = Mesh(store, MeshConfig(), clock=lambda: now)
    async with store.transaction() as tx:
        await tx.enqueue("broken", {"n": 1}, not_before=now)

    async def broken(_row: OutboxRecord):  # type: ignore[no-untyped-def]
        raise KeyError("no such field")

    worker = OutboxWorker(store, mesh.clock, mesh.events, {"broken": posting(broken)})
    try:
        async with worker.connected():
            with caplog.at_level(logging.ERROR, logger="airlock"):
                await worker.run_once()
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "o.db") as conn:
        attempts, next_at, error = conn.execute("SELECT attempts, next_attempt_at, last_error FROM outbox").fetchone()
    assert attempts == 1 and next_at == now + backoff(1) and error == "failed: KeyError"
    assert "the delivery failed" in caplog.text


async def test_a_worker_stops_when_cancelled_just_as_it_is_woken(tmp_path: Path) -> None:
    """Every commit wakes the worker, so at shutdown the cancel often lands in the same turn as a wake; it
    must still stop (``asyncio.wait_for`` on Python 3.11 returned the wake and dropped the cancel, and the
    server never exited)."""
    store = SQLiteStore(tmp_path / "o.db")
    await store.open()
    mesh = Mesh(store, MeshConfig())
    worker = OutboxWorker(store, mesh.clock, mesh.events, {})
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


def _attempted(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT id FROM outbox WHERE attempts > 0").fetchall()


class _Hook:
    server: Any = None

    def __init__(self) -> None:
        self.bodies: list[Any] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.Response()


async def test_a_batch_of_deliveries_is_recorded_in_one_write(tmp_path: Path) -> None:
    """Every row of a claim is sent at once and every outcome recorded by one transaction (a write per
    delivered row cost the server as much as the send)."""
    store = SQLiteStore(tmp_path / "o.db")
    await store.open()
    now = 1000.0
    mesh = Mesh(store, MeshConfig(), clock=lambda: now)
    async with store.transaction() as tx:
        for n in range(5):
            await tx.enqueue("hook", {"n": n}, not_before=now)
        await tx.enqueue("gone", {}, not_before=now)
    async with listening(_Hook()) as hook:

        async def to_hook(row: OutboxRecord) -> Delivery:
            return Delivery(url=str(hook.server.make_url("/hook")), body=row.payload)

        async def gone(_row: OutboxRecord) -> Delivery:
            raise Undeliverable("its subject is gone")

        worker = OutboxWorker(store, mesh.clock, mesh.events, {"hook": posting(to_hook), "gone": posting(gone)})
        writes: list[bool] = []  # each write's durability
        real = store.transaction

        def counted(*, durable: bool = True) -> Any:
            writes.append(durable)
            return real(durable=durable)

        try:
            with patch.object(store, "transaction", counted):
                async with running(worker), asyncio.timeout(30):
                    while len(_attempted(tmp_path / "o.db")) < 6:
                        await asyncio.sleep(0.01)
        finally:
            await store.close()
    assert sorted(b["n"] for b in hook.bodies) == [0, 1, 2, 3, 4]
    assert writes == [False, False]  # the claim, then every outcome: bookkeeping, neither waits for a sync
    with sqlite3.connect(tmp_path / "o.db") as conn:
        done = conn.execute("SELECT kind, attempts, delivered_at IS NOT NULL, last_error FROM outbox").fetchall()
    assert sorted(done) == [("gone", 1, 0, "its subject is gone")] + [("hook", 1, 1, None)] * 5


async def test_a_backlog_larger_than_a_claim_is_sent_without_pausing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a full batch more rows may be due: the worker claims again at once instead of waiting for a
    wake or its poll (a burst of 30 000 holds took four minutes to notify, 50 rows per pause)."""
    monkeypatch.setattr(outbox, "POLL_S", 60.0)
    store = SQLiteStore(tmp_path / "o.db")
    await store.open()
    mesh = Mesh(store, MeshConfig(), clock=lambda: 1000.0)
    total = 3 * outbox.CLAIM + 7
    async with store.transaction() as tx:
        for n in range(total):
            await tx.enqueue("hook", {"n": n}, not_before=1000.0)
    async with listening(_Hook()) as hook:

        async def to_hook(row: OutboxRecord) -> Delivery:
            return Delivery(url=str(hook.server.make_url("/hook")), body=row.payload)

        try:
            async with running(OutboxWorker(store, mesh.clock, mesh.events, {"hook": posting(to_hook)})):
                async with asyncio.timeout(10):  # far below the 60 s poll
                    while len(_attempted(tmp_path / "o.db")) < total:
                        await asyncio.sleep(0.01)
        finally:
            await store.close()
    assert sorted(b["n"] for b in hook.bodies) == list(range(total))


async def test_a_receiver_that_keeps_failing_ends_a_dead_letter_that_can_be_retried(tmp_path: Path) -> None:
    """With the clock moved past each backoff, every attempt is made and recorded; after the last one the row
    is dead (never claimed again) until an admin retries it, and then it is sent."""
    store = SQLiteStore(tmp_path / "o.db")
    await store.open()
    clock = [1000.0]
    mesh = Mesh(store, MeshConfig(), clock=lambda: clock[0])
    async with store.transaction() as tx:
        await tx.enqueue("hook", {"tenant": "default", "n": 1}, not_before=clock[0])
    failing = {"on": True}

    class _Flaky:
        hits = 0

        async def handle(self, request: web.Request) -> web.Response:
            self.hits += 1
            return web.Response(status=500 if failing["on"] else 204)

    async with listening(_Flaky()) as hook:

        async def to_hook(row: OutboxRecord) -> Delivery:
            return Delivery(url=str(hook.server.make_url("/hook")), body=row.payload)

        worker = OutboxWorker(store, mesh.clock, mesh.events, {"hook": posting(to_hook)})
        try:
            async with worker.connected():  # no background loop: each claim is this test's
                for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
                    assert await worker.run_once() == 1
                    clock[0] += backoff(attempt)
                assert await worker.run_once() == 0  # dead: never due again by itself
                clock[0] += 10 * 365 * 86400
                assert await worker.run_once() == 0
                [dead] = await store.list_outbox("default", "dead")
                assert dead.attempts == outbox.MAX_ATTEMPTS and dead.last_error == "HTTP 500"
                assert hook.hits == outbox.MAX_ATTEMPTS
                failing["on"] = False
                assert await store.retry_outbox("default", dead.id, clock[0])
                assert await worker.run_once() == 1
                assert [e.id for e in await store.list_outbox("default", "delivered")] == [dead.id]
        finally:
            await store.close()
