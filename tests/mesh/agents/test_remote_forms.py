"""A downstream A2A agent (a real a2a-sdk server) that asks for values with a Form.

Its ``input-required`` reply carrying an A2UI Form becomes an input request at the mesh; the answer,
given through the gateway (or the A2A way), is forwarded to the downstream task once, in clear, and the
mesh task goes on with the downstream agent's answer. Elsewhere the password stays masked.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from a2a.helpers import get_data_parts, new_data_part, new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from google.protobuf.json_format import ParseDict
from starlette.applications import Starlette

from a2ui import MASK, MIME_TYPE
from mesh.credentials import callback_token
from mesh.store import PENDING
from tests.conftest import Airlock, bearer, start_airlock
from tests.gateway.conftest import db_bytes, error_of, pending
from tests.mesh.agents.test_remote_agents import add_peer, free_port, remote_of, text_of

FORM = {
    "type": "Form",
    "props": {
        "title": "Vault sign-in",
        "description": "vault needs your credentials to open the vault.",
        "fields": [
            {"id": "username", "type": "email", "label": "Username", "required": True},
            {"id": "password", "type": "password", "label": "Password", "required": True},
            {"id": "remember_me", "type": "checkbox", "label": "Remember me"},
        ],
    },
}


class FormExecutor(AgentExecutor):
    """Asks for credentials with a Form on a task's first message; completes with them on the follow-up."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        data = get_data_parts(list(context.message.parts))
        task = context.current_task
        self.calls.append({"task_id": context.task_id, "continued": task is not None, "data": data})
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        values = next((d for d in data if isinstance(d, dict) and "username" in d), None)
        if values is None:
            form = new_data_part(FORM)
            ParseDict({"mimeType": MIME_TYPE}, form.metadata)
            await updater.requires_input(updater.new_agent_message([form]))
            return
        memory = "will remember you" if values.get("remember_me") else "will not remember you"
        opened = f"Vault opened for {values['username']} (password of {len(values['password'])} chars); {memory}."
        await updater.complete(updater.new_agent_message([new_text_part(opened)]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()


class FormPeer:
    """The a2a-sdk JSON-RPC app (v0.3 compat) under uvicorn in a thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.executor = FormExecutor()
        card = AgentCard(
            name="Vault",
            description="Opens the vault once it has credentials.",
            version="1.0.0",
            supported_interfaces=[
                AgentInterface(url=self.url + "/", protocol_binding="JSONRPC", protocol_version="0.3")
            ],
            capabilities=AgentCapabilities(streaming=False, push_notifications=False),
            default_input_modes=["text/plain", "application/json"],
            default_output_modes=["text/plain", "application/json"],
            skills=[AgentSkill(id="open-vault", name="Open vault", description="Opens the vault", tags=["vault"])],
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
            assert time.monotonic() < deadline, "the vault agent did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def vault() -> Iterator[FormPeer]:
    server = FormPeer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def send(
    text: str | None = None, *, data: dict[str, Any] | None = None, task: dict[str, Any] | None = None, rid: str = "1"
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if text is not None:
        parts.append({"kind": "text", "text": text})
    if data is not None:
        parts.append({"kind": "data", "data": data})
    message: dict[str, Any] = {"role": "user", "parts": parts, "metadata": {"agent": "vault"}}
    if task is not None:
        message["taskId"] = task["id"]
    return {"jsonrpc": "2.0", "id": rid, "method": "message/send", "params": {"message": message}}


async def ask(airlock: Airlock, vault: FormPeer, headers: dict[str, str] | None = None) -> dict[str, Any]:
    await add_peer(airlock, vault.url, name="vault")
    reply = await airlock.rpc(send("open the vault"), headers)
    task = reply["result"]
    assert task["status"]["state"] == "input-required", reply
    return task


def values_sent(vault: FormPeer) -> list[dict[str, Any]]:
    """Every DataPart of values the downstream agent received, over all its calls."""
    return [d for call in vault.calls for d in call["data"] if isinstance(d, dict) and "username" in d]


async def test_downstream_form_is_an_input_request_answered_through_the_gateway(
    airlock: Airlock, vault: FormPeer
) -> None:
    password = secrets.token_urlsafe(24)
    task = await ask(airlock, vault)
    assert len(vault.calls) == 1 and vault.calls[0]["continued"] is False
    downstream = remote_of(task)["taskId"]
    [part] = task["status"]["message"]["parts"]
    assert part["kind"] == "data" and part["metadata"]["mimeType"] == MIME_TYPE
    assert [f["id"] for f in part["data"]["props"]["fields"]] == ["username", "password", "remember_me"]

    status, listed = await pending(airlock, bearer())
    assert status == 200
    [row] = listed["messages"]
    assert row["message_id"] == task["id"] and row["kind"] == "input"
    assert row["form"]["props"]["title"] == "Vault sign-in"

    # the mesh checks the values against the downstream agent's form before anything is forwarded
    resp = await airlock.resolve(task["id"], {"username": "ada@example.com", "pass_word": password})
    await error_of(resp, 400, field="pass_word")
    resp = await airlock.resolve(task["id"], {"username": "ada", "password": password})
    await error_of(resp, 400, field="username")
    assert len(vault.calls) == 1

    values = {"username": "ada@example.com", "password": password, "remember_me": True}
    resp = await airlock.resolve(task["id"], values)
    text = await resp.text()
    assert resp.status == 200, text
    body = json.loads(text)
    assert body["decision"] == "submit" and body["new_state"] == "completed"
    answer = f"Vault opened for ada@example.com (password of {len(password)} chars); will remember you."
    assert text_of(body["task"]) == answer
    assert password not in text

    # the downstream task was continued with the values, in clear, exactly once
    assert len(vault.calls) == 2
    assert vault.calls[1]["task_id"] == downstream and vault.calls[1]["continued"] is True
    assert vault.calls[1]["data"] == [values]
    assert values_sent(vault) == [values]

    again = await airlock.resolve(task["id"], values)
    await error_of(again, 409)
    await asyncio.sleep(0.1)
    assert len(vault.calls) == 2

    got = await airlock.rpc(
        {"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task["id"], "historyLength": 50}}
    )
    result = got["result"]
    assert result["status"]["state"] == "completed"
    assert text_of(result) == answer
    assert remote_of(result)["taskId"] == downstream
    dumped = json.dumps(got)
    assert password not in dumped and MASK in dumped
    assert password.encode() not in db_bytes(airlock.home)
    status, listed = await pending(airlock, bearer())
    assert status == 200 and listed["messages"] == []


async def test_callback_token_answers_a_downstream_form(airlock: Airlock, vault: FormPeer) -> None:
    task = await ask(airlock, vault)
    approval_id = task["metadata"]["airlock"]["inputRequestId"]
    token = callback_token(airlock.mesh.config.callback_key, approval_id)
    values = {"username": "bob@example.com", "password": "hunter2-but-longer"}
    resp = await airlock.gateway.post(
        f"/messages/{task['id']}/resolve", json={"callback_token": token, "resolution": values}
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["new_state"] == "completed"
    assert "bob@example.com" in text_of(body["task"]) and "will not remember you" in text_of(body["task"])
    assert values_sent(vault) == [values]


async def test_the_sender_answers_a_downstream_form_over_a2a(airlock: Airlock, vault: FormPeer) -> None:
    sender = bearer("carol", "agent")
    task = await ask(airlock, vault, sender)
    password = secrets.token_urlsafe(24)
    values = {"username": "carol@example.com", "password": password, "remember_me": False}
    # someone else without a resolving role cannot answer for carol, and nothing is forwarded
    other = await airlock.rpc(send(data=values, task=task, rid="2"), bearer("mallory", "agent"))
    assert other["error"]["data"]["status"] == 403, other
    assert values_sent(vault) == []
    reply = await airlock.rpc(send(data=values, task=task, rid="3"), sender)
    assert "result" in reply, reply
    assert reply["result"]["status"]["state"] == "completed"
    assert "carol@example.com" in text_of(reply["result"])
    assert password not in json.dumps(reply)
    assert values_sent(vault) == [values]
    approval = await airlock.mesh.store.latest_approval(task["id"])
    assert approval is not None and approval.status == "submitted" and approval.surface == "a2a"


async def test_a2a_answer_and_gateway_resolve_race_forward_once(airlock: Airlock, vault: FormPeer) -> None:
    sender = bearer("carol", "agent")
    task = await ask(airlock, vault, sender)
    values = {"username": "carol@example.com", "password": "pw-one", "remember_me": True}
    over_a2a, over_gateway = await asyncio.gather(
        airlock.rpc(send(data=values, task=task, rid="2"), sender),
        airlock.resolve(task["id"], {**values, "username": "bob@example.com"}),
    )
    a2a_won = "result" in over_a2a
    assert a2a_won != (over_gateway.status == 200), (over_a2a, over_gateway.status)
    if a2a_won:
        await error_of(over_gateway, 409)
    else:
        assert over_a2a["error"]["data"]["status"] == 409, over_a2a
    sent = values_sent(vault)
    assert len(sent) == 1
    assert sent[0]["username"] == ("carol@example.com" if a2a_won else "bob@example.com")
    approval = await airlock.mesh.store.latest_approval(task["id"])
    assert approval is not None and approval.status != PENDING


HOLD_VAULT = {
    "name": "hold_vault",
    "scope_type": "agent",
    "agents": ["vault"],
    "enforcement": "require_approval",
    "evaluator": {"plugin": "always", "config": {}},
}


async def test_a_held_answer_keeps_no_password_and_is_forwarded_in_clear_once_approved(
    airlock: Airlock, vault: FormPeer
) -> None:
    task = await ask(airlock, vault)
    await airlock.add_policy(HOLD_VAULT)  # from now on every message to vault waits for a person
    password = secrets.token_urlsafe(24)
    values = {"username": "ada@example.com", "password": password}
    resp = await airlock.resolve(task["id"], values)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["new_state"] == "input-required"  # the answer's forward is held by the policy
    assert values_sent(vault) == []
    status, listed = await pending(airlock, bearer())
    assert status == 200 and [r["kind"] for r in listed["messages"]] == ["approval"]
    assert password not in json.dumps(listed)
    assert password.encode() not in db_bytes(airlock.home)

    resp = await airlock.resolve(task["id"], {"decision": "approve"}, bearer("bob", "approver"))
    body = await resp.json()
    assert resp.status == 200, body
    assert body["new_state"] == "completed"
    assert text_of(body["task"]).startswith("Vault opened for ada@example.com")
    assert values_sent(vault) == [values]
    assert password.encode() not in db_bytes(airlock.home)


async def test_a_held_answer_is_not_forwarded_masked_after_a_restart(tmp_path: Path, vault: FormPeer) -> None:
    password = secrets.token_urlsafe(24)
    async with start_airlock(tmp_path) as first:
        task = await ask(first, vault)
        await first.add_policy(HOLD_VAULT)
        resp = await first.resolve(task["id"], {"username": "ada@example.com", "password": password})
        assert (await resp.json())["new_state"] == "input-required"
    async with start_airlock(tmp_path) as second:
        assert await second.mesh.agent_admin.load_agents() == 1
        resp = await second.resolve(task["id"], {"decision": "approve"}, bearer("bob", "approver"))
        body = await resp.json()
        assert resp.status == 200, body
        assert body["new_state"] == "failed"
        assert "send the request again" in text_of(body["task"])
        assert values_sent(vault) == []  # neither the password nor its mask reached the agent
        assert password.encode() not in db_bytes(tmp_path)
