"""Shared fixtures: a real SQLite store in a temporary directory, the demo agent, both apps in-process."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_gateway_app
from mesh.a2a.app import create_mesh_app
from mesh.agents.base import AgentRegistry
from mesh.agents.demo import StagingDbAgent
from mesh.auth import TokenVerifier, issue_token
from mesh.core.config import MeshConfig
from mesh.store.sqlite import SQLiteStore
from mesh.wiring import Mesh

SECRET = b"test-secret-0123456789abcdef0123456789"
IN_CI = os.environ.get("CI") == "true"

GUIDE_POLICY = {
    "name": "bulk_ops_approval",
    "description": "Require human approval for bulk operations exceeding 10 items",
    "scope_type": "tool",
    "enforcement": "require_approval",
    "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 10}},
}
GUIDE_TEXT = "Delete all expired records from the staging database"


def guide_message(text: str = GUIDE_TEXT, request_id: str = "1", **message: object) -> dict:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "message/send",
        "params": {
            "message": {
                "role": "user",
                "parts": [{"kind": "text", "text": text}],
                "contextId": "session-123",
                **message,
            }
        },
    }


def tool_message(tool: str, arguments: dict, request_id: str = "1") -> dict:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "message/send",
        "params": {
            "message": {"role": "user", "parts": [{"kind": "data", "data": {"tool": tool, "arguments": arguments}}]}
        },
    }


def make_token(sub: str = "alice", *roles: str, tenant: str = "default", ttl_s: int = 3600) -> str:
    return issue_token(SECRET, sub, tenant=tenant, roles=list(roles) or ["approver", "admin"], ttl_s=ttl_s)


def bearer(sub: str = "alice", *roles: str, tenant: str = "default") -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(sub, *roles, tenant=tenant)}"}


@dataclass
class Airlock:
    """Both apps over one store, with clients and helpers for the common steps."""

    mesh: Mesh
    mesh_client: TestClient
    gateway: TestClient
    home: Path
    demo: StagingDbAgent

    async def rpc(self, body: dict, headers: dict[str, str] | None = None) -> dict:
        resp = await self.mesh_client.post("/", json=body, headers=headers if headers is not None else bearer())
        return await resp.json()

    async def add_policy(self, body: dict | None = None, **changes: object) -> dict:
        resp = await self.gateway.post(
            "/internal/policies/new", json={**(body or GUIDE_POLICY), **changes}, headers=bearer()
        )
        assert resp.status == 201, await resp.text()
        return await resp.json()

    async def hold(self, text: str = GUIDE_TEXT, headers: dict[str, str] | None = None) -> dict:
        reply = await self.rpc(guide_message(text), headers)
        task = reply["result"]
        assert task["status"]["state"] == "input-required", reply
        return task

    async def resolve(self, task_id: str, resolution: dict, headers: dict[str, str] | None = None):
        return await self.gateway.post(
            f"/messages/{task_id}/resolve",
            json={"resolution": resolution},
            headers=headers if headers is not None else bearer(),
        )

    async def executions(self) -> int:
        assert self.demo._db is not None
        cur = await self.demo._db.execute("SELECT COUNT(*) FROM executions")
        return (await cur.fetchone())[0]


@pytest.fixture
async def airlock(tmp_path: Path) -> AsyncIterator[Airlock]:
    async with start_airlock(tmp_path) as instance:
        yield instance


class start_airlock:
    """Start both apps on a store in ``home``; reusable to show a restart keeps state."""

    def __init__(
        self,
        home: Path,
        *,
        timeout_s: int = 3600,
        clock: Callable[[], float] | None = None,
        auth: bool = True,
        push_allow_private: bool = True,
        signing_key: bytes | None = None,
        max_pending: int = 10_000,
    ) -> None:
        self.home, self.timeout_s, self.clock, self.auth = home, timeout_s, clock, auth
        self.push_allow_private = push_allow_private
        self.signing_key, self.max_pending = signing_key, max_pending

    async def __aenter__(self) -> Airlock:
        import time

        self.store = SQLiteStore(self.home / "airlock.db")
        await self.store.open()
        self.agents = AgentRegistry()
        self.demo = StagingDbAgent(self.home / "staging.db")
        self.agents.add(self.demo, default=True)
        await self.agents.start()
        config = MeshConfig(
            approval_timeout_s=self.timeout_s,
            callback_key=b"k" * 32,
            push_allow_private=self.push_allow_private,
            max_pending=self.max_pending,
            signing_key=self.signing_key,
        )
        mesh = Mesh(self.store, config, self.agents, clock=self.clock or time.time)
        verifier = TokenVerifier(secret=SECRET) if self.auth else None
        self.mesh_client = TestClient(TestServer(create_mesh_app(mesh, verifier, "http://127.0.0.1:8080")))
        self.gateway = TestClient(TestServer(create_gateway_app(mesh, verifier)))
        await self.mesh_client.start_server()
        await self.gateway.start_server()
        mesh.config.gateway_url = str(self.gateway.make_url("")).rstrip("/")
        return Airlock(mesh=mesh, mesh_client=self.mesh_client, gateway=self.gateway, home=self.home, demo=self.demo)

    async def __aexit__(self, *exc: object) -> None:
        await self.gateway.close()
        await self.mesh_client.close()
        await self.agents.stop()
        await self.store.close()


@contextlib.asynccontextmanager
async def serving(holder: Any, routes: list[tuple[str, str, Any]]) -> AsyncIterator[Any]:
    """``routes`` (method, path, handler) served by a real HTTP server on loopback, kept as
    ``holder.server`` for the life of the block."""
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    holder.server = TestServer(app, host="127.0.0.1", port=0)
    await holder.server.start_server()
    try:
        yield holder
    finally:
        await holder.server.close()


def listening(receiver: Any) -> contextlib.AbstractAsyncContextManager[Any]:
    """``receiver.handle`` served for ``POST /hook`` (a webhook or push receiver)."""
    return serving(receiver, [("POST", "/hook", receiver.handle)])
