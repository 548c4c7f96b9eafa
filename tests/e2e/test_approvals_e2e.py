"""``/v1/approvals`` against ``airlock serve --sign`` running as a process: create, list, resolve through a
signed link made with the key in ``$AIRLOCK_HOME``; and an approval whose time ran out while the server
was down is expired when it starts again."""

from __future__ import annotations

import asyncio
import stat
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from mesh.credentials import signed_link
from tests.e2e.conftest import Server, start_server, stop_server

CALL = {"tool": "exec", "agent": "deploy-bot", "message": "rotate the logs", "command": "logrotate -f /etc/lr.conf"}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with session.request(method, url, json=body, headers=headers or {}) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, await resp.text()


async def task_state(session: aiohttp.ClientSession, server: Server, token: str, task_id: str) -> str:
    rpc = {"jsonrpc": "2.0", "id": "1", "method": "tasks/get", "params": {"id": task_id}}
    status, reply = await call(session, "POST", f"{server.mesh_url}/", rpc, auth(token))
    assert status == 200, reply
    return reply["result"]["status"]["state"]


async def test_create_list_and_resolve_through_a_signed_link(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = start_server(home, "--sign", "--approval-timeout", "30s")  # room for a slow machine between steps
    try:
        key_file = home / "signing.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_bytes().strip()
        agent, approver = auth(server.token("bot", "agent")), auth(server.token("bob", "approver"))
        gw = server.gateway_url
        async with aiohttp.ClientSession() as session:
            status, first = await call(session, "POST", f"{gw}/v1/approvals", {**CALL, "run_id": "nightly"}, agent)
            assert status == 201, first
            status, second = await call(session, "POST", f"{gw}/v1/approvals", {**CALL, "run_id": "nightly"}, agent)
            assert status == 201, second
            status, listing = await call(session, "GET", f"{gw}/v1/approvals", headers=approver)
            assert status == 200, listing
            rows = {a["id"]: a for a in listing["approvals"]}
            assert set(rows) == {first["id"], second["id"]}
            assert rows[first["id"]]["command"] == CALL["command"] and rows[first["id"]]["status"] == "pending"
            assert listing["run_groups"] == [{"run_id": "nightly", "count": 2, "ids": [first["id"], second["id"]]}]

            exp = int(datetime.fromisoformat(first["expires_at"]).timestamp())
            approve = signed_link(gw, key, first["id"], "approve", exp)
            status, page = await call(session, "GET", approve)
            assert status == 200 and "<form" in page
            status, body = await call(session, "POST", approve)
            assert status == 200, body
            assert (body["status"], body["approved"], body["persisted"]) == ("approved", True, False)
            status, _ = await call(session, "POST", approve)
            assert status == 410  # single use
            deny = signed_link(gw, key, second["id"], "deny", exp)
            status, _ = await call(session, "POST", deny.replace("decision=deny", "decision=approve"))
            assert status == 401
            status, body = await call(session, "POST", deny)
            assert status == 200 and body["status"] == "denied", body

            status, one = await call(session, "GET", f"{gw}/v1/approvals/{first['id']}", headers=approver)
            assert status == 200 and one["status"] == "approved" and one["resolved_by"] == "signed-link"
            status, listing = await call(session, "GET", f"{gw}/v1/approvals", headers=approver)
            assert listing == {"approvals": [], "run_groups": [], "next_cursor": None}
    finally:
        stop_server(server)


async def test_an_approval_that_expired_while_the_server_was_down_is_expired_at_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = start_server(home, "--sign", "--approval-timeout", "2s")
    try:
        agent = server.token("bot", "agent")
        approver = auth(server.token("bob", "approver"))
        async with aiohttp.ClientSession() as session:
            status, created = await call(session, "POST", f"{server.gateway_url}/v1/approvals", CALL, auth(agent))
            assert status == 201, created
            assert await task_state(session, server, agent, created["task_id"]) == "input-required"
    finally:
        stop_server(server)
    expires = datetime.fromisoformat(created["expires_at"]).timestamp()
    await asyncio.sleep(max(0.0, expires - time.time()) + 0.5)

    server = start_server(home, "--sign", "--approval-timeout", "2s")
    try:
        gw = server.gateway_url
        async with aiohttp.ClientSession() as session:
            # nothing but the start-up sweep touches it: the task is rejected without any call on the approval
            deadline = time.monotonic() + 10
            while (state := await task_state(session, server, agent, created["task_id"])) != "rejected":
                assert time.monotonic() < deadline, f"task still {state}"
                await asyncio.sleep(0.1)
            status, one = await call(session, "GET", f"{gw}/v1/approvals/{created['id']}", headers=approver)
            assert status == 200 and one["status"] == "expired", one
            status, listing = await call(session, "GET", f"{gw}/v1/approvals", headers=approver)
            assert status == 200 and listing["approvals"] == []
            status, body = await call(
                session, "POST", f"{gw}/v1/approvals/{created['id']}/resolve", {"approved": True}, approver
            )
            assert status == 410, body
    finally:
        stop_server(server)
