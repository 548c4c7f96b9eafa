"""The store suite, run against every engine (SQLite on a real file, PostgreSQL in a schema of its own):
schema version, durability across reopen, first-writer-wins, rollback, history order, the audit chain,
and a restart of the whole service on the same home."""

from __future__ import annotations

import itertools
import sqlite3
import time
from pathlib import Path

import asyncpg
import pytest

from mesh.store import PENDING, ApprovalRecord, ChannelRecord, RunGroupRow, Store, TaskRecord
from mesh.store.base import audit_hash
from mesh.store.rows import GENESIS
from mesh.store.schema import SCHEMA_VERSION
from mesh.store.sqlite import SQLiteStore
from tests.conftest import GUIDE_TEXT, bearer, guide_message, start_airlock
from tests.mesh.store.conftest import Factory


def task(task_id: str = "t1", tenant: str = "default", now: float = 1000.0) -> TaskRecord:
    return TaskRecord(
        id=task_id,
        tenant=tenant,
        context_id="ctx-1",
        state="input-required",
        owner="alice",
        owner_roles=["agent"],
        agent="staging-db",
        status={"state": "input-required", "timestamp": "2026-01-01T00:00:00.000Z"},
        artifacts=[{"artifactId": "a1", "parts": [{"kind": "text", "text": "x"}]}],
        metadata={"airlock": {"approvalId": "ap1"}},
        created_at=now,
        updated_at=now,
    )


def approval(approval_id: str = "ap1", task_id: str = "t1", *, expires_at: float = 10**10) -> ApprovalRecord:
    return ApprovalRecord(
        id=approval_id,
        task_id=task_id,
        tenant="default",
        kind="approval",
        status=PENDING,
        policy="bulk_ops_approval",
        tool="bulk_delete_expired",
        action={"agent": "staging-db", "tool": "bulk_delete_expired", "arguments": {"items": ["a", "b"]}},
        form={"type": "Form", "props": {"title": "Approval Required", "fields": []}},
        requested_by="alice",
        requester_roles=["agent"],
        session_id="ctx-1",
        user_input=GUIDE_TEXT,
        channels=["slack-ops"],
        token_hash="abc123",
        fingerprint="fp-1",
        expires_at=expires_at,
        created_at=1000.0,
        updated_at=1000.0,
        second_pair=True,
        run_id="run-9",
    )


async def hold(store: Store, approval_id: str = "ap1", task_id: str = "t1", **kw: float) -> ApprovalRecord:
    record = approval(approval_id, task_id, **kw)
    async with store.transaction() as tx:
        await tx.insert_task(task(task_id))
        await tx.insert_approval(record)
    return record


async def decide(store: Store, approval_id: str, now: float, *, require_unexpired: bool = True) -> bool:
    async with store.transaction() as tx:
        return await tx.decide_approval(
            approval_id,
            status="approved",
            now=now,
            resolved_by="carol",
            surface="api",
            values={"decision": "approve"},
            require_unexpired=require_unexpired,
        )


# --- schema ------------------------------------------------------------------------------------------------


async def test_schema_version_recorded(new_store: Factory) -> None:
    for _ in range(2):  # opening again applies nothing twice
        s = new_store()
        await s.open()
        await s.close()
    s = new_store()
    await s.open()
    try:
        versions = [r[0] for r in await s._all("SELECT version FROM schema_version ORDER BY version")]  # type: ignore[attr-defined]
    finally:
        await s.close()
    assert versions == list(range(1, SCHEMA_VERSION + 1))


async def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "s.db")
    await s.open()
    await s.close()
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


async def test_newer_schema_is_refused(new_store: Factory) -> None:
    s = new_store()
    await s.open()
    async with s.transaction() as tx:
        await tx.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))  # type: ignore[attr-defined]
    await s.close()
    newer = new_store()
    with pytest.raises(RuntimeError, match="newer"):
        await newer.open()
    await newer.close()


async def test_ping(store: Store) -> None:
    assert await store.ping()


# --- durability --------------------------------------------------------------------------------------------


async def test_pending_approval_survives_reopen(new_store: Factory) -> None:
    s = new_store()
    await s.open()
    written = await hold(s)
    await s.close()

    again = new_store()
    await again.open()
    try:
        loaded = await again.get_approval("ap1")
        assert loaded == written
        assert loaded is not None and loaded.pending
        assert await again.latest_approval("t1") == written
        rows, total = await again.list_pending("default", session_id=None, now=2000.0, limit=10, offset=0)
        assert total == 1 and rows == [written]
        assert await again.get_task("default", "t1") == task()
        assert await again.get_task("other", "t1") is None
    finally:
        await again.close()


async def test_list_pending_filters(store: Store) -> None:
    await hold(store, "ap1", "t1")
    await hold(store, "ap2", "t2", expires_at=1500.0)
    rows, total = await store.list_pending("default", session_id=None, now=2000.0, limit=10, offset=0)
    assert [r.id for r in rows] == ["ap1"] and total == 1
    rows, total = await store.list_pending("default", session_id="other", now=0.0, limit=10, offset=0)
    assert rows == [] and total == 0
    rows, total = await store.list_pending("other", session_id=None, now=0.0, limit=10, offset=0)
    assert rows == [] and total == 0
    rows, total = await store.list_pending("default", session_id="ctx-1", now=0.0, limit=1, offset=1)
    assert total == 2 and len(rows) == 1
    assert [r.id for r in await store.due_expiries(2000.0)] == ["ap2"]
    # the queue's size alone, as a hold checks it: the unexpired pending ones of the tenant, nobody else's
    assert await store.pending_total("default", 0.0) == 2
    assert await store.pending_total("default", 2000.0) == 1
    assert await store.pending_total("other", 0.0) == 0
    async with store.transaction() as tx:
        assert await tx.decide_approval("ap1", status="approved", now=1.0, resolved_by="bob", surface="rest", values={})
    assert await store.pending_total("default", 0.0) == 1


# --- first writer wins -------------------------------------------------------------------------------------


async def test_decide_once_then_false(store: Store) -> None:
    await hold(store)
    assert await decide(store, "ap1", 2000.0) is True
    assert await decide(store, "ap1", 2001.0) is False
    assert await decide(store, "ap1", 2002.0, require_unexpired=False) is False
    loaded = await store.get_approval("ap1")
    assert loaded is not None
    assert loaded.status == "approved"
    assert loaded.resolved_by == "carol" and loaded.resolved_at == 2000.0 and loaded.surface == "api"
    assert loaded.values == {"decision": "approve"}


async def test_decide_unknown_approval_is_false(store: Store) -> None:
    assert await decide(store, "nope", 1.0) is False


async def test_expired_approval_cannot_be_decided(store: Store) -> None:
    await hold(store, expires_at=1500.0)
    assert await decide(store, "ap1", 1500.0) is False
    assert await decide(store, "ap1", 1600.0) is False
    assert (await store.get_approval("ap1")).status == PENDING  # type: ignore[union-attr]
    assert await decide(store, "ap1", 1499.0) is True


async def test_expired_approval_can_be_ended_without_the_time_check(store: Store) -> None:
    await hold(store, expires_at=1500.0)
    assert await decide(store, "ap1", 1600.0, require_unexpired=False) is True


# --- transactions ------------------------------------------------------------------------------------------


async def test_rollback_on_exception_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.insert_task(task())
            await tx.insert_approval(approval())
            await tx.append_history("t1", [{"kind": "message", "n": 1}])
            await tx.audit(tenant="default", kind="x", actor="a", subject="t1", detail={}, now=1.0)
            await tx.enqueue("notify", {"a": 1}, not_before=0.0)
            raise RuntimeError("boom")
    assert await store.get_task("default", "t1") is None
    assert await store.get_approval("ap1") is None
    assert await store.get_history("t1") == []
    assert await store.audit_entries() == []
    assert await store.claim_outbox(10**10) == []
    async with store.transaction() as tx:
        await tx.insert_task(task())
    assert await store.get_task("default", "t1") is not None


async def test_failed_statement_rolls_back_the_whole_unit(store: Store) -> None:
    await hold(store)
    with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        async with store.transaction() as tx:
            await tx.insert_task(task("t2"))
            await tx.insert_approval(approval("ap1", "t2"))
    assert await store.get_task("default", "t2") is None


async def test_update_task(store: Store) -> None:
    await hold(store)
    record = task()
    record.state = "completed"
    record.status = {"state": "completed", "timestamp": "2026-01-01T00:00:01.000Z"}
    record.artifacts = []
    record.metadata = {}
    record.agent = "guard"
    record.updated_at = 2000.0
    async with store.transaction() as tx:
        await tx.update_task(record)
    assert await store.get_task("default", "t1") == record


# --- history -----------------------------------------------------------------------------------------------


async def test_history_order_and_last(store: Store) -> None:
    messages = [{"kind": "message", "n": i} for i in range(7)]
    async with store.transaction() as tx:
        await tx.append_history("t1", messages[:3])
    async with store.transaction() as tx:
        await tx.append_history("t1", messages[3:5])
        await tx.append_history("t2", [{"other": True}])
    async with store.transaction() as tx:
        await tx.append_history("t1", messages[5:])
    assert await store.get_history("t1") == messages
    assert await store.get_history("t1", last=1) == messages[-1:]
    assert await store.get_history("t1", last=3) == messages[-3:]
    assert await store.get_history("t1", last=100) == messages
    assert await store.get_history("t1", last=0) == []
    assert await store.get_history("t2") == [{"other": True}]
    assert await store.get_history("none") == []


async def test_a_new_task_and_its_first_messages_are_one_write_that_later_turns_continue(store: Store) -> None:
    first = [{"kind": "message", "n": 1}, {"kind": "message", "n": 2}]
    async with store.transaction() as tx:
        await tx.insert_task(task("t1"), first)
        await tx.insert_task(task("t2"))
    async with store.transaction() as tx:
        await tx.append_history("t1", [{"kind": "message", "n": 3}])
    assert [m["n"] for m in await store.get_history("t1")] == [1, 2, 3]
    assert await store.get_history("t1", last=2) == [first[1], {"kind": "message", "n": 3}]
    assert await store.get_history("t2") == []
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):  # a task id is never reused, history included
        async with store.transaction() as tx:
            await tx.insert_task(task("t1"), [{"kind": "message", "n": 99}])
    assert [m["n"] for m in await store.get_history("t1")] == [1, 2, 3]


async def test_a_task_that_ended_in_its_first_turn_is_one_row_with_its_history(store: Store) -> None:
    first = [{"kind": "message", "n": 1}, {"kind": "message", "n": 2}]
    async with store.transaction() as tx:
        await tx.insert_task(task("t1"), first, final=True)
        await tx.insert_task(task("t2"), first)
    rows = await store._all("SELECT task_id, COUNT(*) FROM history GROUP BY task_id")  # type: ignore[attr-defined]
    assert [(r[0], r[1]) for r in rows] == [("t2", 2)]  # t1 wrote no row of its own there
    kept = await store._all("SELECT id, history FROM tasks WHERE history IS NOT NULL")  # type: ignore[attr-defined]
    assert [r[0] for r in kept] == ["t1"]
    for task_id in ("t1", "t2"):  # read the same, wherever they are kept
        assert await store.get_history(task_id) == first
        assert await store.get_history(task_id, last=1) == first[-1:]
        assert await store.get_history(task_id, last=5) == first
        assert await store.get_history(task_id, last=0) == []
    # a message a later write adds still comes after them (no turn does, but a history is never reordered)
    async with store.transaction() as tx:
        await tx.append_history("t1", [{"kind": "message", "n": 3}])
    assert [m["n"] for m in await store.get_history("t1")] == [1, 2, 3]
    assert [m["n"] for m in await store.get_history("t1", last=2)] == [2, 3]
    got = await store.get_task("default", "t1")
    assert got is not None and got == task("t1")  # the task reads as any other


# --- audit chain -------------------------------------------------------------------------------------------


async def test_audit_chain(store: Store) -> None:
    for i in range(5):
        async with store.transaction() as tx:
            await tx.audit(
                tenant="default", kind=f"k{i}", actor="alice", subject=f"s{i}", detail={"i": i}, now=1000.0 + i
            )
    entries = [e async for e in store.iter_audit(batch=2)]
    assert [e.kind for e in entries] == [f"k{i}" for i in range(5)]
    assert entries[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
        assert after.seq > before.seq
    for e in entries:
        assert e.hash == audit_hash(e.prev_hash, e.at, e.tenant, e.kind, e.actor, e.subject, e.detail)
    assert len({e.hash for e in entries}) == 5
    assert [e.seq for e in await store.audit_entries(after=entries[2].seq)] == [e.seq for e in entries[3:]]


async def test_audit_chain_survives_reopen(new_store: Factory) -> None:
    for round_ in range(2):
        s = new_store()
        await s.open()
        async with s.transaction() as tx:
            await tx.audit(tenant="t", kind="k", actor="a", subject=str(round_), detail={}, now=time.time())
        await s.close()
    s = new_store()
    await s.open()
    try:
        entries = await s.audit_entries()
    finally:
        await s.close()
    assert len(entries) == 2
    assert entries[1].prev_hash == entries[0].hash


# --- outbox ------------------------------------------------------------------------------------------------


async def test_outbox_claim_lease_and_finish(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.enqueue("notify", {"n": 1}, not_before=100.0)
        await tx.enqueue("notify", {"n": 2}, not_before=500.0)
    rows = await store.claim_outbox(200.0)
    assert [r.payload for r in rows] == [{"n": 1}]
    assert await store.claim_outbox(201.0) == []  # leased
    await store.finish_outbox(rows[0].id, ok=False, now=202.0, error="down", retry_at=300.0)
    again = await store.claim_outbox(300.0)
    assert [(r.payload, r.attempts) for r in again] == [({"n": 1}, 1)]
    await store.finish_outbox(again[0].id, ok=True, now=301.0)
    assert [r.payload for r in await store.claim_outbox(10**6)] == [{"n": 2}]


# --- policies and channels ---------------------------------------------------------------------------------


async def test_policy_put_and_delete(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.put_policy("default", "p", {"v": 1}, 1.0, create=True) is True
        assert await tx.put_policy("default", "p", {"v": 2}, 1.0, create=True) is False
        assert await tx.put_policy("default", "q", {"v": 1}, 1.0, create=False) is False
        assert await tx.put_policy("default", "p", {"v": 3}, 2.0, create=False) is True
    assert await store.get_policy("default", "p") == {"v": 3}
    assert await store.list_policies("default") == [{"v": 3}]
    assert await store.list_policies("other") == []
    async with store.transaction() as tx:
        assert await tx.delete_policy("default", "p") is True
        assert await tx.delete_policy("default", "p") is False
    assert await store.get_policy("default", "p") is None


# --- a restart of the whole service ------------------------------------------------------------------------


async def test_hold_survives_restart_and_resolves_there(tmp_path: Path) -> None:
    async with start_airlock(tmp_path) as first:
        await first.add_policy()
        held = await first.hold()
        assert await first.executions() == 0

    async with start_airlock(tmp_path) as second:
        resp = await second.gateway.post("/messages/pending", json={"tenant_id": "default"}, headers=bearer())
        listing = await resp.json()
        assert [m["message_id"] for m in listing["messages"]] == [held["id"]]
        assert listing["messages"][0]["user_input"] == GUIDE_TEXT
        got = await second.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": held["id"]}})
        assert got["result"]["status"]["state"] == "input-required"
        resp = await second.resolve(held["id"], {"decision": "approve"})
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["new_state"] == "completed"
        assert await second.executions() == 1
        again = await second.resolve(held["id"], {"decision": "approve"})
        assert again.status == 409

    async with start_airlock(tmp_path) as third:
        got = await third.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": held["id"]}})
        assert got["result"]["status"]["state"] == "completed"
        assert await third.executions() == 1
        follow = await third.rpc(guide_message("more", taskId=held["id"]))
        assert follow["error"]["code"] == -32004


# --- push configs, agents, task listing ----------------------------------------------------------------------


async def test_push_configs_replace_list_delete(store: Store) -> None:
    from mesh.store import PushConfigRecord

    await hold(store)
    first = PushConfigRecord(
        id="c1",
        task_id="t1",
        tenant="default",
        url="https://a.example/hook",
        token="tok",
        authentication={"schemes": ["Bearer"]},
        created_at=1.0,
    )
    async with store.transaction() as tx:
        await tx.put_push_config(first)
        await tx.put_push_config(
            PushConfigRecord(
                id="c2",
                task_id="t1",
                tenant="default",
                url="https://b.example/hook",
                token=None,
                authentication=None,
                created_at=2.0,
            )
        )
        await tx.put_push_config(
            PushConfigRecord(
                id="c1",
                task_id="t1",
                tenant="default",
                url="https://c.example/hook",
                token="tok2",
                authentication=None,
                created_at=3.0,
            )
        )
    configs = await store.list_push_configs("t1")
    assert sorted(c.id for c in configs) == ["c1", "c2"]
    assert next(c for c in configs if c.id == "c1").url == "https://c.example/hook"
    async with store.transaction() as tx:
        assert await tx.delete_push_config("t1", "c1")
        assert not await tx.delete_push_config("t1", "c1")
    assert [c.id for c in await store.list_push_configs("t1")] == ["c2"]


async def test_agents_put_list_delete(store: Store) -> None:
    from mesh.store import AgentRecord

    record = AgentRecord(name="billing", url="http://127.0.0.1:9/", card={"name": "Billing"}, created_at=1.0)
    async with store.transaction() as tx:
        assert await tx.put_agent(record)
        assert not await tx.put_agent(record)
    assert await store.list_agents() == [record]
    async with store.transaction() as tx:
        assert await tx.delete_agent("billing")
        assert not await tx.delete_agent("billing")
    assert await store.list_agents() == []


async def test_list_tasks_filters_and_orders_by_update(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(5):
            record = task(f"t{i}", now=1000.0 + i)
            record.context_id = "ctx-even" if i % 2 == 0 else "ctx-odd"
            record.state = "completed" if i < 2 else "input-required"
            await tx.insert_task(record)
        await tx.insert_task(task("other", tenant="tenant-b"))
    rows, total = await store.list_tasks("default", limit=2)
    assert total == 5 and [r.id for r in rows] == ["t4", "t3"]
    rows, total = await store.list_tasks("default", context_id="ctx-even")
    assert total == 3 and [r.id for r in rows] == ["t4", "t2", "t0"]
    rows, total = await store.list_tasks("default", state="completed", offset=1)
    assert total == 2 and [r.id for r in rows] == ["t0"]


async def test_outbox_claims_only_the_kinds_asked_for(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.enqueue("notify", {"n": 1}, not_before=0.0)
        await tx.enqueue("push", {"n": 2}, not_before=0.0)
    pushes = await store.claim_outbox(10.0, kinds=("push",))
    assert [r.payload for r in pushes] == [{"n": 2}]
    rest = await store.claim_outbox(10.0)
    assert [r.payload for r in rest] == [{"n": 1}]


# --- event log, run grants, run groups -------------------------------------------------------------------------


async def test_event_log_is_per_tenant_and_resumable(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(3):
            await tx.log_event(tenant="default", kind="task.updated", subject=f"t{i}", data={"i": i}, now=1.0 + i)
        await tx.log_event(tenant="tenant-b", kind="task.updated", subject="x", data={}, now=5.0)
    events = await store.events_after("default", 0)
    assert [e.subject for e in events] == ["t0", "t1", "t2"]
    later = await store.events_after("default", events[0].seq)
    assert [e.data for e in later] == [{"i": 1}, {"i": 2}]
    assert [e.subject for e in await store.events_after("tenant-b", 0)] == ["x"]


async def test_run_grants_open_extend_and_expire(store: Store) -> None:
    from mesh.store.base import RunGrant

    async with store.transaction() as tx:
        await tx.put_run_grant(RunGrant("default", "bot", "ci-bot", "run-1", "alice", expires_at=100.0, created_at=1.0))
    assert (await store.active_grant("default", "bot", "ci-bot", "run-1", 50.0)) is not None
    assert await store.active_grant("default", "bot", "ci-bot", "run-1", 100.0) is None
    assert await store.active_grant("default", "bot", "other-bot", "run-1", 50.0) is None
    assert await store.active_grant("default", "mallory", "ci-bot", "run-1", 50.0) is None  # another caller
    assert await store.active_grant("tenant-b", "bot", "ci-bot", "run-1", 50.0) is None
    async with store.transaction() as tx:
        await tx.put_run_grant(RunGrant("default", "bot", "ci-bot", "run-1", "bob", expires_at=300.0, created_at=2.0))
    grant = await store.active_grant("default", "bot", "ci-bot", "run-1", 200.0)
    assert grant is not None and grant.granted_by == "bob" and grant.caller == "bot"


async def test_run_groups_and_run_filter(store: Store) -> None:
    records = [approval(f"ap{i}", f"t{i}") for i in range(4)]
    records[3].run_id = "run-solo"
    async with store.transaction() as tx:
        for i, record in enumerate(records):
            record.created_at = 1000.0 + i
            await tx.insert_task(task(f"t{i}"))
            await tx.insert_approval(record)
    assert await store.run_groups("default", 2000.0) == [RunGroupRow("run-9", 3, ["ap0", "ap1", "ap2"])]
    assert await store.run_groups("default", 2000.0, ids_limit=2) == [RunGroupRow("run-9", 3, ["ap0", "ap1"])]
    assert await store.run_groups("default", 2000.0, run_id="other") == []
    assert await store.run_groups("default", 2000.0, limit=0) == []
    rows, total = await store.list_pending(
        "default", session_id=None, now=2000.0, limit=10, offset=0, run_id="run-solo"
    )
    assert total == 1 and rows[0].id == "ap3"


async def test_concurrent_units_commit_together_and_a_failing_one_alone_rolls_back(store: Store) -> None:
    import asyncio

    async def unit(i: int) -> None:
        async with store.transaction() as tx:
            await tx.insert_task(task(f"g{i}"))
            await asyncio.sleep(0)  # let the others queue behind this one
            if i == 7:
                raise RuntimeError("this unit fails")

    results = await asyncio.gather(*(unit(i) for i in range(20)), return_exceptions=True)
    assert [type(r).__name__ for r in results if r is not None] == ["RuntimeError"]
    # every unit that returned is committed: the reader connection sees it at once
    for i in range(20):
        found = await store.get_task("default", f"g{i}")
        assert (found is None) == (i == 7), i


async def test_get_tasks_reads_a_page_of_tasks_at_once_and_only_the_tenants(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(5):
            await tx.insert_task(task(f"p{i}"))
        await tx.insert_task(task("other", tenant="acme"))
    found = await store.get_tasks("default", ["p1", "p3", "missing", "other"])
    assert sorted(found) == ["p1", "p3"] and found["p3"].id == "p3"
    assert await store.get_tasks("default", []) == {}


async def test_concurrent_creates_of_one_name_get_one_winner_and_no_error(store: Store) -> None:
    """The second create runs while the first is uncommitted (on PostgreSQL both see no row yet)."""
    import asyncio

    async def create(i: int, hold_s: float) -> bool:
        async with store.transaction() as tx:
            won = await tx.put_channel(
                ChannelRecord(tenant="default", name="ops", type="webhook", config={"n": i}, created_at=1.0)
            )
            await asyncio.sleep(hold_s)
            return won

    first = asyncio.create_task(create(0, 0.3))
    await asyncio.sleep(0.05)
    won = await asyncio.gather(first, *(create(i, 0) for i in range(1, 4)))
    assert won == [True, False, False, False]
    assert (await store.get_channel("default", "ops")).config == {"n": 0}  # type: ignore[union-attr]


async def test_a_notification_reads_its_approval_and_channel_at_once(store: Store) -> None:
    hook = ChannelRecord(tenant="default", name="ops", type="webhook", config={"url": "http://x/h"}, created_at=5.0)
    async with store.transaction() as tx:
        await tx.insert_approval(approval("ap1"))
        await tx.put_channel(hook)
    assert await store.approval_and_channel("ap1", "default", "ops") == (await store.get_approval("ap1"), hook)
    assert await store.approval_and_channel("ap1", "default", "gone") == (await store.get_approval("ap1"), None)
    assert await store.approval_and_channel("ap1", "other-tenant", "ops") == (await store.get_approval("ap1"), None)
    assert await store.approval_and_channel("nope", "default", "ops") == (None, hook)
