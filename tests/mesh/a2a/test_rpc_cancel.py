"""tasks/cancel while an approved action is running, with an agent that waits to be released."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_gateway_app
from mesh.a2a.app import create_mesh_app
from mesh.agents.base import Agent, AgentRegistry, Execution, Plan, Reply, TurnContext, text_reply
from mesh.auth import TokenVerifier
from mesh.core.config import MeshConfig
from mesh.policy import Action
from mesh.store.sqlite import SQLiteStore
from mesh.wire.models import Message, TaskState
from mesh.wiring import Mesh
from tests.conftest import GUIDE_POLICY, SECRET, bearer, guide_message


class GatedAgent(Agent):
    """Plans ``bulk_delete_expired`` for any text; ``execute`` waits until the test opens the gate."""

    name = "gated"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.runs = 0

    async def plan(self, message: Message, ctx: TurnContext) -> Plan:
        items = [f"r{i}" for i in range(20)]
        return Plan(action=Action(agent=self.name, tool="bulk_delete_expired", arguments={"items": items}))

    async def execute(self, execution: Execution, ctx: TurnContext) -> Reply:
        self.started.set()
        await self.gate.wait()
        self.runs += 1
        return text_reply(TaskState.COMPLETED, "done")


class Gated:
    def __init__(self, mesh: Mesh, mesh_client: TestClient, gateway: TestClient, agent: GatedAgent) -> None:
        self.mesh, self.mesh_client, self.gateway, self.agent = mesh, mesh_client, gateway, agent

    async def rpc(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self.mesh_client.post("/", json=body, headers=bearer())
        return await resp.json()


@pytest.fixture
async def gated(tmp_path: Path) -> AsyncIterator[Gated]:
    store = SQLiteStore(tmp_path / "airlock.db")
    await store.open()
    agents = AgentRegistry()
    agent = GatedAgent()
    agents.add(agent, default=True)
    mesh = Mesh(store, MeshConfig(callback_key=b"k" * 32), agents, clock=time.time)
    verifier = TokenVerifier(secret=SECRET)
    mesh_client = TestClient(TestServer(create_mesh_app(mesh, verifier, "http://127.0.0.1:8080")))
    gateway = TestClient(TestServer(create_gateway_app(mesh, verifier)))
    await mesh_client.start_server()
    await gateway.start_server()
    try:
        yield Gated(mesh, mesh_client, gateway, agent)
    finally:
        agent.gate.set()
        await gateway.close()
        await mesh_client.close()
        await store.close()


async def hold_and_approve(gated: Gated) -> tuple[dict[str, Any], asyncio.Task[Any]]:
    resp = await gated.gateway.post("/internal/policies/new", json=GUIDE_POLICY, headers=bearer())
    assert resp.status == 201
    task = (await gated.rpc(guide_message("go")))["result"]
    assert task["status"]["state"] == "input-required"
    resolving = asyncio.ensure_future(
        gated.gateway.post(
            f"/messages/{task['id']}/resolve",
            json={"resolution": {"decision": "approve"}},
            headers=bearer("carol", "approver"),
        )
    )
    await asyncio.wait_for(gated.agent.started.wait(), 5)
    return task, resolving


async def test_running_task_reads_working(gated: Gated) -> None:
    task, resolving = await hold_and_approve(gated)
    got = await gated.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task["id"]}})
    assert got["result"]["status"]["state"] == "working"
    gated.agent.gate.set()
    resp = await resolving
    assert resp.status == 200
    got = await gated.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task["id"]}})
    assert got["result"]["status"]["state"] == "completed"
    assert gated.agent.runs == 1


async def test_cancel_while_approved_action_runs_is_not_contradicted(gated: Gated) -> None:
    task, resolving = await hold_and_approve(gated)
    reply = await gated.rpc({"jsonrpc": "2.0", "id": 2, "method": "tasks/cancel", "params": {"id": task["id"]}})
    # the action is already running: the cancel is refused, not answered as done
    assert "result" not in reply, reply
    assert reply["error"]["code"] == -32002
    assert "running an approved action" in reply["error"]["message"]
    during = await gated.rpc({"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"id": task["id"]}})
    assert during["result"]["status"]["state"] == "working"
    gated.agent.gate.set()
    assert (await resolving).status == 200
    got = await gated.rpc({"jsonrpc": "2.0", "id": 4, "method": "tasks/get", "params": {"id": task["id"]}})
    assert got["result"]["status"]["state"] == "completed"
    assert gated.agent.runs == 1
