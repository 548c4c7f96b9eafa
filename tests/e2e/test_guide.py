"""The approvals guide, replayed against ``airlock serve --demo`` running as a process.

Every step uses the guide's own bodies (with localhost for its hosts); a real HTTP receiver catches the
webhook with the callback token; 50 concurrent resolves of one hold give one winner.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.e2e.conftest import Server

GUIDE_POLICY = {
    "name": "bulk_ops_approval",
    "description": "Require human approval for bulk operations exceeding 10 items",
    "scope_type": "tool",
    "enforcement": "require_approval",
    "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 10}},
}
GUIDE_SEND = {
    "jsonrpc": "2.0",
    "id": "1",
    "method": "message/send",
    "params": {
        "message": {
            "role": "user",
            "parts": [{"kind": "text", "text": "Delete all expired records from the staging database"}],
            "contextId": "session-123",
        }
    },
}
GUIDE_STATUS_MESSAGE_PARTS = [
    {
        "kind": "data",
        "data": {
            "type": "Form",
            "props": {
                "title": "Approval Required",
                "description": "bulk_delete_expired requires approval.",
                "fields": [
                    {
                        "id": "decision",
                        "type": "action",
                        "options": [{"value": "approve", "label": "Approve"}, {"value": "deny", "label": "Deny"}],
                    }
                ],
            },
        },
        "metadata": {"mimeType": "application/json+a2ui"},
    }
]
PASSWORD = "correct-horse-battery-staple-81"


class Receiver:
    """A real webhook endpoint on loopback that keeps what it is sent."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/hook", self.hook)
        self.runner = web.AppRunner(self.app)
        self.url = ""

    async def hook(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.json_response({"ok": True})

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def wait_for(self, message_id: str, timeout: float = 10.0) -> dict[str, Any]:
        for _ in range(int(timeout / 0.05)):
            for payload in self.received:
                if payload.get("message_id") == message_id:
                    return payload
            await asyncio.sleep(0.05)
        raise AssertionError(f"no webhook for {message_id}; got {self.received}")


def executions(home: Path, task_id: str) -> list[tuple[str, int]]:
    with sqlite3.connect(home / "staging.db") as db:
        return db.execute("SELECT tool, affected FROM executions WHERE task_id = ?", (task_id,)).fetchall()


def raw_store_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob("airlock.db*"))


async def test_guide_end_to_end(demo_server: Server) -> None:
    admin = {"Authorization": f"Bearer {demo_server.token('alice', 'approver', 'admin')}"}
    gw, mesh = demo_server.gateway_url, demo_server.mesh_url
    receiver = Receiver()
    await receiver.start()
    async with aiohttp.ClientSession() as http:

        async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
            async with http.post(url, json=body, headers=headers if headers is not None else admin) as resp:
                return resp.status, await resp.json()

        # Step 1: create the policy exactly as the guide does, then link a webhook channel to it.
        status, policy = await post(f"{gw}/internal/policies/new", GUIDE_POLICY)
        assert status == 201 and policy["policy_id"] == "bulk_ops_approval"
        status, _ = await post(
            f"{gw}/internal/channels/new", {"name": "ops-hook", "type": "webhook", "config": {"url": receiver.url}}
        )
        assert status == 201
        status, _ = await post(
            f"{gw}/internal/policies/update", {"policy_id": "bulk_ops_approval", "channels": ["ops-hook"]}
        )
        assert status == 200

        # Step 2: the guide's message is held, with the guide's Form.
        status, reply = await post(f"{mesh}/send", GUIDE_SEND)
        assert status == 200 and reply["jsonrpc"] == "2.0" and reply["id"] == "1"
        held = reply["result"]
        assert held["status"]["state"] == "input-required"
        assert held["status"]["message"]["role"] == "agent"
        assert held["status"]["message"]["parts"] == GUIDE_STATUS_MESSAGE_PARTS
        assert held["contextId"] == "session-123"

        # Step 3: it is pending.
        status, pending = await post(f"{gw}/messages/pending", {"tenant_id": "default"})
        assert status == 200
        row = next(m for m in pending["messages"] if m["message_id"] == held["id"])
        assert row["session_id"] == "session-123" and row["state"] == "input-required"
        assert row["user_input"] == "Delete all expired records from the staging database"
        assert row["task_data"]["status"]["state"] == "input-required"

        # A second hold, resolved through the webhook's callback token with no JWT.
        _, second = await post(f"{mesh}/send", GUIDE_SEND)
        hook = await receiver.wait_for(second["result"]["id"])
        assert hook["event"] == "approval.requested" and hook["policy"] == "bulk_ops_approval"
        assert hook["tool"] == "bulk_delete_expired" and hook["form"]["type"] == "Form"
        token = hook["callback_token"]
        resolve_second = hook["resolve_url"]
        assert resolve_second == f"{gw}/messages/{second['result']['id']}/resolve"
        status, body = await post(resolve_second, {"callback_token": token, "resolution": {"decision": "deny"}}, {})
        assert status == 200 and body["new_state"] == "rejected"
        status, body = await post(resolve_second, {"callback_token": token, "resolution": {"decision": "deny"}}, {})
        assert status == 409
        assert executions(demo_server.home, second["result"]["id"]) == []

        # Step 4: resolve the first by JWT — 50 at once; exactly one wins and the action runs once.
        results = await asyncio.gather(
            *(post(f"{gw}/messages/{held['id']}/resolve", {"resolution": {"decision": "approve"}}) for _ in range(50))
        )
        statuses = sorted(s for s, _ in results)
        assert statuses == [200] + [409] * 49
        winner = next(b for s, b in results if s == 200)
        assert winner["ok"] is True and winner["new_state"] == "completed"
        assert "Deleted 42 expired records" in winner["task"]["artifacts"][0]["parts"][0]["text"]
        assert executions(demo_server.home, held["id"]) == [("bulk_delete_expired", 42)]

        # Structured input: the policy adds fields; values reach the agent; the password is kept nowhere.
        fields = [
            {"id": "reason", "type": "text", "label": "Why", "required": True},
            {"id": "password", "type": "password", "label": "DB password", "required": True},
        ]
        status, _ = await post(
            f"{gw}/internal/policies/update",
            {
                "policy_id": "bulk_ops_approval",
                "evaluator": {"plugin": "tool_match", "config": {"tools": ["bulk_delete_*"], "fields": fields}},
            },
        )
        assert status == 200
        _, third = await post(f"{mesh}/send", GUIDE_SEND)
        form = third["result"]["status"]["message"]["parts"][0]["data"]
        assert [f["id"] for f in form["props"]["fields"]] == ["decision", "reason", "password"]
        url = f"{gw}/messages/{third['result']['id']}/resolve"
        status, body = await post(url, {"resolution": {"decision": "approve", "reason": "cleanup"}})
        assert status == 400 and body["error"]["field"] == "password"
        status, body = await post(
            url, {"resolution": {"decision": "approve", "reason": "cleanup", "password": PASSWORD}}
        )
        assert status == 200 and body["new_state"] == "completed"
        assert "reason=cleanup" in body["task"]["status"]["message"]["parts"][0]["text"]
        assert PASSWORD not in json.dumps(body)
        _, got = await post(
            f"{mesh}/", {"jsonrpc": "2.0", "id": 9, "method": "tasks/get", "params": {"id": third["result"]["id"]}}
        )
        assert PASSWORD not in json.dumps(got) and "********" in json.dumps(got)

        # Step 5: permanently allow — the same message now runs without a hold.
        status, updated = await post(
            f"{gw}/internal/policies/update", {"policy_id": "bulk_ops_approval", "enforcement": "allow"}
        )
        assert status == 200 and updated["enforcement"] == "allow"
        _, fourth = await post(f"{mesh}/send", GUIDE_SEND)
        assert fourth["result"]["status"]["state"] == "completed"
        assert executions(demo_server.home, fourth["result"]["id"]) == [("bulk_delete_expired", 0)]

    await receiver.runner.cleanup()
    assert PASSWORD.encode() not in raw_store_bytes(demo_server.home)
    assert token.encode() not in raw_store_bytes(demo_server.home)
    log = demo_server.log()
    assert PASSWORD not in log and token not in log
    assert "Traceback" not in log
