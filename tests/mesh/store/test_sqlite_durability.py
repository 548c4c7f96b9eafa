"""What a SQLite commit waits for: a durable unit is answered only once the WAL holding it is synced;
outbox bookkeeping (a lease, a delivery's outcome) is written without a sync of its own, survives a killed
process all the same, and reaches the disk with the next durable commit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mesh.agents.base import AgentRegistry
from mesh.audit import audit_key, verify_chain
from mesh.auth import Principal
from mesh.core.config import MeshConfig
from mesh.store.base import OutboxAttempt
from mesh.store.sqlite import SQLiteStore
from mesh.wire.models import MessageSendParams, new_id
from mesh.wiring import Mesh
from tests.mesh.approvals.test_input_requests import FormAgent
from tests.mesh.store.test_sqlite_writer import on_disk, task

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "d.db")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def syncs(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each ``fdatasync`` the store makes, as ``"wal"`` when it is of the store's WAL file. SQLite itself never
    syncs at a commit (``synchronous=NORMAL``), so these are every sync a commit waits for."""
    assert store._writer is not None and store._writer.here().execute("PRAGMA synchronous").fetchone()[0] == 1
    made: list[str] = []
    real = os.fdatasync
    wal = os.stat(f"{store.path}-wal").st_ino

    def recorded(fd: int) -> None:
        real(fd)
        made.append("wal" if os.fstat(fd).st_ino == wal else f"fd {fd}")

    monkeypatch.setattr(os, "fdatasync", recorded)
    return made


async def test_a_durable_unit_is_answered_after_the_wal_holding_it_is_synced(
    store: SQLiteStore, syncs: list[str]
) -> None:
    async with store.transaction() as tx:
        await tx.insert_task(task("t1"))
    assert syncs == ["wal"]
    assert on_disk(store.path, "SELECT id FROM tasks") == [("t1",)]


async def test_the_next_group_is_written_while_the_last_one_syncs_and_each_waits_for_its_own_sync(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer does not sit idle through an fsync: a second group commits while the first one's sync is
    still under way, and neither is answered before the sync that carries its commit is done."""
    gate = threading.Event()
    started = threading.Event()
    real = os.fdatasync
    made: list[str] = []

    def slow(fd: int) -> None:
        started.set()
        gate.wait(10)
        real(fd)
        made.append("sync")

    monkeypatch.setattr(os, "fdatasync", slow)
    answered: list[str] = []

    async def unit(name: str) -> None:
        async with store.transaction() as tx:
            await tx.insert_task(task(name))
        answered.append(name)

    first = asyncio.create_task(unit("first"))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)  # the first group's sync is blocked
    second = asyncio.create_task(unit("second"))
    for _ in range(200):  # the second group commits behind the blocked sync
        if on_disk(store.path, "SELECT id FROM tasks WHERE id = 'second'"):
            break
        await asyncio.sleep(0.01)
    assert on_disk(store.path, "SELECT id FROM tasks ORDER BY id") == [("first",), ("second",)]
    assert answered == [] and made == []  # committed, but nothing answered before its sync
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert answered == ["first", "second"] and made == ["sync", "sync"]


async def test_a_failed_sync_fails_the_units_of_its_group(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    with pytest.raises(OSError):
        async with store.transaction() as tx:
            await tx.insert_task(task("lost"))


async def test_a_unit_of_bookkeeping_alone_is_committed_without_a_sync(store: SQLiteStore, syncs: list[str]) -> None:
    async with store.transaction(durable=False) as tx:
        await tx.enqueue("webhook", {"n": 1})
    assert syncs == []
    assert on_disk(store.path, "SELECT kind FROM outbox") == [("webhook",)]  # committed all the same


async def test_bookkeeping_in_a_group_with_a_durable_unit_is_synced_with_it(
    store: SQLiteStore, syncs: list[str]
) -> None:
    lease_open = asyncio.Event()

    async def lease() -> None:
        async with store.transaction(durable=False) as tx:
            await tx.insert_task(task("lease"))
            lease_open.set()
            while store._waiting == 0:  # until the hold queues behind this unit: then they share a commit
                await asyncio.sleep(0)
        syncs.append("answered lease")

    async def hold() -> None:
        await lease_open.wait()
        async with store.transaction() as tx:
            await tx.insert_task(task("hold"))
        syncs.append("answered hold")

    await asyncio.wait_for(asyncio.gather(lease(), hold()), 10)
    # one commit for both, durable because of the hold: the bookkeeping too is answered only after the sync
    assert syncs[0] == "wal" and sorted(syncs[1:]) == ["answered hold", "answered lease"]
    assert on_disk(store.path, "SELECT id FROM tasks ORDER BY id") == [("hold",), ("lease",)]


async def test_an_outbox_lease_and_a_delivery_s_outcome_cost_no_sync(store: SQLiteStore, syncs: list[str]) -> None:
    async with store.transaction() as tx:
        await tx.enqueue("webhook", {"n": 1})
    syncs.clear()
    [row] = await store.claim_outbox(now=10.0)
    await store.finish_outbox_many([OutboxAttempt(row.id, ok=True, now=11.0)])
    assert syncs == []
    assert on_disk(store.path, "SELECT delivered_at, attempts FROM outbox") == [(11.0, 1)]


def test_bookkeeping_written_without_a_sync_survives_a_killed_process(tmp_path: Path) -> None:
    """Unsynced WAL frames are in the operating system's hands once the commit returns: kill -9 loses none."""
    path = tmp_path / "k.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        from mesh.store.sqlite import SQLiteStore

        async def main():
            store = SQLiteStore({str(path)!r})
            await store.open()
            async with store.transaction(durable=False) as tx:
                await tx.enqueue("webhook", {{"n": 1}})
            print("committed", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and proc.stdout == "committed\n", proc.stderr
    assert on_disk(path, "SELECT kind FROM outbox") == [("webhook",)]


def test_an_answered_durable_unit_and_its_audit_entry_survive_a_killed_process(tmp_path: Path) -> None:
    """Answered means synced: with the sync beside the writer and the audit head in memory, kill -9 right
    after the answer loses neither the row nor the chain's head."""
    path = tmp_path / "answered.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from mesh.store.sqlite import SQLiteStore
        from tests.mesh.store.test_sqlite_writer import task

        async def main():
            store = SQLiteStore({str(path)!r})
            await store.open()
            for i in range(3):
                async with store.transaction() as tx:
                    await tx.insert_task(task(f"t{{i}}"))
                    await tx.audit(tenant="default", kind="k", actor="a", subject=f"t{{i}}", detail={{}}, now=1.0)
            print("answered", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and proc.stdout == "answered\n", proc.stderr
    assert on_disk(path, "SELECT id FROM tasks ORDER BY id") == [("t0",), ("t1",), ("t2",)]
    assert on_disk(path, "SELECT seq FROM audit_head") == [(3,)]


async def send_to(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
    return await mesh.tasks.send_message(principal, MessageSendParams.model_validate(params))


def send(tool: str) -> dict[str, Any]:
    return {
        "message": {
            "kind": "message",
            "role": "user",
            "messageId": new_id(),
            "parts": [{"kind": "data", "data": {"tool": tool, "arguments": {}}}],
        }
    }


@pytest.mark.parametrize(("sync_turns", "allow_syncs"), [(True, ["wal"]), (False, [])])
async def test_an_allowed_turn_is_synced_unless_turns_are_unsynced_and_a_hold_always_is(
    store: SQLiteStore, syncs: list[str], sync_turns: bool, allow_syncs: list[str]
) -> None:
    mesh = Mesh(store, MeshConfig(sync_turns=sync_turns))
    await mesh.policy_admin.create_policy(
        "default",
        "admin",
        {
            "name": "hold",
            "scope_type": "tool",
            "enforcement": "require_approval",
            "evaluator": {"plugin": "tool_match", "config": {"tools": ["risky"]}},
        },
    )
    agent = Principal("bot", "default", frozenset({"agent"}))
    syncs.clear()
    allowed = await send_to(mesh, agent, send("safe"))
    assert allowed["status"]["state"] == "completed" and syncs == allow_syncs
    assert on_disk(store.path, f"SELECT state FROM tasks WHERE id = '{allowed['id']}'") == [("completed",)]
    syncs.clear()
    held = await send_to(mesh, agent, send("risky"))
    assert held["status"]["state"] == "input-required" and syncs == ["wal"]


async def test_a_turn_that_leaves_a_person_an_agent_s_form_is_synced_even_with_turns_unsynced(
    store: SQLiteStore, syncs: list[str]
) -> None:
    agents = AgentRegistry()
    agents.add(FormAgent(), default=True)
    mesh = Mesh(store, MeshConfig(sync_turns=False), agents=agents)
    body = {"message": {"kind": "message", "role": "user", "parts": [{"kind": "text", "text": "deploy"}]}}
    asked = await send_to(mesh, Principal("bot", "default", frozenset({"agent"})), body)
    assert asked["status"]["state"] == "input-required" and syncs == ["wal"]
    assert on_disk(store.path, "SELECT kind, status FROM approvals") == [("input", "pending")]


def test_allowed_calls_answered_together_survive_a_killed_process_with_their_history_and_chain(
    tmp_path: Path,
) -> None:
    """Kill -9 right after 40 allowed calls were answered, sent together so they share group commits: every
    task is there with its whole history (kept in its own row), and the audit chain verifies with its
    signed head, after a restart that goes on extending it."""
    path = tmp_path / "allowed.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from mesh.auth import Principal
        from mesh.core.config import MeshConfig
        from mesh.store.sqlite import SQLiteStore
        from mesh.wire.models import MessageSendParams
        from mesh.wiring import Mesh
        from tests.mesh.store.test_sqlite_durability import send

        async def main():
            store = SQLiteStore({str(path)!r})
            await store.open()
            mesh = Mesh(store, MeshConfig(callback_key=b"k" * 32))
            agent = Principal("bot", "default", frozenset({{"agent"}}))
            sends = [mesh.tasks.send_message(agent, MessageSendParams.model_validate(send("safe"))) for _ in range(40)]
            answered = await asyncio.gather(*sends)
            assert all(t["status"]["state"] == "completed" for t in answered)
            print(" ".join(t["id"] for t in answered), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    answered = proc.stdout.split()
    assert len(answered) == 40

    async def check() -> None:
        store = SQLiteStore(path)
        await store.open()
        mesh = Mesh(store, MeshConfig(callback_key=b"k" * 32))
        try:
            for task_id in answered:
                got = await mesh.tasks.get_task(Principal("bot", "default", frozenset({"agent"})), task_id, None)
                assert got["status"]["state"] == "completed"
                assert [m["role"] for m in got["history"]] == ["user", "agent"]
            await send_to(mesh, Principal("bot", "default", frozenset({"agent"})), send("safe"))  # the chain goes on
            report = await verify_chain(store, audit_key(b"k" * 32))
            assert report.ok and report.signed and report.entries >= 41, report
        finally:
            await store.close()

    asyncio.run(check())
