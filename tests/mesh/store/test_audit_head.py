"""The audit trail's kept head: entries deleted from the trail's end are found (the chain alone still links),
and a head rewound without the key does not verify. On each engine."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import asyncpg

from mesh.audit import audit_key, verify_chain
from mesh.store import Store
from mesh.store.postgres import PostgresStore
from mesh.store.sqlite import SQLiteStore
from tests.mesh.store.conftest import Factory
from tests.mesh.store.test_sqlite_writer import task

KEY = audit_key(b"k" * 32)


async def write(store: Store, n: int) -> None:
    for i in range(n):
        async with store.transaction() as tx:
            await tx.audit(tenant="t", kind="k", actor="a", subject=str(i), detail={"i": i}, now=time.time())


async def run_sql(store: Store, sql: str) -> None:
    """Change the database behind the store's back, as someone holding the database (not the key) could."""
    if isinstance(store, SQLiteStore):

        def change() -> None:
            with sqlite3.connect(store.path, timeout=10) as conn:
                conn.execute(sql)
            conn.close()

        await asyncio.to_thread(change)
        return
    assert isinstance(store, PostgresStore)
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema or "public"})
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_an_untouched_trail_verifies_with_its_head(store: Store) -> None:
    store.audit_key = KEY
    assert (await verify_chain(store, KEY)).ok  # empty: no head yet, nothing missing
    await write(store, 6)
    head = await store.audit_head()
    assert head is not None and head.seq == 6
    report = await verify_chain(store, KEY)
    assert report.ok, report
    assert (report.entries, report.head_seq, report.last_seq, report.missing) == (6, 6, 6, 0)


async def test_deleting_the_last_entries_is_found(store: Store) -> None:
    store.audit_key = KEY
    await write(store, 8)
    await run_sql(store, "DELETE FROM audit WHERE seq > 5")
    report = await verify_chain(store, KEY)
    assert not report.ok and report.broken_at is None
    assert (report.entries, report.head_seq, report.last_seq, report.missing) == (5, 8, 5, 3)
    assert "3 entries missing from the tail" in (report.head_problem or "")
    # the next entry chains to the head, not to the shortened trail: the gap stays visible
    await write(store, 1)
    report = await verify_chain(store, KEY)
    assert report.broken_at == 9 and "prev_hash" in (report.reason or "")


async def test_deleting_every_entry_is_found(store: Store) -> None:
    store.audit_key = KEY
    await write(store, 3)
    await run_sql(store, "DELETE FROM audit")
    report = await verify_chain(store, KEY)
    assert not report.ok and report.missing == 3


async def test_a_head_rewound_without_the_key_does_not_verify(store: Store) -> None:
    store.audit_key = KEY
    await write(store, 4)
    entries = await store.audit_entries()
    await run_sql(store, "DELETE FROM audit WHERE seq = 4")
    await run_sql(store, f"UPDATE audit_head SET seq = 3, hash = '{entries[2].hash}'")
    report = await verify_chain(store, KEY)
    assert not report.ok and "signature" in (report.head_problem or "")
    # without the key only the head's position is checked, and the rewound head matches
    assert (await verify_chain(store)).ok
    # a head signed under another key does not verify either
    assert not (await verify_chain(store, audit_key(b"x" * 32))).ok


async def test_deleting_the_head_row_is_found(store: Store) -> None:
    store.audit_key = KEY
    await write(store, 2)
    await run_sql(store, "DELETE FROM audit_head")
    report = await verify_chain(store, KEY)
    assert not report.ok and "no head" in (report.head_problem or "")


async def test_the_head_survives_reopen(new_store: Factory) -> None:
    s = new_store()
    s.audit_key = KEY
    await s.open()
    await write(s, 3)
    await s.close()
    s = new_store()
    s.audit_key = KEY
    await s.open()
    try:
        await write(s, 2)
        report = await verify_chain(s, KEY)
        assert report.ok and report.head_seq == 5
    finally:
        await s.close()


# --- SQLite: the head kept in memory by the one writer, its row written once per group ----------------------


async def test_a_group_s_entries_chain_in_memory_a_failed_unit_takes_its_entry_back_and_a_restart_goes_on(
    tmp_path: Path,
) -> None:
    """Units sharing one commit chain to each other through the writer's in-memory head; one rolled back after
    its entry leaves no gap, the head row names the group's last entry, and a reopened store continues it."""
    path = tmp_path / "chain.db"
    store = SQLiteStore(path)
    store.audit_key = KEY
    await store.open()
    first_in = asyncio.Event()

    async def entry(i: int, *, fail: bool = False) -> None:
        async with store.transaction() as tx:
            await tx.audit(tenant="t", kind="k", actor="a", subject=str(i), detail={"i": i}, now=time.time())
            await tx.insert_task(task(f"t{i}"))  # runs the pending audit op now
            if i == 0:
                first_in.set()
                while store._waiting < 4:  # the others queue behind it: all five share one commit
                    await asyncio.sleep(0)
            if fail:
                raise RuntimeError("this unit fails after its entry")

    async def later(i: int, fail: bool = False) -> None:
        await first_in.wait()
        with contextlib.suppress(RuntimeError):
            await entry(i, fail=fail)

    await asyncio.wait_for(asyncio.gather(entry(0), later(1), later(2, True), later(3), later(4)), 10)
    report = await verify_chain(store, KEY)
    assert report.ok and report.entries == 4 and report.head_seq == 4, report
    await store.close()

    again = SQLiteStore(path)
    again.audit_key = KEY
    await again.open()
    try:
        await write(again, 2)
        report = await verify_chain(again, KEY)
        assert report.ok and report.entries == 6 and report.head_seq == 6, report
    finally:
        await again.close()


async def test_two_writers_on_one_file_each_read_the_head_the_other_left(tmp_path: Path) -> None:
    """Another process writing the file changes SQLite's data_version: the in-memory head is read again."""
    path = tmp_path / "shared.db"
    a, b = SQLiteStore(path), SQLiteStore(path)
    for s in (a, b):
        s.audit_key = KEY
        await s.open()
    try:
        for _ in range(3):
            await write(a, 2)
            await write(b, 1)
        report = await verify_chain(a, KEY)
        assert report.ok and report.entries == 9 and report.head_seq == 9, report
    finally:
        await a.close()
        await b.close()
