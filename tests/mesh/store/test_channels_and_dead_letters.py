"""Channels with events, what a channel posted, and the outbox's dead letters — on both engines."""

from __future__ import annotations

import stat
from pathlib import Path

from mesh.store import ChannelRecord, OutboxAttempt, Store
from mesh.store.sqlite import SQLiteStore


async def test_a_channel_keeps_its_events_and_its_config_can_be_replaced(store: Store) -> None:
    channel = ChannelRecord("t1", "ops", "webhook", {"url": "http://x"}, 1.0, events=["approval.requested"])
    async with store.transaction() as tx:
        assert await tx.put_channel(channel)
        assert await tx.put_channel(ChannelRecord("t2", "all", "slack", {"channel": "C1"}, 2.0))
    got = await store.get_channel("t1", "ops")
    assert got is not None and got.events == ["approval.requested"] and got.takes("approval.requested")
    assert not got.takes("approval.expired")
    every = await store.get_channel("t2", "all")
    assert every is not None and every.events is None and every.takes("approval.expired")
    channel.config, channel.events = {"url": "http://y"}, None
    async with store.transaction() as tx:
        assert await tx.update_channel(channel)
        assert not await tx.update_channel(ChannelRecord("t1", "missing", "webhook", {}, 1.0))
    got = await store.get_channel("t1", "ops")
    assert got is not None and got.config == {"url": "http://y"} and got.events is None
    assert [(c.tenant, c.name) for c in await store.channels_of_type("slack")] == [("t2", "all")]


async def test_what_a_channel_posted_is_kept_per_approval_and_channel(store: Store) -> None:
    assert await store.get_channel_message("a1", "ops") is None
    async with store.transaction() as tx:
        await tx.put_channel_message("a1", "t1", "ops", {"ts": "1.0"}, 5.0)
        await tx.put_channel_message("a1", "t1", "other", {"ts": "2.0"}, 5.0)
    async with store.transaction() as tx:
        await tx.put_channel_message("a1", "t1", "ops", {"ts": "3.0", "final": True}, 6.0)
    assert await store.get_channel_message("a1", "ops") == {"ts": "3.0", "final": True}
    assert await store.get_channel_message("a1", "other") == {"ts": "2.0"}


async def test_dead_letters_are_listed_per_tenant_and_retried(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.enqueue("notify", {"tenant": "t1", "n": 1}, not_before=10.0)
        await tx.enqueue("notify", {"tenant": "t1", "n": 2}, not_before=10.0)
        await tx.enqueue("notify", {"tenant": "t2", "n": 3}, not_before=10.0)
    rows = await store.claim_outbox(10.0, limit=10)
    ids = {r.payload["n"]: r.id for r in rows}
    await store.finish_outbox_many(
        [
            OutboxAttempt(ids[1], ok=False, now=11.0, error="HTTP 500", retry_at=1e12, dead=True),
            OutboxAttempt(ids[2], ok=True, now=11.0),
            OutboxAttempt(ids[3], ok=False, now=11.0, error="HTTP 500", retry_at=1e12, dead=True),
        ]
    )
    [dead] = await store.list_outbox("t1", "dead")
    assert dead.id == ids[1] and dead.tenant == "t1" and dead.last_error == "HTTP 500" and dead.dead_at == 11.0
    assert [e.id for e in await store.list_outbox("t1", "delivered")] == [ids[2]]
    assert await store.list_outbox("t1", "pending") == []
    assert not await store.retry_outbox("t2", ids[1], 20.0)  # another tenant's row
    assert not await store.retry_outbox("t1", ids[2], 20.0)  # delivered already
    assert await store.retry_outbox("t1", ids[1], 20.0)
    [pending] = await store.list_outbox("t1", "pending")
    assert pending.id == ids[1] and pending.attempts == 0 and pending.dead_at is None
    [again] = await store.claim_outbox(20.0, limit=10)
    assert again.id == ids[1] and again.attempts == 0


async def test_a_new_sqlite_file_and_its_wal_are_readable_by_their_owner_alone(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "private.db")
    await store.open()
    try:
        async with store.transaction() as tx:
            await tx.enqueue("notify", {"tenant": "t1"}, not_before=1.0)
        for name in ("private.db", "private.db-wal", "private.db-shm"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    finally:
        await store.close()
