"""The SQLite engine: batched statements, group commit, cancellation, a foreign write lock, the pending count."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from mesh.store.base import TaskRecord
from mesh.store.sqlite import SQLiteStore


def task(task_id: str) -> TaskRecord:
    return TaskRecord(
        id=task_id,
        tenant="default",
        context_id="ctx",
        state="completed",
        owner="alice",
        owner_roles=["agent"],
        agent="guard",
        status={"state": "completed"},
        created_at=1.0,
        updated_at=1.0,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "w.db")
    await s.open()
    yield s
    await s.close()


def on_disk(path: Path, sql: str) -> list[tuple]:
    """What a separate connection (another process, or the next start) reads from the file."""
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def test_a_unit_whose_deferred_insert_fails_at_its_end_rolls_back_alone(store: SQLiteStore) -> None:
    async with store.transaction() as tx:
        await tx.insert_task(task("dup"))

    async def unit(task_id: str, dup: bool) -> None:
        async with store.transaction() as tx:
            await tx.append_history(task_id, [{"n": task_id}])
            await tx.audit(tenant="default", kind="k", actor="a", subject=task_id, detail={}, now=2.0)
            await tx.insert_task(task("dup" if dup else task_id))  # a duplicate key, found only at the end

    results = await asyncio.gather(*(unit(f"u{i}", i == 3) for i in range(8)), return_exceptions=True)
    assert [type(r).__name__ for r in results if r is not None] == ["IntegrityError"]
    ids = {row[0] for row in on_disk(store.path, "SELECT id FROM tasks")}
    assert ids == {"dup"} | {f"u{i}" for i in range(8) if i != 3}
    # the failed unit's history and audit entry went with it; the chain of the others is whole
    assert {row[0] for row in on_disk(store.path, "SELECT task_id FROM history")} == ids - {"dup"}
    chain = on_disk(store.path, "SELECT prev_hash, hash, subject FROM audit ORDER BY seq")
    assert "u3" not in {row[2] for row in chain} and len(chain) == 7
    assert all(chain[i][0] == chain[i - 1][1] for i in range(1, len(chain)))


async def test_cancelled_units_never_stall_the_others(store: SQLiteStore) -> None:
    async def unit(i: int) -> None:
        async with store.transaction() as tx:
            await tx.insert_task(task(f"c{i}"))
            await asyncio.sleep(0)
            await tx.fetchall("SELECT 1")  # type: ignore[attr-defined]

    tasks = [asyncio.create_task(unit(i)) for i in range(40)]
    for _ in range(3):
        await asyncio.sleep(0)
    for t in tasks[1::3]:
        t.cancel()
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    finished = {f"c{i}" for i, r in enumerate(done) if r is None}
    assert finished and len(finished) < 40
    # every unit that returned is on disk; one more unit still goes through
    stored = {row[0] for row in on_disk(store.path, "SELECT id FROM tasks")}
    assert finished <= stored
    async with store.transaction() as tx:
        await tx.insert_task(task("after"))
    assert await store.get_task("default", "after") is not None


async def test_a_unit_waits_for_another_process_holding_the_write_lock(store: SQLiteStore) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:

        async def write() -> None:
            async with store.transaction() as tx:
                await tx.insert_task(task("patient"))

        pending = asyncio.create_task(write())
        await asyncio.sleep(0.3)
        assert not pending.done()  # waiting on the writer's thread; the loop is free meanwhile
    finally:
        other.execute("COMMIT")
        other.close()
    await asyncio.wait_for(pending, 10)
    assert on_disk(store.path, "SELECT id FROM tasks") == [("patient",)]


async def test_an_answered_unit_is_on_disk(store: SQLiteStore) -> None:
    """Nothing returns before its group's commit: a second connection sees every unit that returned."""

    async def unit(i: int) -> None:
        async with store.transaction() as tx:
            await tx.insert_task(task(f"d{i}"))
        assert on_disk(store.path, f"SELECT id FROM tasks WHERE id = 'd{i}'") == [(f"d{i}",)]

    await asyncio.gather(*(unit(i) for i in range(30)))


async def test_the_pending_total_is_kept_by_the_file_and_filled_for_an_older_one(tmp_path: Path) -> None:
    from tests.mesh.store.test_store import approval

    path = tmp_path / "p.db"
    store = SQLiteStore(path)
    await store.open()
    async with store.transaction() as tx:
        for i in range(6):
            await tx.insert_task(task(f"t{i}"))
            await tx.insert_approval(approval(f"a{i}", f"t{i}", expires_at=500.0 if i == 5 else 10**10))
    assert (await store.list_pending("default", session_id=None, now=100.0, limit=2, offset=0))[1] == 6
    async with store.transaction() as tx:
        assert await tx.decide_approval("a0", status="approved", now=100.0, resolved_by="b", surface="api", values={})
    rows, total = await store.list_pending("default", session_id=None, now=600.0, limit=10, offset=0)
    assert total == 4 and [r.id for r in rows] == ["a1", "a2", "a3", "a4"]  # a5 expired, not yet swept
    await store.close()

    # a file written before the count existed: it is counted at the next open
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE pending_counts")
        for name in ("pending_counted_once", "pending_decided", "pending_reopened", "pending_deleted"):
            conn.execute(f"DROP TRIGGER {name}")
    store = SQLiteStore(path)
    await store.open()
    try:
        assert (await store.list_pending("default", session_id=None, now=600.0, limit=1, offset=0))[1] == 4
        assert on_disk(path, "SELECT tenant, pending FROM pending_counts") == [("default", 5)]
    finally:
        await store.close()


async def test_a_pending_page_reads_no_more_than_the_page(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's statements walk an index in order (no sort of the queue) and fetch tasks by primary key
    (not by scanning the tenant's tasks): their plans say so, whatever the queue's size."""
    from tests.mesh.store.test_store import approval

    async with store.transaction() as tx:
        for i in range(3):
            await tx.insert_task(task(f"t{i}"))
            await tx.insert_approval(approval(f"a{i}", f"t{i}"))
    statements: list[tuple[str, tuple]] = []
    read = store._all

    async def recording(sql: str, args: Sequence[Any] = ()) -> list[Any]:
        statements.append((sql, tuple(args)))
        return await read(sql, args)

    monkeypatch.setattr(store, "_all", recording)
    rows, total = await store.list_pending("default", session_id=None, now=100.0, limit=2, offset=0)
    found = await store.get_tasks("default", [r.task_id for r in rows] + [f"gone{i}" for i in range(48)])
    assert total == 3 and sorted(found) == ["t0", "t1"]  # a page of 50 ids, two of them stored
    with sqlite3.connect(store.path) as conn:
        plans = {
            sql: " | ".join(p[3] for p in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)) for sql, args in statements
        }
    assert not [p for p in plans.values() if "TEMP B-TREE" in p or p.startswith("SCAN approvals")], plans
    task_plan = next(p for sql, p in plans.items() if "FROM tasks" in sql)
    assert "INDEX sqlite_autoindex_tasks_1 (id=?)" in task_plan, task_plan


async def test_when_sqlite_rolls_back_the_whole_group_no_unit_in_it_is_answered_as_written(
    store: SQLiteStore,
) -> None:
    """A full disk makes SQLite roll back the transaction, not only the failing unit's savepoint: the units
    released into it before are gone too, and must fail rather than return."""
    async with store.transaction() as tx:
        await tx.insert_task(task("before"))
    assert store._writer is not None and store._writer.conn is not None
    pages = store._writer.conn.execute("PRAGMA page_count").fetchone()[0]
    store._writer.conn.execute(f"PRAGMA max_page_count = {pages + 8}")

    async def small(i: int) -> None:
        async with store.transaction() as tx:
            await tx.insert_task(task(f"small{i}"))
            await asyncio.sleep(0)  # the big unit queues behind and joins this group

    async def big() -> None:
        async with store.transaction() as tx:
            huge = task("huge")
            huge.status = {"blob": "x" * 2_000_000}
            await tx.insert_task(huge)

    results = await asyncio.gather(small(0), small(1), big(), return_exceptions=True)
    assert isinstance(results[2], sqlite3.OperationalError) and "full" in str(results[2])
    stored = {row[0] for row in on_disk(store.path, "SELECT id FROM tasks")}
    for i, result in enumerate(results[:2]):
        assert (result is None and f"small{i}" in stored) or isinstance(result, sqlite3.OperationalError), results
    store._writer.conn.execute("PRAGMA max_page_count = 1073741823")
    async with store.transaction() as tx:  # the next unit starts a transaction of its own
        await tx.insert_task(task("after"))
    assert "after" in {row[0] for row in on_disk(store.path, "SELECT id FROM tasks")}


async def test_closing_while_a_group_is_open_commits_it_and_frees_its_waiters(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    await store.open()
    inside, go = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with store.transaction() as tx:
            await tx.insert_task(task("k0"))
            await asyncio.sleep(0)  # the second unit queues, so this one's commit is left to it

    async def second() -> None:
        async with store.transaction() as tx:
            await tx.insert_task(task("k1"))
            inside.set()
            await go.wait()

    units = [asyncio.create_task(first()), asyncio.create_task(second())]
    await inside.wait()
    closing = asyncio.create_task(store.close())
    await asyncio.sleep(0.05)
    go.set()
    await asyncio.wait_for(closing, 10)
    results = await asyncio.wait_for(asyncio.gather(*units, return_exceptions=True), 10)
    assert results == [None, None]
    assert on_disk(tmp_path / "c.db", "SELECT id FROM tasks ORDER BY id") == [("k0",), ("k1",)]


async def test_a_file_with_the_two_statement_count_trigger_counts_each_hold_once(tmp_path: Path) -> None:
    from tests.mesh.store.test_store import approval

    path = tmp_path / "old.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:  # as an earlier Airlock left it
        conn.execute("DROP TRIGGER pending_counted_once")
        conn.execute(
            """CREATE TRIGGER pending_counted AFTER INSERT ON approvals WHEN NEW.status = 'pending'
            BEGIN
                INSERT OR IGNORE INTO pending_counts (tenant, pending) VALUES (NEW.tenant, 0);
                UPDATE pending_counts SET pending = pending + 1 WHERE tenant = NEW.tenant;
            END"""
        )
    store = SQLiteStore(path)
    await store.open()
    try:
        async with store.transaction() as tx:
            for i in range(3):
                await tx.insert_task(task(f"t{i}"))
                await tx.insert_approval(approval(f"a{i}", f"t{i}"))
        assert on_disk(path, "SELECT tenant, pending FROM pending_counts") == [("default", 3)]
        assert on_disk(path, "SELECT name FROM sqlite_master WHERE name LIKE 'pending_counted%'") == [
            ("pending_counted_once",)
        ]
    finally:
        await store.close()


async def test_the_writer_keeps_each_units_savepoint_journal_in_memory(store: SQLiteStore) -> None:
    """A unit's SAVEPOINT copies every page it changes to a sub-journal before changing it; in a temporary file
    that doubled the cost of the allow path's inserts, so the writer keeps it in memory (2: MEMORY)."""
    assert store._writer is not None and store._writer.conn is not None
    assert store._writer.conn.execute("PRAGMA temp_store").fetchone()[0] == 2
