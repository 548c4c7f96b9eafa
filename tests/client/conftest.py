"""A real ``airlock serve`` for the client to talk to, and the approver's side of the conversation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from airlock.client import Guard
from tests.e2e.conftest import Server, start_server, stop_server

WAIT_S = 20.0
"""The longest any test waits for the server to show something."""


@dataclass
class Airlock:
    """A running server and the three people around it: an admin, an approver (alice) and the agent (bot)."""

    server: Server
    admin: str
    alice: str
    agent: str

    @property
    def mesh_url(self) -> str:
        return self.server.mesh_url

    def guard(self, **options: Any) -> Guard:
        return Guard(self.server.mesh_url, self.agent, **options)

    async def gateway(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method,
                f"{self.server.gateway_url}{path}",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=WAIT_S),
            ) as resp,
        ):
            return resp.status, await resp.json()

    async def policy(self, name: str, tools: list[str], enforcement: str = "require_approval", **fields: Any) -> None:
        body = {
            "name": name,
            "scope_type": "tool",
            "enforcement": enforcement,
            "evaluator": {"plugin": "tool_match", "config": {"tools": tools}},
            **fields,
        }
        status, answer = await self.gateway("POST", "/internal/policies/new", self.admin, body)
        assert status == 201, answer

    async def held(self, count: int = 1) -> list[dict[str, Any]]:
        """The pending holds, once there are ``count`` of them."""
        async with asyncio.timeout(WAIT_S):
            while True:
                status, answer = await self.gateway("POST", "/messages/pending", self.alice, {"tenant_id": "default"})
                assert status == 200, answer
                if len(answer["messages"]) >= count:
                    return answer["messages"]
                await asyncio.sleep(0.1)

    async def resolve(self, task_id: str, **resolution: Any) -> dict[str, Any]:
        status, answer = await self.gateway(
            "POST", f"/messages/{task_id}/resolve", self.alice, {"resolution": resolution}
        )
        assert status == 200, answer
        return answer

    async def task_count(self) -> int:
        """How many tasks the agent's tenant has (A2A ``ListTasks``): what reached the mesh."""
        body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {}}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.mesh_url}/", json=body, headers={"Authorization": f"Bearer {self.admin}"}) as resp,
        ):
            return (await resp.json())["result"]["totalSize"]


def people(server: Server) -> Airlock:
    return Airlock(
        server,
        admin=server.token("root", "admin"),
        alice=server.token("alice", "approver"),
        agent=server.token("bot", "agent"),
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def airlock(home: Path) -> Iterator[Airlock]:
    server = start_server(home)
    instance = people(server)
    try:
        yield instance
    finally:
        stop_server(server)
        if instance.server is not server:  # a test restarted it: the server running now is stopped too
            stop_server(instance.server)
