"""The decisions beyond yes and no against ``airlock serve`` processes: a two-person hold raced by twenty
approvers, escalation delivered once, a denial with its reason, an approval with edits. The quorum race
and the escalation run on SQLite (one server) and on PostgreSQL (two replicas over one database)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.settings import key_file
from mesh.auth import issue_token
from tests.e2e.conftest import Server, start_server, stop_server
from tests.pg import drop, fresh_schema_url

SEND = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "message/send",
    "params": {
        "message": {
            "role": "user",
            "parts": [{"kind": "text", "text": "Delete all expired records from the staging database"}],
        }
    },
}


def policy(**fields: Any) -> dict[str, Any]:
    return {
        "name": "bulk_ops_approval",
        "scope_type": "tool",
        "enforcement": "require_approval",
        "evaluator": {"plugin": "tool_match", "config": {"tools": ["bulk_delete_expired"]}},
        **fields,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(server: Server, sub: str, *roles: str) -> str:
    """A token signed with the server's own secret, made in-process (twenty approvers need twenty)."""
    return issue_token(key_file(server.home / "jwt.secret")[0], sub, roles=list(roles))


def executions(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "staging.db") as db:
        return dict(db.execute("SELECT task_id, affected FROM executions").fetchall())


class Hooks:
    """Webhook receivers on loopback, one path per channel: each delivery kept once by its ``webhook-id``."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, dict[str, Any]]] = {}
        self.duplicates = 0
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        delivery = request.headers["webhook-id"]
        if delivery in self.seen:
            self.duplicates += 1
        self.seen[delivery] = (request.match_info["channel"], await request.json())
        return web.json_response({"ok": True})

    def of(self, event: str) -> Counter[tuple[str, str]]:
        return Counter((body["approval_id"], ch) for ch, body in self.seen.values() if body["event"] == event)


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    rec = Hooks()
    app = web.Application()
    app.router.add_post("/{channel}", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield rec
    await runner.cleanup()


@pytest.fixture(params=["sqlite", "postgresql"])
async def servers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Server, Server]]:
    """Two gateways over one store: two replicas on PostgreSQL; on SQLite (one writer) the same server twice."""
    home = tmp_path / "home"
    if request.param == "sqlite":
        a = start_server(home, "--demo", "--rate-limit", "off")
        try:
            yield a, a
        finally:
            stop_server(a)
        return
    url = await fresh_schema_url()
    a = start_server(home, "--demo", "--store", url, "--rate-limit", "off")
    b = start_server(home, "--demo", "--store", url, "--rate-limit", "off")
    try:
        yield a, b
    finally:
        stop_server(a)
        stop_server(b)
        await drop(url)


async def held_task(http: aiohttp.ClientSession, server: Server, agent: str) -> dict[str, Any]:
    async with http.post(f"{server.mesh_url}/", json=SEND, headers=bearer(agent)) as resp:
        task = (await resp.json())["result"]
    assert task["status"]["state"] == "input-required", task
    return task


async def get_task(http: aiohttp.ClientSession, server: Server, tok: str, task_id: str) -> dict[str, Any]:
    rpc = {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task_id}}
    async with http.post(f"{server.mesh_url}/", json=rpc, headers=bearer(tok)) as resp:
        return (await resp.json())["result"]


async def test_a_two_person_hold_raced_by_twenty_approvers_is_approved_once(servers: tuple[Server, Server]) -> None:
    a, b = servers
    admin = token(a, "root", "admin")
    people = [token(a, f"approver-{i:02d}", "approver") for i in range(20)]
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{b.gateway_url}/internal/policies/new", json=policy(approvals_required=2), headers=bearer(admin)
        ) as resp:
            assert resp.status == 201, await resp.text()
        task = await held_task(http, a, token(a, "bot", "agent"))

        async def resolve(i: int) -> int:
            server = a if i % 2 else b
            async with http.post(
                f"{server.gateway_url}/messages/{task['id']}/resolve",
                json={"resolution": {"decision": "approve"}},
                headers=bearer(people[i % 20]),
            ) as resp:
                await resp.read()
                return resp.status

        statuses = Counter(await asyncio.gather(*(resolve(i) for i in range(200))))
        assert statuses == {200: 2, 409: 198}
        done = await get_task(http, a, admin, task["id"])
    assert done["status"]["state"] == "completed", done["status"]
    given = done["metadata"]["airlock"]["approvals"]
    assert len(given) == 2 and len({g["by"] for g in given}) == 2
    assert list(executions(a.home)) == [task["id"]]  # the action ran once


async def test_a_pending_hold_escalates_once_across_replicas(servers: tuple[Server, Server], hooks: Hooks) -> None:
    a, b = servers
    admin = token(a, "root", "admin")
    async with aiohttp.ClientSession(headers=bearer(admin)) as http:
        for name in ("ops", "pager"):
            body = {"name": name, "type": "webhook", "config": {"url": f"{hooks.base}/{name}"}}
            async with http.post(f"{a.gateway_url}/internal/channels/new", json=body) as resp:
                assert resp.status == 201, await resp.text()
        body = policy(channels=["ops"], escalate_after="2s", escalate_to=["pager"], timeout="10m")
        async with http.post(f"{a.gateway_url}/internal/policies/new", json=body) as resp:
            assert resp.status == 201, await resp.text()
        tasks = [await held_task(http, a if i % 2 else b, token(a, "bot", "agent")) for i in range(3)]
        ids = {t["metadata"]["airlock"]["approvalId"] for t in tasks}

        deadline = time.monotonic() + 30
        while len(hooks.of("approval.escalated")) < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # every sweeper of both replicas has looked again since
        assert hooks.of("approval.escalated") == {(i, c): 1 for i in ids for c in ("ops", "pager")}
        assert hooks.duplicates == 0
        for t in tasks:
            shown = await get_task(http, b, admin, t["id"])
            assert shown["status"]["state"] == "input-required" and "escalatedAt" in shown["metadata"]["airlock"]


async def test_a_denial_tells_the_agent_why(demo_server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{demo_server.gateway_url}/internal/policies/new",
            json=policy(),
            headers=bearer(token(demo_server, "root", "admin")),
        ) as resp:
            assert resp.status == 201
        agent = token(demo_server, "bot", "agent")
        task = await held_task(http, demo_server, agent)
        async with http.post(
            f"{demo_server.gateway_url}/messages/{task['id']}/resolve",
            json={"resolution": {"decision": "deny", "reason": "not during the audit freeze"}},
            headers=bearer(token(demo_server, "alice", "approver")),
        ) as resp:
            assert resp.status == 200, await resp.text()
        denied = await get_task(http, demo_server, agent, task["id"])
    assert denied["status"]["state"] == "rejected"
    assert denied["status"]["message"]["parts"][0]["text"] == "Denied by alice: not during the audit freeze"
    assert executions(demo_server.home) == {}


async def test_an_approval_with_edits_runs_the_edited_call(demo_server: Server) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{demo_server.gateway_url}/internal/policies/new",
            json=policy(allow_edits=True),
            headers=bearer(token(demo_server, "root", "admin")),
        ) as resp:
            assert resp.status == 201
        agent = token(demo_server, "bot", "agent")
        task = await held_task(http, demo_server, agent)
        keep = ["rec-000", "rec-001", "rec-002"]  # three of the 42 expired records the agent asked to delete
        async with http.post(
            f"{demo_server.gateway_url}/messages/{task['id']}/resolve",
            json={"resolution": {"decision": "approve", "arguments": {"items": keep, "database": "staging"}}},
            headers=bearer(token(demo_server, "alice", "approver")),
        ) as resp:
            assert resp.status == 200, await resp.text()
        done = await get_task(http, demo_server, agent, task["id"])
    assert done["status"]["state"] == "completed", done["status"]
    assert executions(demo_server.home) == {task["id"]: 3}
