"""Downstream A2A agents: a real a2a-sdk server as the peer, added through the gateway, reached by the mesh."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from a2a.helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from aiohttp import web
from aiohttp.test_utils import TestServer
from starlette.applications import Starlette

from mesh.agents.remote import RemoteAgent
from mesh.auth import Principal
from mesh.core.config import MeshConfig
from mesh.wire.models import Message, MessageSendParams
from mesh.wiring import Mesh
from tests.conftest import Airlock, bearer, serving, start_airlock

ECHO_SKILL = "echo-text"
QUESTION = "What is your name?"


class EchoExecutor(AgentExecutor):
    """Echoes text; asks a question when the text says "ask"; when it says "slow", waits until the peer stops."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.cancels: list[str] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.released: asyncio.Event | None = None

    def release(self) -> None:
        """Lets a "slow" call go on; called from the test's thread at teardown."""
        if self.loop is not None and self.released is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.released.set)

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        task = context.current_task
        self.calls.append({"text": text, "task_id": context.task_id, "continued": task is not None})
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        if "slow" in text:
            if self.released is None:
                self.loop, self.released = asyncio.get_running_loop(), asyncio.Event()
            await self.released.wait()  # set only when the peer stops: the call cannot finish before any timeout
        if "ask" in text:
            await updater.requires_input(updater.new_agent_message([new_text_part(QUESTION)]))
            return
        answer = f"Hello, {text}!" if self.calls[-1]["continued"] else f"echo: {text}"
        await updater.add_artifact([new_text_part(f"artifact of {text}")], name="echo")
        await updater.complete(updater.new_agent_message([new_text_part(answer)]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.cancels.append(context.task_id or "")
        await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EchoPeer:
    """The a2a-sdk JSON-RPC app (v0.3 compat on the same endpoint) under uvicorn in a thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.executor = EchoExecutor()
        card = AgentCard(
            name="Echo",
            description="Echoes what it is told.",
            version="1.0.0",
            supported_interfaces=[
                AgentInterface(url=self.url + "/", protocol_binding="JSONRPC", protocol_version="0.3")
            ],
            capabilities=AgentCapabilities(streaming=False, push_notifications=False),
            default_input_modes=["text/plain"],
            default_output_modes=["text/plain"],
            skills=[AgentSkill(id=ECHO_SKILL, name="Echo", description="Echoes the text", tags=["echo"])],
        )
        handler = DefaultRequestHandler(agent_executor=self.executor, task_store=InMemoryTaskStore(), agent_card=card)
        app = Starlette(
            routes=create_agent_card_routes(card) + create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True)
        )
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self.executor.calls

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the echo agent did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.executor.release()
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def peer() -> Iterator[EchoPeer]:
    server = EchoPeer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def add_peer(airlock: Airlock, peer_url: str, name: str = "echo") -> dict[str, Any]:
    resp = await airlock.gateway.post("/internal/agents/new", json={"name": name, "url": peer_url}, headers=bearer())
    body = await resp.json()
    assert resp.status == 201, body
    return body


def to_agent(text: str, agent: str | None = "echo", task: dict[str, Any] | None = None, rid: str = "1") -> dict:
    message: dict[str, Any] = {"role": "user", "parts": [{"kind": "text", "text": text}]}
    if agent is not None:
        message["metadata"] = {"agent": agent}
    if task is not None:
        message["taskId"] = task["id"]
        message["contextId"] = task["contextId"]
    return {"jsonrpc": "2.0", "id": rid, "method": "message/send", "params": {"message": message}}


def text_of(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in task["status"].get("message", {}).get("parts", []))


def remote_of(task: dict[str, Any]) -> dict[str, Any]:
    return task["metadata"]["airlock"]["remote"]


HOLD_ECHO = {
    "name": "hold_echo",
    "scope_type": "agent",
    "agents": ["echo"],
    "enforcement": "require_approval",
    "evaluator": {"plugin": "always", "config": {}},
}


async def wait_until(predicate: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ routing and relaying


async def test_added_agent_skills_appear_in_the_mesh_card(airlock: Airlock, peer: EchoPeer) -> None:
    before = await (await airlock.mesh_client.get("/.well-known/agent-card.json")).json()
    assert ECHO_SKILL not in [s["id"] for s in before["skills"]]
    await add_peer(airlock, peer.url)
    card = await (await airlock.mesh_client.get("/.well-known/agent-card.json")).json()
    skill = next(s for s in card["skills"] if s["id"] == ECHO_SKILL)
    assert skill["name"] == "Echo" and skill["description"] == "Echoes the text"
    assert "agent:echo" in skill["tags"]


async def test_message_is_forwarded_and_completes_under_the_mesh_task(airlock: Airlock, peer: EchoPeer) -> None:
    await add_peer(airlock, peer.url)
    reply = await airlock.rpc(to_agent("good morning"))
    task = reply["result"]
    assert task["status"]["state"] == "completed", reply
    assert text_of(task) == "echo: good morning"
    assert [a["parts"][0]["text"] for a in task["artifacts"]] == ["artifact of good morning"]
    assert len(peer.calls) == 1
    remote = remote_of(task)
    assert remote["agent"] == "echo"
    assert remote["taskId"] == peer.calls[0]["task_id"] != task["id"]
    stored = await airlock.mesh.store.get_task("default", task["id"])
    assert stored is not None and stored.agent == "echo" and stored.state == "completed"


async def test_agent_named_in_params_metadata(airlock: Airlock, peer: EchoPeer) -> None:
    await add_peer(airlock, peer.url)
    body = to_agent("hi there", agent=None)
    body["params"]["metadata"] = {"agent": "echo"}
    task = (await airlock.rpc(body))["result"]
    assert text_of(task) == "echo: hi there"
    # without a name the default (in-process) agent answers and the peer is not called
    other = (await airlock.rpc(to_agent("hi there", agent=None)))["result"]
    assert "staging-db heard" in text_of(other)
    assert len(peer.calls) == 1


async def test_input_required_passes_through_and_a_follow_up_continues(airlock: Airlock, peer: EchoPeer) -> None:
    await add_peer(airlock, peer.url)
    first = (await airlock.rpc(to_agent("please ask me")))["result"]
    assert first["status"]["state"] == "input-required"
    assert text_of(first) == QUESTION
    downstream = remote_of(first)["taskId"]
    # the follow-up names no agent: it stays with the task's agent
    second = (await airlock.rpc(to_agent("Ada", agent=None, task=first, rid="2")))["result"]
    assert second["id"] == first["id"]
    assert second["status"]["state"] == "completed", second
    assert text_of(second) == "Hello, Ada!"
    assert remote_of(second)["taskId"] == downstream
    assert [c["task_id"] for c in peer.calls] == [downstream, downstream]
    assert peer.calls[1]["continued"] is True
    assert len(second["artifacts"]) == 1  # relayed once, not again on later turns


async def test_held_message_is_forwarded_only_after_approval(airlock: Airlock, peer: EchoPeer) -> None:
    await add_peer(airlock, peer.url)
    await airlock.add_policy(HOLD_ECHO)
    held = (await airlock.rpc(to_agent("drop the table")))["result"]
    assert held["status"]["state"] == "input-required"
    assert peer.calls == []
    resp = await airlock.resolve(held["id"], {"decision": "approve"})
    assert resp.status == 200, await resp.text()
    assert len(peer.calls) == 1 and peer.calls[0]["text"] == "drop the table"
    task = (await airlock.rpc({"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"id": held["id"]}}))[
        "result"
    ]
    assert task["status"]["state"] == "completed"
    assert text_of(task) == "echo: drop the table"
    assert task["metadata"]["airlock"]["approvalId"]  # the hold's entry is kept next to the remote one
    assert remote_of(task)["taskId"] == peer.calls[0]["task_id"]


async def test_denied_message_never_reaches_the_agent(airlock: Airlock, peer: EchoPeer) -> None:
    await add_peer(airlock, peer.url)
    await airlock.add_policy(HOLD_ECHO)
    held = (await airlock.rpc(to_agent("drop the table")))["result"]
    resp = await airlock.resolve(held["id"], {"decision": "deny"})
    assert resp.status == 200
    assert (await resp.json())["task"]["status"]["state"] == "rejected"
    await asyncio.sleep(0.2)
    assert peer.calls == []


async def test_held_follow_up_continues_the_downstream_task(airlock: Airlock, peer: EchoPeer) -> None:
    await add_peer(airlock, peer.url)
    first = (await airlock.rpc(to_agent("ask me")))["result"]
    downstream = remote_of(first)["taskId"]
    await airlock.add_policy(HOLD_ECHO)
    held = (await airlock.rpc(to_agent("Grace", agent=None, task=first, rid="2")))["result"]
    assert held["status"]["state"] == "input-required"
    assert remote_of(held)["taskId"] == downstream  # the hold keeps what the task knows of its peer
    assert len(peer.calls) == 1
    resp = await airlock.resolve(held["id"], {"decision": "approve"})
    assert resp.status == 200
    stored = await airlock.mesh.store.get_task("default", first["id"])
    assert stored is not None and stored.state == "completed"
    assert peer.calls[1] == {"text": "Grace", "task_id": downstream, "continued": True}


async def test_a_tool_call_is_judged_by_tool(airlock: Airlock, peer: EchoPeer) -> None:
    await add_peer(airlock, peer.url)
    await airlock.add_policy(
        {
            "name": "no_drops",
            "scope_type": "tool",
            "enforcement": "block",
            "evaluator": {"plugin": "tool_match", "config": {"tools": ["drop_*"]}},
        }
    )
    call = {"kind": "data", "data": {"tool": "drop_table", "arguments": {"table": "users"}}}
    body = to_agent("drop it")
    body["params"]["message"]["parts"].append(call)
    task = (await airlock.rpc(body))["result"]
    assert task["status"]["state"] == "rejected"
    assert peer.calls == []
    agent = airlock.mesh.agents.get("echo")
    assert isinstance(agent, RemoteAgent)
    params = MessageSendParams.model_validate(body["params"])
    from mesh.agents.base import TurnContext

    plan = await agent.plan(params.message, TurnContext("t", "c", "default", "alice"))
    assert plan.action is not None
    assert (plan.action.agent, plan.action.tool, dict(plan.action.arguments)) == (
        "echo",
        "drop_table",
        {"table": "users"},
    )
    assert plan.action.text == "drop it"
    assert plan.action.context["message"]["parts"][1] == call


# ------------------------------------------------------------------ failures


async def test_agent_that_went_down_fails_the_task_clearly(airlock: Airlock, peer: EchoPeer) -> None:
    await add_peer(airlock, peer.url)
    peer.stop()
    task = (await airlock.rpc(to_agent("anyone there?")))["result"]
    assert task["status"]["state"] == "failed"
    assert "echo is unreachable" in text_of(task)


async def test_agent_that_hangs_fails_within_the_timeout(airlock: Airlock, peer: EchoPeer) -> None:
    airlock.mesh.config.agent_timeout_s = 1.0
    await add_peer(airlock, peer.url)
    task = (await airlock.rpc(to_agent("be slow")))["result"]
    assert task["status"]["state"] == "failed"
    assert "did not answer within 1s" in text_of(task)


class BadPeer:
    """A server with a valid card whose JSON-RPC endpoint misbehaves in the way ``mode`` says."""

    def __init__(self) -> None:
        self.mode = "garbage"
        self.methods: list[str] = []
        self.server: TestServer | None = None

    async def card(self, request: web.Request) -> web.Response:
        url = str(request.url.origin()) + "/rpc"
        return web.json_response({"name": "bad", "url": url, "protocolVersion": "0.3.0", "skills": []})

    async def rpc(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.methods.append(body["method"])
        if self.mode == "garbage":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        if self.mode == "error":
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32603, "message": "boom"}})
        if self.mode == "working":
            status = {"state": "working"}
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": body["id"],
                    "result": {"kind": "task", "id": "t1", "contextId": "c1", "status": status},
                }
            )
        if self.mode == "message":
            message = {
                "kind": "message",
                "role": "agent",
                "messageId": "m",
                "contextId": "c9",
                "parts": [{"kind": "text", "text": "direct"}],
            }
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": message})
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": {"kind": "task", "id": 7}})


@pytest.fixture
async def bad_peer() -> AsyncIterator[BadPeer]:
    peer = BadPeer()
    async with serving(peer, [("GET", "/.well-known/agent-card.json", peer.card), ("POST", "/rpc", peer.rpc)]):
        yield peer


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("garbage", "no valid JSON"),
        ("error", "error -32603: boom"),
        ("malformed", "malformed task"),
    ],
)
async def test_bad_answers_fail_the_task(airlock: Airlock, bad_peer: BadPeer, mode: str, expected: str) -> None:
    assert bad_peer.server is not None
    await add_peer(airlock, str(bad_peer.server.make_url("")).rstrip("/"), name="bad")
    bad_peer.mode = mode
    task = (await airlock.rpc(to_agent("hello", agent="bad")))["result"]
    assert task["status"]["state"] == "failed"
    assert expected in text_of(task)


async def test_a_task_that_stays_working_fails_at_the_timeout(airlock: Airlock, bad_peer: BadPeer) -> None:
    assert bad_peer.server is not None
    airlock.mesh.config.agent_timeout_s = 1.0
    await add_peer(airlock, str(bad_peer.server.make_url("")), name="bad")
    bad_peer.mode = "working"
    task = (await airlock.rpc(to_agent("hello", agent="bad")))["result"]
    assert task["status"]["state"] == "failed"
    assert "did not finish within 1s" in text_of(task)
    assert "tasks/get" in bad_peer.methods
    await wait_until(lambda: "tasks/cancel" in bad_peer.methods)


async def test_a_direct_message_answer_completes_the_task(airlock: Airlock, bad_peer: BadPeer) -> None:
    assert bad_peer.server is not None
    await add_peer(airlock, str(bad_peer.server.make_url("")), name="bad")
    bad_peer.mode = "message"
    task = (await airlock.rpc(to_agent("hello", agent="bad")))["result"]
    assert task["status"]["state"] == "completed"
    assert text_of(task) == "direct"
    assert remote_of(task)["contextId"] == "c9"


# ------------------------------------------------------------------ cancel, restart, replicas


async def test_cancel_is_forwarded_to_the_downstream_task(airlock: Airlock, peer: EchoPeer) -> None:
    await add_peer(airlock, peer.url)
    first = (await airlock.rpc(to_agent("ask me")))["result"]
    downstream = remote_of(first)["taskId"]
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": 2, "method": "tasks/cancel", "params": {"id": first["id"]}})
    assert reply["result"]["status"]["state"] == "canceled"
    await wait_until(lambda: peer.executor.cancels == [downstream])


async def test_cancel_of_a_local_task_calls_no_peer(airlock: Airlock, peer: EchoPeer) -> None:
    await add_peer(airlock, peer.url)
    task = (await airlock.rpc(to_agent("hello", agent=None)))["result"]
    assert task["status"]["state"] == "input-required"
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": 2, "method": "tasks/cancel", "params": {"id": task["id"]}})
    assert reply["result"]["status"]["state"] == "canceled"
    await asyncio.sleep(0.2)
    assert peer.executor.cancels == [] and peer.calls == []


async def test_stored_agents_are_loaded_at_start(tmp_path: Path, peer: EchoPeer) -> None:
    async with start_airlock(tmp_path) as first:
        await add_peer(first, peer.url)
    async with start_airlock(tmp_path) as second:
        assert second.mesh.agents.get("echo") is None
        assert await second.mesh.agent_admin.load_agents() == 1
        assert isinstance(second.mesh.agents.get("echo"), RemoteAgent)
        assert second.mesh.agents.default == "staging-db"
        task = (await second.rpc(to_agent("after restart")))["result"]
        assert text_of(task) == "echo: after restart"


async def test_an_agent_change_reaches_the_other_replica(tmp_path: Path, peer: EchoPeer) -> None:
    from mesh.agents.base import AgentRegistry
    from mesh.store.postgres import PostgresStore
    from mesh.wiring import link_replicas
    from tests.pg import drop, fresh_schema_url

    url = await fresh_schema_url()
    stores, meshes = [], []
    try:
        for _ in range(2):
            store = PostgresStore(url)
            await store.open()
            stores.append(store)
            mesh = Mesh(store, MeshConfig(callback_key=b"k" * 32), AgentRegistry())
            assert await link_replicas(mesh)
            meshes.append(mesh)
        a, b = meshes
        await a.agent_admin.add_agent("default", "alice", {"name": "echo", "url": peer.url})
        await wait_until(lambda: isinstance(b.agents.get("echo"), RemoteAgent))
        alice = Principal(sub="alice", tenant="default", roles=frozenset({"agent"}))
        params = MessageSendParams(message=Message(role="user", parts=[{"kind": "text", "text": "via b"}]))
        params.metadata = {"agent": "echo"}
        task = await b.tasks.send_message(alice, params)
        assert text_of(task) == "echo: via b"
        await a.agent_admin.delete_agent("default", "alice", "echo")
        await wait_until(lambda: b.agents.get("echo") is None)
    finally:
        for mesh in meshes:
            await mesh.agents.stop()
        for store in stores:
            await store.close()
        await drop(url)
