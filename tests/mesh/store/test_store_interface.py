"""The store's closed interface, on every engine: the reads callers outside the store used to write in SQL
(pending count, newest event, a task's push configs inside a unit), the replication hooks, and the row
converters generated from the record dataclasses."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mesh.store import Store
from mesh.store.base import (
    NOT_STORED,
    AgentRecord,
    AuditRecord,
    ChannelRecord,
    EventRecord,
    OutboxRecord,
    PushConfigRecord,
    RunGrant,
    TaskRecord,
)
from mesh.store.postgres import PostgresStore
from mesh.store.rows import from_row, push_config_from_row, task_from_row
from mesh.store.sqlite import SQLiteStore
from tests.mesh.store.test_store import approval, decide, task
from tests.pg import drop, fresh_schema_url


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(tmp_path / "store.db")
        await s.open()
        yield s
        await s.close()
        return
    url = await fresh_schema_url()
    s = PostgresStore(url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
        await drop(url)


def push_config(config_id: str, created_at: float, *, task_id: str = "t1", tenant: str = "default") -> PushConfigRecord:
    return PushConfigRecord(
        id=config_id,
        task_id=task_id,
        tenant=tenant,
        url=f"https://hooks.example/{config_id}",
        token=None,
        authentication=None,
        created_at=created_at,
    )


# --- count_pending -------------------------------------------------------------------------------------------


async def test_count_pending_counts_every_tenant_and_leaves_out_expired_and_decided(store: Store) -> None:
    assert await store.count_pending(1000.0) == 0
    held = [
        approval("ap1", "t1"),  # pending
        approval("ap2", "t2", expires_at=1500.0),  # pending until 1500
        approval("ap3", "t3"),  # decided below
        approval("ap4", "t4"),  # another tenant's, pending
        approval("ap5", "t5", expires_at=1200.0),  # another tenant's, expired and then ended by the sweeper
    ]
    held[3].tenant = held[4].tenant = "acme"
    async with store.transaction() as tx:
        for record in held:
            await tx.insert_approval(record)
    assert await store.count_pending(1000.0) == 5
    assert await decide(store, "ap3", 1100.0)
    assert await store.count_pending(1100.0) == 4
    assert await store.count_pending(1200.0) == 3  # ap5 is past its expiry (expires_at > now is pending)
    assert await store.count_pending(2000.0) == 2  # ap2 too: ap1 and acme's ap4 are left
    async with store.transaction() as tx:
        assert await tx.decide_approval(
            "ap5",
            status="expired",
            now=1300.0,
            resolved_by="sweeper",
            surface="sweeper",
            values=None,
            require_unexpired=False,
        )
    assert await store.count_pending(2000.0) == 2
    assert await store.count_pending(1000.0) == 3  # decided ones never count, whenever asked
    rows, total = await store.list_pending("default", session_id=None, now=2000.0, limit=10, offset=0)
    acme, acme_total = await store.list_pending("acme", session_id=None, now=2000.0, limit=10, offset=0)
    assert total + acme_total == await store.count_pending(2000.0)
    assert [r.id for r in rows + acme] == ["ap1", "ap4"]


# --- latest_event_seq ----------------------------------------------------------------------------------------


async def test_latest_event_seq_is_the_tenants_newest_and_zero_without_events(store: Store) -> None:
    assert await store.latest_event_seq("default") == 0
    async with store.transaction() as tx:
        await tx.log_event(tenant="default", kind="task.updated", subject="t1", data={}, now=1.0)
        await tx.log_event(tenant="default", kind="task.updated", subject="t2", data={}, now=2.0)
        await tx.log_event(tenant="acme", kind="task.updated", subject="x", data={}, now=3.0)
    default = await store.events_after("default", 0)
    acme = await store.events_after("acme", 0)
    assert await store.latest_event_seq("default") == default[-1].seq
    assert await store.latest_event_seq("acme") == acme[-1].seq
    assert default[-1].seq < acme[-1].seq  # the log's newest row is acme's, not the default tenant's
    assert await store.latest_event_seq("nobody") == 0
    # a stream started from it replays nothing older
    assert await store.events_after("default", await store.latest_event_seq("default")) == []


# --- Tx.push_config_ids --------------------------------------------------------------------------------------


async def test_push_config_ids_are_the_tenants_oldest_first_and_read_inside_the_unit(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_task(task("t1"))
        await tx.put_push_config(push_config("c3", 2.0))
        await tx.put_push_config(push_config("c2", 2.0))
        await tx.put_push_config(push_config("c1", 3.0))
        await tx.put_push_config(push_config("c0", 1.0))
        await tx.put_push_config(push_config("theirs", 0.5, tenant="acme"))
        await tx.put_push_config(push_config("elsewhere", 0.5, task_id="t2"))
        # uncommitted, so only the unit's own connection sees them
        assert await tx.push_config_ids("t1", "default", 10) == ["c0", "c2", "c3", "c1"]
        assert await tx.push_config_ids("t1", "default", 2) == ["c0", "c2"]
        assert await tx.push_config_ids("t1", "acme", 10) == ["theirs"]
        assert await tx.push_config_ids("t9", "default", 10) == []
    async with store.transaction() as tx:
        assert await tx.delete_push_config("t1", "c2")
        assert await tx.push_config_ids("t1", "default", 10) == ["c0", "c3", "c1"]


async def test_push_config_ids_take_no_second_connection_from_the_pool() -> None:
    """With a pool of one connection, a read through the pool while the unit holds it would wait forever."""
    url = await fresh_schema_url()
    s = PostgresStore(url, min_size=1, max_size=1)
    await s.open()
    try:
        async with s.transaction() as tx:
            await tx.put_push_config(push_config("c1", 1.0))
            assert await asyncio.wait_for(tx.push_config_ids("t1", "default", 10), 5) == ["c1"]
    finally:
        await s.close()
        await drop(url)


# --- replication hooks ---------------------------------------------------------------------------------------


async def test_a_sqlite_store_links_no_replicas(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "r.db")
    await s.open()
    try:
        heard: list[dict[str, Any]] = []
        assert await s.listen(heard.append) is False
        await s.notify({"kind": "x"})  # nobody to tell: nothing happens, nothing fails
        await asyncio.sleep(0.05)
        assert heard == []
    finally:
        await s.close()


async def test_postgres_stores_over_one_database_hear_each_others_notifications() -> None:
    url = await fresh_schema_url()
    a, b = PostgresStore(url), PostgresStore(url)
    await a.open()
    await b.open()
    try:
        heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        assert await b.listen(heard.put_nowait) is True
        await a.notify({"origin": "a", "kind": "task.updated", "data": {"n": 1}})
        assert await asyncio.wait_for(heard.get(), 5) == {"origin": "a", "kind": "task.updated", "data": {"n": 1}}
    finally:
        await a.close()
        await b.close()
        await drop(url)


# --- generated row converters --------------------------------------------------------------------------------

GENERATED = {
    TaskRecord: "tasks",
    ChannelRecord: "channels",
    PushConfigRecord: "push_configs",
    AgentRecord: "agents",
    EventRecord: "events",
    RunGrant: "run_grants",
    AuditRecord: "audit",
    OutboxRecord: "outbox",
}


def stored_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("column", True) is not False]


async def test_every_stored_field_is_a_column_and_every_column_a_field(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "c.db")
    await s.open()
    await s.close()
    with sqlite3.connect(tmp_path / "c.db") as conn:
        for cls, table in GENERATED.items():
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            if cls is OutboxRecord:  # a claim reads only what a delivery needs
                assert set(stored_fields(cls)) <= set(columns), table
                continue
            if cls is TaskRecord:  # the history of a task that ended at once is read by get_history, not with it
                columns.remove("history")
            assert sorted(stored_fields(cls)) == sorted(columns), table


def test_a_converter_is_built_once_per_class() -> None:
    assert from_row(TaskRecord) is from_row(TaskRecord) is task_from_row
    assert from_row(PushConfigRecord) is push_config_from_row
    assert from_row(ChannelRecord) is not from_row(AgentRecord)


def test_a_converter_decodes_json_columns_and_skips_fields_that_are_not_stored() -> None:
    row = {
        "id": "t1",
        "tenant": "default",
        "context_id": "ctx",
        "state": "working",
        "owner": "alice",
        "owner_roles": '["agent"]',
        "agent": None,
        "status": '{"state": "working"}',
        "artifacts": "[]",
        "metadata": '{"k": [1, 2]}',
        "created_at": 1.0,
        "updated_at": 2.0,
    }  # no no_push_configs, no pushes_queued: a row has no such columns
    record = task_from_row(row)
    assert record == TaskRecord(
        id="t1",
        tenant="default",
        context_id="ctx",
        state="working",
        owner="alice",
        owner_roles=["agent"],
        agent=None,
        status={"state": "working"},
        artifacts=[],
        metadata={"k": [1, 2]},
        created_at=1.0,
        updated_at=2.0,
    )
    assert record.no_push_configs is False and record.pushes_queued is False
    config = push_config_from_row(
        {"id": "c", "task_id": "t", "tenant": "d", "url": "u", "token": None, "authentication": None, "created_at": 1}
    )
    assert config.authentication is None and config.token is None  # a NULL JSON column stays None


def test_fields_after_one_that_is_not_stored_are_passed_by_name() -> None:
    @dataclasses.dataclass(slots=True)
    class Mixed:
        a: int
        flag: bool = dataclasses.field(default=False, metadata=NOT_STORED)
        b: dict[str, Any] = dataclasses.field(default_factory=dict, metadata={"json": True})
        c: str = ""

    assert from_row(Mixed)({"a": 1, "b": '{"x": 1}', "c": "z"}) == Mixed(a=1, flag=False, b={"x": 1}, c="z")


def test_a_field_with_no_column_and_no_default_cannot_be_converted() -> None:
    @dataclasses.dataclass
    class Broken:
        a: int
        b: int = dataclasses.field(metadata=NOT_STORED)

    with pytest.raises(TypeError, match="no column and no default"):
        from_row(Broken)


# --- list_pending after a keyset cursor ----------------------------------------------------------------------


async def test_list_pending_after_a_cursor_pages_in_created_then_id_order(store: Store) -> None:
    """Rows sharing a created_at are ordered by id, and ``after`` starts strictly past the (created_at, id)
    given: pages taken that way cover every row once, whatever was added behind the cursor."""
    held = [approval(f"ap{i}", f"t{i}") for i in range(5)]
    for record, created_at in zip(held, (1000.0, 1000.0, 1000.0, 1001.5, 1002.0), strict=True):
        record.created_at = record.updated_at = created_at
    held[0].id, held[1].id, held[2].id = "b", "a", "c"  # one created_at, ids out of insertion order
    async with store.transaction() as tx:
        for record in held:
            await tx.insert_approval(record)
    first, total = await store.list_pending("default", session_id=None, now=0.0, limit=2, offset=0)
    assert [r.id for r in first] == ["a", "b"] and total == 5
    second, total = await store.list_pending(
        "default", session_id=None, now=0.0, limit=2, offset=0, after=(first[-1].created_at, first[-1].id)
    )
    assert [r.id for r in second] == ["c", "ap3"] and total == 5  # the total is before paging
    # a hold made behind the cursor is not listed again, one made after it is
    early, late = approval("aa", "t8"), approval("zz", "t9")
    early.created_at, late.created_at = 1000.0, 1003.0
    async with store.transaction() as tx:
        await tx.insert_approval(early)
        await tx.insert_approval(late)
    last, _ = await store.list_pending(
        "default", session_id=None, now=0.0, limit=10, offset=0, after=(second[-1].created_at, second[-1].id)
    )
    assert [r.id for r in last] == ["ap4", "zz"]
    run, _ = await store.list_pending(
        "default", session_id=None, now=0.0, limit=10, offset=0, run_id="run-9", after=(1000.0, "b")
    )
    assert [r.id for r in run] == ["c", "ap3", "ap4", "zz"]
    assert (await store.list_pending("default", session_id=None, now=0.0, limit=10, offset=0, after=(9e9, "")))[0] == []
