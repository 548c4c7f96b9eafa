"""Crashes: ``airlock serve`` killed with SIGKILL while holds, sends and resolves are in flight, then started
again on the same store, round after round, on SQLite and on PostgreSQL.

After the last restart: every hold a client was told of exists (and can still be resolved); every resolution
answered 200 is final and its action ran exactly once; nothing is left ``working``; every hold's notification
reached the webhook receiver (deduplicated by ``webhook-id``: delivery is at least once); ``airlock audit
verify`` passes with the signed head checked. The counts are printed (``pytest -s`` shows them) and kept in
docs/reliability.md. Seeded (``AIRLOCK_CRASH_SEED``), loopback only.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mesh.store import make_store
from tests.e2e.conftest import Server, start_server
from tests.pg import drop, fresh_schema_url

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 3
SEED = int(os.environ.get("AIRLOCK_CRASH_SEED", "7"))
SENDERS = 3
RESOLVERS = 4
ITEMS = [f"crash-{i:03d}" for i in range(12)]  # more than the policy's threshold of 10: every send is held
STATUS_OF = {"approve": "approved", "deny": "denied"}
FINAL_STATE = {"approve": "completed", "deny": "rejected"}


class Receiver:
    """The webhook receiver on loopback: keeps each delivery once by its ``webhook-id``."""

    def __init__(self) -> None:
        self.by_id: dict[str, dict[str, Any]] = {}
        self.duplicates = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        delivery = request.headers["webhook-id"]
        if delivery in self.by_id:
            self.duplicates += 1
        else:
            self.by_id[delivery] = body
        return web.json_response({"ok": True})

    def requested(self) -> set[str]:
        return {b["approval_id"] for b in self.by_id.values() if b.get("event") == "approval.requested"}


@dataclass
class Tally:
    acknowledged: dict[str, str] = field(default_factory=dict)  # approval id -> task id, as answered
    answered: dict[str, str] = field(default_factory=dict)  # task id -> decision, answered 200
    in_flight: set[str] = field(default_factory=set)  # task ids whose resolve got no answer (the kill)
    sends_in_flight: int = 0
    other: Counter[int] = field(default_factory=Counter)  # resolves answered otherwise (409 after a race, …)
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # task ids to resolve


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hook"
    yield rec
    await runner.cleanup()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send_body(n: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": str(n),
        "method": "message/send",
        "params": {
            "message": {
                "role": "user",
                "messageId": f"crash-{SEED}-{n}",
                "metadata": {"agent": "staging-db"},  # the demo agent runs it (a bare tool call is a guard's)
                "parts": [{"kind": "data", "data": {"tool": "bulk_delete_expired", "arguments": {"items": ITEMS}}}],
            }
        },
    }


async def sender(session: aiohttp.ClientSession, server: Server, token: str, tally: Tally, counter: list[int]) -> None:
    while True:
        counter[0] += 1
        try:
            async with session.post(f"{server.mesh_url}/", json=send_body(counter[0]), headers=bearer(token)) as r:
                reply = await r.json()
        except (TimeoutError, aiohttp.ClientError, OSError):
            tally.sends_in_flight += 1
            return
        task = reply["result"]
        assert task["status"]["state"] == "input-required", reply
        tally.acknowledged[task["metadata"]["airlock"]["approvalId"]] = task["id"]
        tally.queue.put_nowait(task["id"])


async def resolver(
    session: aiohttp.ClientSession, server: Server, token: str, tally: Tally, rng: random.Random
) -> None:
    while True:
        task_id = await tally.queue.get()
        decision = "approve" if rng.random() < 0.7 else "deny"
        url = f"{server.gateway_url}/messages/{task_id}/resolve"
        try:
            async with session.post(url, json={"resolution": {"decision": decision}}, headers=bearer(token)) as r:
                await r.read()
                status = r.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            tally.in_flight.add(task_id)
            return
        if status == 200:
            tally.answered[task_id] = decision
        else:
            tally.other[status] += 1


async def start(home: Path, store_url: str) -> Server:
    return await asyncio.to_thread(start_server, home, "--demo", "--store", store_url)


def kill(server: Server) -> None:
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)


async def setup(server: Server, admin: str, receiver: Receiver) -> None:
    async with aiohttp.ClientSession() as session:
        channel = {"name": "crash-hook", "type": "webhook", "config": {"url": receiver.url}}
        url = f"{server.gateway_url}/internal/channels/new"
        async with session.post(url, json=channel, headers=bearer(admin)) as r:
            assert r.status == 201, await r.text()
        policy = {
            "name": "bulk_ops_approval",
            "scope_type": "tool",
            "enforcement": "require_approval",
            "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 10}},
            "channels": ["crash-hook"],
        }
        async with session.post(f"{server.gateway_url}/internal/policies/new", json=policy, headers=bearer(admin)) as r:
            assert r.status == 201, await r.text()


async def crash_round(
    server: Server, tokens: dict[str, str], tally: Tally, rng: random.Random, counter: list[int]
) -> float:
    """Load the server, kill it mid-flight; the seconds it ran under load."""
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        workers = [
            asyncio.create_task(sender(session, server, tokens["agent"], tally, counter)) for _ in range(SENDERS)
        ]
        workers += [
            asyncio.create_task(resolver(session, server, tokens["approver"], tally, random.Random(rng.random())))
            for _ in range(RESOLVERS)
        ]
        load = rng.uniform(0.6, 1.4)
        await asyncio.sleep(load)
        await asyncio.to_thread(kill, server)
        done, pending = await asyncio.wait(workers, timeout=10)
        for worker in pending:  # resolvers waiting on an empty queue
            worker.cancel()
        for worker in done:
            worker.result()  # a worker's own failure (an unexpected answer) fails the test
    return load


def executions(home: Path) -> Counter[str]:
    with sqlite3.connect(home / "staging.db", timeout=10) as conn:
        rows = conn.execute("SELECT task_id, COUNT(*) FROM executions GROUP BY task_id").fetchall()
    conn.close()
    return Counter({task_id: n for task_id, n in rows})


async def wait_until(check: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return bool(await check())


async def crash_loop(home: Path, store_url: str, receiver: Receiver, engine: str) -> None:
    began = time.monotonic()
    rng = random.Random(f"{SEED}-{engine}")
    tally = Tally()
    server = await start(home, store_url)
    tokens = {
        "admin": server.token("root", "admin"),
        "agent": server.token("bot", "agent"),
        "approver": server.token("alice", "approver"),
    }
    await setup(server, tokens["admin"], receiver)
    kills_at: list[float] = []
    counter = [0]  # numbers every send, so message ids stay unique across rounds
    for _ in range(ROUNDS):
        kills_at.append(round(await crash_round(server, tokens, tally, rng, counter), 2))
        tally.queue = asyncio.Queue()
        server = await start(home, store_url)
    try:
        await check_after(server, home, store_url, tokens, tally, receiver, engine, kills_at, began)
    finally:
        server.proc.terminate()
        server.proc.wait(10)


async def check_after(
    server: Server,
    home: Path,
    store_url: str,
    tokens: dict[str, str],
    tally: Tally,
    receiver: Receiver,
    engine: str,
    kills_at: list[float],
    began: float,
) -> None:
    assert len(tally.acknowledged) >= 10 and tally.answered and tally.in_flight, (
        "the rounds did too little to test anything",
        len(tally.acknowledged),
        len(tally.answered),
        len(tally.in_flight),
    )
    store = make_store(store_url)
    await store.open()
    try:
        # nothing stuck: the approved actions a kill interrupted were run by the restart's recovery
        async def recovered() -> bool:
            return not await store.approved_unfinished()

        assert await wait_until(recovered, 20), await store.approved_unfinished()

        # every hold a client was told of exists, with its task
        approvals = {}
        for approval_id, task_id in tally.acknowledged.items():
            approval = await store.get_approval(approval_id)
            assert approval is not None and approval.task_id == task_id, approval_id
            approvals[approval_id] = approval
        by_task = {a.task_id: a for a in approvals.values()}

        # every resolution answered 200 is final, its task ended, its action ran exactly once (deny: never)
        ran = executions(home)
        for task_id, decision in tally.answered.items():
            approval = by_task[task_id]
            assert approval.status == STATUS_OF[decision], (task_id, decision, approval.status)
            task = await store.get_task(approval.tenant, task_id)
            assert task is not None and task.state == FINAL_STATE[decision], (task_id, task and task.state)
            assert ran[task_id] == (1 if decision == "approve" else 0), (task_id, ran[task_id])
        # a resolve cut off by the kill either landed (and then ran once) or left the hold pending
        landed = 0
        for task_id in tally.in_flight - set(tally.answered):
            approval = by_task[task_id]
            task = await store.get_task(approval.tenant, task_id)
            assert task is not None
            if approval.status == "approved":
                landed += 1
                assert task.state == "completed" and ran[task_id] == 1, (task_id, task.state, ran[task_id])
            elif approval.status == "denied":
                landed += 1
                assert task.state == "rejected" and ran[task_id] == 0
            else:
                assert approval.status == "pending" and task.state == "input-required", (task_id, approval.status)
        assert all(n == 1 for n in ran.values()), {t: n for t, n in ran.items() if n != 1}
        for approval in approvals.values():
            task = await store.get_task(approval.tenant, approval.task_id)
            assert task is not None and task.state != "working", approval.task_id

        # the holds still pending are live: each resolves now, and its action runs once
        still = []
        for approval in approvals.values():
            latest = await store.get_approval(approval.id)
            if latest is not None and latest.status == "pending":
                still.append(latest)
        limit = asyncio.Semaphore(8)
        async with aiohttp.ClientSession() as session:

            async def approve(task_id: str) -> None:
                url = f"{server.gateway_url}/messages/{task_id}/resolve"
                async with limit, session.post(
                    url, json={"resolution": {"decision": "approve"}}, headers=bearer(tokens["approver"])
                ) as r:
                    assert r.status == 200, await r.text()

            await asyncio.gather(*(approve(a.task_id) for a in still))
        ran = executions(home)
        assert all(ran[a.task_id] == 1 for a in still)
        assert all(n == 1 for n in ran.values())
    finally:
        await store.close()

    # every hold's notification reached the receiver after the restart (a row leased when the server was
    # killed is sent again once its 30-second lease runs out)
    async def notified() -> bool:
        return set(approvals) <= receiver.requested()

    waited = time.monotonic()
    assert await wait_until(notified, 120), sorted(set(approvals) - receiver.requested())[:5]
    waited = time.monotonic() - waited

    # the audit trail verifies, its signed head included
    verify = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway.cli", "audit", "verify", "--store", store_url],
        cwd=ROOT,
        env={**os.environ, "AIRLOCK_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "signed head checked" in verify.stdout, verify.stdout

    print(
        f"\ncrash loop on {engine} (seed {SEED}): {ROUNDS} kills after {kills_at} s of load; "
        f"holds acknowledged {len(tally.acknowledged)}, sends cut off {tally.sends_in_flight}; "
        f"resolves answered 200 {len(tally.answered)} "
        f"({sum(d == 'approve' for d in tally.answered.values())} approve), "
        f"resolves in flight at the kills {len(tally.in_flight)} ({landed} had landed), "
        f"other answers {dict(tally.other)}; pending resolved after the last restart {len(still)}; "
        f"actions run {sum(ran.values())}, none twice; notifications {len(receiver.by_id)} "
        f"(+{receiver.duplicates} duplicates dropped; waited {waited:.1f} s); "
        f"audit: {verify.stdout.strip()}; "
        f"{time.monotonic() - began:.1f} s"
    )


async def test_crash_loop_sqlite(tmp_path: Path, receiver: Receiver) -> None:
    await crash_loop(tmp_path / "home", f"sqlite:///{tmp_path / 'home' / 'airlock.db'}", receiver, "sqlite")


async def test_crash_loop_postgresql(tmp_path: Path, receiver: Receiver) -> None:
    url = await fresh_schema_url()
    try:
        await crash_loop(tmp_path / "home", url, receiver, "postgresql")
    finally:
        await drop(url)
