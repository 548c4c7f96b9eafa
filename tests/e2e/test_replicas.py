"""Two ``airlock serve`` replicas over one PostgreSQL database: one winner, nothing lost on SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.e2e.conftest import Server, start_server, stop_server
from tests.pg import drop, fresh_schema_url

GUIDE_POLICY = {
    "name": "bulk_ops_approval",
    "scope_type": "tool",
    "enforcement": "require_approval",
    "evaluator": {"plugin": "tool_match", "config": {"tools": ["bulk_delete_expired"]}},
}


def send_body(n: int) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": n,
        "method": "message/send",
        "params": {
            "message": {
                "role": "user",
                "parts": [{"kind": "text", "text": "Delete all expired records from the staging database"}],
            }
        },
    }


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[Server, Server, str]]:
    url = await fresh_schema_url()
    home = tmp_path / "home"
    a = start_server(home, "--demo", "--store", url)
    b = start_server(home, "--demo", "--store", url)
    try:
        yield a, b, url
    finally:
        stop_server(a)
        stop_server(b)
        await drop(url)


def executions(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "staging.db") as db:
        rows = db.execute("SELECT task_id, COUNT(*) FROM executions GROUP BY task_id").fetchall()
    return dict(rows)


async def approvals(url: str) -> dict[str, tuple[str, str | None]]:
    dsn, schema = url.split("?schema=")
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        rows = await conn.fetch("SELECT task_id, status, resolved_by FROM approvals")
    finally:
        await conn.close()
    return {r["task_id"]: (r["status"], r["resolved_by"]) for r in rows}


async def test_hold_on_a_listed_on_b_and_200_resolves_have_one_winner(replicas: tuple[Server, Server, str]) -> None:
    a, b, _ = replicas
    auth = {"Authorization": f"Bearer {a.token('alice', 'approver', 'admin')}"}
    async with aiohttp.ClientSession(headers=auth) as http:
        async with http.post(f"{b.gateway_url}/internal/policies/new", json=GUIDE_POLICY) as resp:
            assert resp.status == 201
        # The policy was made through B; A's mesh holds with it.
        async with http.post(f"{a.mesh_url}/send", json=send_body(1)) as resp:
            task = (await resp.json())["result"]
        assert task["status"]["state"] == "input-required"
        async with http.post(f"{b.gateway_url}/messages/pending", json={}) as resp:
            listed = [m["message_id"] for m in (await resp.json())["messages"]]
        assert task["id"] in listed

        async def resolve(server: Server) -> int:
            async with http.post(
                f"{server.gateway_url}/messages/{task['id']}/resolve", json={"resolution": {"decision": "approve"}}
            ) as resp:
                await resp.read()
                return resp.status

        statuses = await asyncio.gather(*(resolve(a if i % 2 else b) for i in range(200)))
    assert sorted(statuses) == [200] + [409] * 199
    assert executions(a.home) == {task["id"]: 1}


async def test_sigkill_during_resolves_loses_nothing_and_resolves_nothing_twice(
    replicas: tuple[Server, Server, str],
) -> None:
    a, b, url = replicas
    auth = {"Authorization": f"Bearer {a.token('alice', 'approver', 'admin')}"}
    async with aiohttp.ClientSession(headers=auth, timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.post(f"{a.gateway_url}/internal/policies/new", json=GUIDE_POLICY) as resp:
            assert resp.status == 201
        tasks = []
        for i in range(30):
            async with http.post(f"{(a if i % 2 else b).mesh_url}/send", json=send_body(i)) as resp:
                tasks.append((await resp.json())["result"]["id"])

        answered: dict[str, list[int]] = {t: [] for t in tasks}
        cut_on_a = 0  # resolves A had taken in and never answered
        first_win = asyncio.Event()

        async def resolve(server: Server, task_id: str) -> None:
            try:
                async with http.post(
                    f"{server.gateway_url}/messages/{task_id}/resolve", json={"resolution": {"decision": "approve"}}
                ) as resp:
                    await resp.read()
                    status = resp.status
            except aiohttp.ClientError as exc:
                if server is not a:
                    raise  # B was not killed: every request to it must be answered
                if not isinstance(exc, aiohttp.ClientConnectorError):  # refused after the kill: never in flight
                    nonlocal cut_on_a
                    cut_on_a += 1
                return
            answered[task_id].append(status)
            if status == 200:
                first_win.set()

        inflight = [asyncio.create_task(resolve(s, t)) for t in tasks for s in (a, b, a, b)]
        # kill A as soon as one resolve has won, while most of the 120 are still in flight
        await asyncio.wait_for(first_win.wait(), 30)
        a.proc.send_signal(signal.SIGKILL)
        await asyncio.gather(*inflight)
        assert cut_on_a >= 1, "the kill interrupted none of A's resolves"
        assert {s for statuses in answered.values() for s in statuses} <= {200, 409}, answered

        # Whatever B did not resolve is still pending and resolvable there: nothing was lost.
        state = await approvals(url)
        for task_id in tasks:
            if state[task_id][0] == "pending":
                async with http.post(
                    f"{b.gateway_url}/messages/{task_id}/resolve", json={"resolution": {"decision": "approve"}}
                ) as resp:
                    assert resp.status == 200
                    answered[task_id].append(200)

    state = await approvals(url)
    assert {s for s, _ in state.values()} == {"approved"}
    for task_id, statuses in answered.items():
        assert statuses.count(200) <= 1, (task_id, statuses)  # never two winners
    # A replica started after the crash finishes what the killed one approved but never ran: every
    # approved action has run exactly once.
    c = start_server(b.home, "--demo", "--store", url)
    stop_server(c)
    assert executions(b.home) == {task_id: 1 for task_id in tasks}
