"""Input requests: an agent that ends its turn in ``input-required`` with a Form asks a person for values.

The request is listed next to policy holds, answered through the gateway (JWT or callback token) or the
A2A way (``message/send`` with the task's id and a DataPart of values), and the values reach the agent
once, as the task's next turn. Sensitive values are masked everywhere else.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from a2ui import MASK, MIME_TYPE, form_part, make_form
from mesh.agents.base import Agent, Execution, Plan, Reply, TurnContext, text_reply
from mesh.core.events import Event
from mesh.credentials import callback_token
from mesh.store import PENDING
from mesh.wire.models import DataPart, Message, TaskState
from tests.conftest import GUIDE_POLICY, Airlock, bearer, start_airlock
from tests.gateway.conftest import Clock, Receiver, control, db_bytes, error_of, pending, receiver

__all__ = ["control", "receiver"]  # the fixtures, shared with the gateway tests

CONNECT = "Connect to the production database"
GUIDE_VALUES = {"username": "john@example.com", "password": "s3cret", "remember_me": True}

SECRET_PASSWORD = secrets.token_urlsafe(24)
SECRET_KEY = secrets.token_urlsafe(24)

FORM_TITLE = "Deployment settings"
TEST_FORM = make_form(
    FORM_TITLE,
    "form-agent needs a few settings before it deploys.",
    [
        {"id": "name", "type": "text", "label": "Name", "required": True, "maxLength": 20},
        {"id": "contact", "type": "email", "label": "Contact"},
        {"id": "password", "type": "password", "label": "Password", "required": True},
        {"id": "replicas", "type": "number", "label": "Replicas", "min": 1, "max": 5},
        {"id": "notify", "type": "checkbox", "label": "Notify me"},
        {
            "id": "region",
            "type": "select",
            "label": "Region",
            "options": [{"value": "eu", "label": "Europe"}, {"value": "us", "label": "US"}],
        },
        {
            "id": "mode",
            "type": "action",
            "options": [{"value": "deploy", "label": "Deploy"}, {"value": "dry_run", "label": "Dry run"}],
        },
        {"id": "api_key", "type": "text", "label": "API key", "sensitive": True},
    ],
)
TEST_VALUES: dict[str, Any] = {
    "name": "nightly",
    "contact": "ops@example.com",
    "password": SECRET_PASSWORD,
    "replicas": 3,
    "notify": True,
    "region": "eu",
    "mode": "deploy",
    "api_key": SECRET_KEY,
}


class FormAgent(Agent):
    """Asks for deployment settings with a form; completes with the non-secret values once it has them."""

    name = "form-agent"
    description = "Asks for settings with a form."

    def __init__(self) -> None:
        self.received: list[tuple[Message, TurnContext]] = []

    async def plan(self, message: Message, ctx: TurnContext) -> Plan:
        self.received.append((message.model_copy(deep=True), ctx))
        for part in message.data_parts():
            if "name" in part.data:
                values = part.data
                text = f"Deployed {values['name']} to {values.get('region', 'default')} ({values['mode']})."
                return Plan(reply=text_reply(TaskState.COMPLETED, text))
        return Plan(reply=Reply(state=TaskState.INPUT_REQUIRED, parts=[form_part(TEST_FORM)]))

    async def execute(self, execution: Execution, ctx: TurnContext) -> Reply:
        return text_reply(TaskState.FAILED, "form-agent runs no tools")


# ------------------------------------------------------------------ helpers


def send(
    text: str | None = None,
    *,
    data: dict[str, Any] | None = None,
    task: dict[str, Any] | None = None,
    agent: str | None = None,
    rid: str = "1",
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if text is not None:
        parts.append({"kind": "text", "text": text})
    if data is not None:
        parts.append({"kind": "data", "data": data})
    message: dict[str, Any] = {"role": "user", "parts": parts}
    if task is not None:
        message["taskId"] = task["id"]
    if agent is not None:
        message["metadata"] = {"agent": agent}
    return {"jsonrpc": "2.0", "id": rid, "method": "message/send", "params": {"message": message}}


def text_of(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in task["status"].get("message", {}).get("parts", []))


async def get_task(airlock: Airlock, task_id: str, history: int | None = 100) -> dict[str, Any]:
    params: dict[str, Any] = {"id": task_id}
    if history is not None:
        params["historyLength"] = history
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": params})
    return reply["result"]


async def ask_credentials(airlock: Airlock, headers: dict[str, str] | None = None) -> dict[str, Any]:
    reply = await airlock.rpc(send(CONNECT), headers)
    task = reply["result"]
    assert task["status"]["state"] == "input-required", reply
    return task


async def ask_form(airlock: Airlock, headers: dict[str, str] | None = None) -> tuple[FormAgent, dict[str, Any]]:
    agent = airlock.mesh.agents.get("form-agent")
    if agent is None:
        agent = FormAgent()
        airlock.mesh.agents.add(agent, default=False)
    assert isinstance(agent, FormAgent)
    reply = await airlock.rpc(send("deploy please", agent="form-agent"), headers)
    task = reply["result"]
    assert task["status"]["state"] == "input-required", reply
    return agent, task


def request_id(task: dict[str, Any]) -> str:
    return task["metadata"]["airlock"]["inputRequestId"]


def answers_seen(agent: FormAgent) -> list[Message]:
    return [m for m, _ in agent.received if m.data_parts()]


async def still_pending(airlock: Airlock, task_id: str) -> bool:
    approval = await airlock.mesh.store.latest_approval(task_id)
    return approval is not None and approval.status == PENDING


# ------------------------------------------------------------------ listing


async def test_pending_rows_say_whether_approval_or_input(airlock: Airlock) -> None:
    await airlock.add_policy(GUIDE_POLICY)
    held = await airlock.hold()
    asked = await ask_credentials(airlock)
    [part] = asked["status"]["message"]["parts"]
    assert part["metadata"] == {"mimeType": MIME_TYPE}
    assert [f["id"] for f in part["data"]["props"]["fields"]] == ["username", "password", "remember_me"]

    status, body = await pending(airlock, bearer())
    assert status == 200, body
    kinds = {row["message_id"]: row["kind"] for row in body["messages"]}
    assert kinds == {held["id"]: "approval", asked["id"]: "input"}
    row = next(r for r in body["messages"] if r["kind"] == "input")
    assert row["approval_id"] == request_id(asked)
    assert row["state"] == "input-required"
    fields = {f["id"]: f for f in row["form"]["props"]["fields"]}
    assert fields["username"]["type"] == "email" and fields["username"]["required"] is True
    assert fields["password"]["type"] == "password" and fields["password"]["required"] is True
    assert fields["remember_me"]["type"] == "checkbox"


async def test_a_reply_without_a_form_makes_no_input_request(airlock: Airlock) -> None:
    task = (await airlock.rpc(send("hello there")))["result"]
    assert task["status"]["state"] == "input-required"
    assert await airlock.mesh.store.latest_approval(task["id"]) is None
    status, body = await pending(airlock, bearer())
    assert status == 200 and body["messages"] == []


# ------------------------------------------------------------------ the demo's credentials form


@pytest.mark.parametrize(("remember", "memory"), [(True, "will remember you"), (False, "will not remember you")])
async def test_guide_values_complete_the_demo_task(airlock: Airlock, remember: bool, memory: str) -> None:
    task = await ask_credentials(airlock)
    resp = await airlock.resolve(task["id"], {**GUIDE_VALUES, "remember_me": remember})
    text = await resp.text()
    assert resp.status == 200, text
    body = json.loads(text)
    assert body["decision"] == "submit"
    assert body["new_state"] == "completed"
    assert body["task"]["id"] == task["id"]
    answer = text_of(body["task"])
    assert "john@example.com" in answer and memory in answer
    if not remember:
        assert "will remember you" not in answer
    assert "s3cret" not in text
    status, listed = await pending(airlock, bearer())
    assert status == 200 and listed["messages"] == []
    assert (await get_task(airlock, task["id"]))["status"]["state"] == "completed"


async def test_wrong_field_id_is_400_naming_it(airlock: Airlock) -> None:
    task = await ask_credentials(airlock)
    resp = await airlock.resolve(task["id"], {**GUIDE_VALUES, "user_name": "x"})
    await error_of(resp, 400, field="user_name")
    resp = await airlock.resolve(task["id"], {"username": "john@example.com", "remember_me": True})
    await error_of(resp, 400, field="password")
    assert await still_pending(airlock, task["id"])


async def test_callback_token_answers(airlock: Airlock) -> None:
    task = await ask_credentials(airlock)
    approval_id = request_id(task)
    resp = await airlock.gateway.post(
        f"/messages/{task['id']}/resolve",
        json={"callback_token": callback_token(b"x" * 32, approval_id), "resolution": GUIDE_VALUES},
    )
    await error_of(resp, 401)
    assert await still_pending(airlock, task["id"])
    token = callback_token(airlock.mesh.config.callback_key, approval_id)
    resp = await airlock.gateway.post(
        f"/messages/{task['id']}/resolve", json={"callback_token": token, "resolution": GUIDE_VALUES}
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["new_state"] == "completed"
    assert "john@example.com" in text_of(body["task"])
    approval = await airlock.mesh.store.get_approval(approval_id)
    assert approval is not None and approval.status == "submitted" and approval.surface == "callback"


async def test_second_answer_is_409(airlock: Airlock) -> None:
    task = await ask_credentials(airlock)
    first = await airlock.resolve(task["id"], GUIDE_VALUES)
    assert first.status == 200, await first.text()
    second = await airlock.resolve(task["id"], {**GUIDE_VALUES, "remember_me": False})
    await error_of(second, 409)
    token = callback_token(airlock.mesh.config.callback_key, request_id(task))
    third = await airlock.gateway.post(
        f"/messages/{task['id']}/resolve", json={"callback_token": token, "resolution": GUIDE_VALUES}
    )
    await error_of(third, 409)
    done = await get_task(airlock, task["id"])
    assert done["status"]["state"] == "completed"
    assert "will remember you" in text_of(done)


async def test_an_expired_input_request_is_410(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock, timeout_s=60) as airlock:
        task = await ask_credentials(airlock)
        clock.advance(30)
        assert await airlock.mesh.expiry.expire_due() == 0
        assert await still_pending(airlock, task["id"])
        clock.advance(31)
        assert await airlock.mesh.expiry.expire_due() == 1
        await error_of(await airlock.resolve(task["id"], GUIDE_VALUES), 410)
        reply = await airlock.rpc(send(data=GUIDE_VALUES, task=task, rid="2"))
        assert "error" in reply, reply
        assert (await get_task(airlock, task["id"]))["status"]["state"] == "rejected"
        status, body = await pending(airlock, bearer())
        assert status == 200 and body["messages"] == []


async def test_answering_past_the_deadline_is_410_without_the_sweeper(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock, timeout_s=60) as airlock:
        agent, task = await ask_form(airlock)
        clock.advance(61)
        await error_of(await airlock.resolve(task["id"], TEST_VALUES), 410)
        assert answers_seen(agent) == []
        approval = await airlock.mesh.store.latest_approval(task["id"])
        assert approval is not None and approval.status == "expired"


# ------------------------------------------------------------------ answering the A2A way


async def test_the_sender_answers_over_a2a(airlock: Airlock) -> None:
    sender = bearer("carol", "agent")
    task = await ask_credentials(airlock, sender)
    reply = await airlock.rpc(send(data=GUIDE_VALUES, task=task, rid="2"), sender)
    assert "result" in reply, reply
    done = reply["result"]
    assert done["id"] == task["id"]
    assert done["status"]["state"] == "completed"
    assert "john@example.com" in text_of(done) and "will remember you" in text_of(done)
    assert "s3cret" not in json.dumps(reply)
    approval = await airlock.mesh.store.get_approval(request_id(task))
    assert approval is not None and approval.status == "submitted"
    assert approval.surface == "a2a" and approval.resolved_by == "carol"


async def test_a2a_answer_takes_the_same_checks(airlock: Airlock) -> None:
    sender = bearer("carol", "agent")
    agent, task = await ask_form(airlock, sender)
    reply = await airlock.rpc(send(data={**TEST_VALUES, "replicas": "three"}, task=task, rid="2"), sender)
    assert reply["error"]["code"] == -32602, reply
    assert reply["error"]["data"]["status"] == 400
    assert reply["error"]["data"]["field"] == "replicas"
    assert SECRET_PASSWORD not in json.dumps(reply)
    # someone else without a resolving role may not answer for the sender
    other = await airlock.rpc(send(data=TEST_VALUES, task=task, rid="3"), bearer("mallory", "agent"))
    assert other["error"]["data"]["status"] == 403, other
    assert await still_pending(airlock, task["id"])
    assert answers_seen(agent) == []
    # an approver may answer for the sender
    answered = await airlock.rpc(send(data=TEST_VALUES, task=task, rid="4"), bearer("bob", "approver"))
    assert answered["result"]["status"]["state"] == "completed", answered
    assert len(answers_seen(agent)) == 1


@pytest.mark.parametrize("rounds", [6])
async def test_a2a_answer_and_gateway_resolve_race(airlock: Airlock, rounds: int) -> None:
    sender = bearer("carol", "agent")
    for i in range(rounds):
        agent, task = await ask_form(airlock, sender)
        before = len(answers_seen(agent))
        over_a2a, over_gateway = await asyncio.gather(
            airlock.rpc(send(data=TEST_VALUES, task=task, rid=f"a{i}"), sender),
            airlock.resolve(task["id"], {**TEST_VALUES, "region": "us"}),
        )
        a2a_won = "result" in over_a2a
        gateway_won = over_gateway.status == 200
        assert a2a_won != gateway_won, (over_a2a, over_gateway.status)
        if a2a_won:
            await error_of(over_gateway, 409)
            assert over_a2a["result"]["status"]["state"] == "completed"
        else:
            assert over_a2a["error"]["data"]["status"] == 409, over_a2a
            assert (await over_gateway.json())["new_state"] == "completed"
        # the agent got exactly one answer: the winner's
        answers = answers_seen(agent)[before:]
        assert len(answers) == 1
        assert answers[0].data_parts()[0].data["region"] == ("eu" if a2a_won else "us")
        done = await get_task(airlock, task["id"], history=None)
        assert done["status"]["state"] == "completed"
        assert ("to eu" if a2a_won else "to us") in text_of(done)


@pytest.mark.parametrize(
    "caller",
    [("bot", "agent"), ("alice", "agent", "approver"), ("root", "admin")],
    ids=["agent", "agent-and-approver", "admin"],
)
async def test_a_policy_hold_is_not_answered_over_a2a_by_its_caller(airlock: Airlock, caller: tuple[str, ...]) -> None:
    await airlock.add_policy(GUIDE_POLICY)
    headers = bearer(*caller)
    task = await airlock.hold(headers=headers)
    reply = await airlock.rpc(send(data={"decision": "approve"}, task=task, rid="2"), headers)
    assert reply["error"]["data"]["status"] == 403 and "cannot resolve" in reply["error"]["message"], reply
    assert await still_pending(airlock, task["id"])
    assert await airlock.executions() == 0
    # nor by another caller without a resolving role
    other = await airlock.rpc(send(data={"decision": "approve"}, task=task, rid="3"), bearer("eve", "agent"))
    assert other["error"]["data"]["status"] == 403, other
    assert await still_pending(airlock, task["id"])
    assert await airlock.executions() == 0
    _, listed = await pending(airlock, bearer())
    assert [(r["message_id"], r["kind"]) for r in listed["messages"]] == [(task["id"], "approval")]
    # an approver who did not cause it may answer it the A2A way
    approved = await airlock.rpc(send(data={"decision": "approve"}, task=task, rid="4"), bearer("bob", "approver"))
    assert approved["result"]["status"]["state"] == "completed", approved
    assert not await still_pending(airlock, task["id"])
    assert await airlock.executions() == 1
    approval = await airlock.mesh.store.latest_approval(task["id"])
    assert approval is not None and approval.status == "approved" and approval.resolved_by == "bob"
    assert approval.surface == "a2a"


# ------------------------------------------------------------------ the agent's next turn


async def test_the_next_turn_is_one_datapart_of_values_naming_the_form(airlock: Airlock) -> None:
    agent, task = await ask_form(airlock, bearer("carol", "agent"))
    approval_id = request_id(task)
    assert len(agent.received) == 1
    resp = await airlock.resolve(task["id"], TEST_VALUES, bearer("bob", "approver"))
    body = await resp.json()
    assert resp.status == 200, body
    assert body["new_state"] == "completed"
    assert text_of(body["task"]) == "Deployed nightly to eu (deploy)."
    assert len(agent.received) == 2
    message, ctx = agent.received[1]
    assert message.role == "user"
    assert message.task_id == task["id"]
    assert len(message.parts) == 1
    [part] = message.parts
    assert isinstance(part, DataPart)
    assert part.data == TEST_VALUES  # in clear, once: the agent needs the secret to use it
    assert message.metadata is not None
    assert message.metadata["airlock"]["form"] == FORM_TITLE
    assert message.metadata["airlock"]["inputRequest"] == approval_id
    assert ctx.task_id == task["id"]
    done = await get_task(airlock, task["id"])
    assert done["status"]["state"] == "completed"


async def test_optional_fields_may_be_left_out(airlock: Airlock) -> None:
    agent, task = await ask_form(airlock)
    resp = await airlock.resolve(task["id"], {"name": "n", "password": "p", "mode": "dry_run"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["new_state"] == "completed"
    assert answers_seen(agent)[0].data_parts()[0].data == {"name": "n", "password": "p", "mode": "dry_run"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": 5}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 21}, "name"),
        ({"name": None}, "name"),
        ({"contact": "not-an-email"}, "contact"),
        ({"contact": 7}, "contact"),
        ({"password": 1234}, "password"),
        ({"password": None}, "password"),
        ({"replicas": "three"}, "replicas"),
        ({"replicas": True}, "replicas"),
        ({"replicas": 9}, "replicas"),
        ({"replicas": 0}, "replicas"),
        ({"notify": "yes"}, "notify"),
        ({"notify": 1}, "notify"),
        ({"region": "mars"}, "region"),
        ({"region": ["eu"]}, "region"),
        ({"mode": "approve"}, "mode"),
        ({"mode": None}, "mode"),
        ({"api_key": 42}, "api_key"),
        ({"decision": "approve"}, "decision"),
        ({"extra": "value"}, "extra"),
    ],
)
async def test_each_type_is_checked(airlock: Airlock, change: dict[str, Any], field: str) -> None:
    agent, task = await ask_form(airlock)
    values = {k: v for k, v in {**TEST_VALUES, **change}.items() if v is not None}
    resp = await airlock.resolve(task["id"], values)
    err = await error_of(resp, 400, field=field)
    assert field in err["message"]
    text = json.dumps(err)
    assert SECRET_PASSWORD not in text and SECRET_KEY not in text
    assert answers_seen(agent) == []
    assert await still_pending(airlock, task["id"])


async def test_resolution_must_be_an_object(airlock: Airlock) -> None:
    agent, task = await ask_form(airlock)
    await error_of(await airlock.resolve(task["id"], ["not", "an", "object"]), 400)  # type: ignore[arg-type]
    assert answers_seen(agent) == []


# ------------------------------------------------------------------ sensitive values


async def test_sensitive_values_are_masked_everywhere_but_the_agent(airlock: Airlock, receiver: Receiver) -> None:
    admin = bearer("root", "admin")
    for name, config in (
        ("asks", {"url": receiver.url, "input_requests": True}),
        ("holds-only", {"url": receiver.url}),
    ):
        resp = await airlock.gateway.post(
            "/internal/channels/new", json={"name": name, "type": "webhook", "config": config}, headers=admin
        )
        assert resp.status == 201, await resp.text()

    events: list[Event] = []
    async with airlock.mesh.events.subscribe() as queue:
        agent, task = await ask_form(airlock, bearer("carol", "agent"))
        [note] = await receiver.wait(1)
        assert note["event"] == "input.requested"
        assert note["message_id"] == task["id"] and note["approval_id"] == request_id(task)
        assert note["form"]["props"]["title"] == FORM_TITLE
        token = note["callback_token"]
        assert token == callback_token(airlock.mesh.config.callback_key, request_id(task))

        resp = await airlock.gateway.post(
            f"/messages/{task['id']}/resolve", json={"callback_token": token, "resolution": TEST_VALUES}
        )
        resolved_text = await resp.text()
        assert resp.status == 200, resolved_text
        assert json.loads(resolved_text)["new_state"] == "completed"
        await asyncio.sleep(0.1)
        while not queue.empty():
            events.append(queue.get_nowait())

    # the agent got the values once, in clear
    [answer] = answers_seen(agent)
    assert answer.data_parts()[0].data["password"] == SECRET_PASSWORD
    assert answer.data_parts()[0].data["api_key"] == SECRET_KEY

    secrets_ = (SECRET_PASSWORD, SECRET_KEY)
    assert {e.kind for e in events} >= {"approval.created", "approval.resolved", "task.updated"}
    events_text = json.dumps([{"kind": e.kind, "data": e.data} for e in events], default=str)
    assert not any(s in events_text for s in secrets_)
    assert not any(s in resolved_text for s in secrets_)

    # only the channel that takes input requests was told (the request, then how it ended), and no
    # notification carries a value
    await receiver.wait(2)
    await asyncio.sleep(0.2)
    assert [b["type"] for b in receiver.bodies] == ["input.requested", "approval.resolved"]
    assert {b["approval_id"] for b in receiver.bodies} == {task["metadata"]["airlock"]["inputRequestId"]}
    assert not any(s in json.dumps(receiver.bodies) for s in secrets_)

    fetched = await get_task(airlock, task["id"])
    fetched_text = json.dumps(fetched)
    assert not any(s in fetched_text for s in secrets_)
    turns = [m for m in fetched["history"] if m["role"] == "user" and m["parts"][0].get("kind") == "data"]
    assert len(turns) == 1, fetched["history"]
    kept = turns[0]["parts"][0]["data"]
    assert kept["password"] == MASK and kept["api_key"] == MASK
    assert kept["name"] == "nightly" and kept["replicas"] == 3 and kept["region"] == "eu"

    listed = await airlock.rpc({"jsonrpc": "2.0", "id": "l", "method": "tasks/list", "params": {"historyLength": 100}})
    assert not any(s in json.dumps(listed) for s in secrets_)

    approval = await airlock.mesh.store.get_approval(request_id(task))
    assert approval is not None and approval.values is not None
    assert approval.values["password"] == MASK and approval.values["api_key"] == MASK

    raw = db_bytes(airlock.home)
    assert not any(s.encode() in raw for s in secrets_)


async def test_a2a_answer_masks_sensitive_values_too(airlock: Airlock) -> None:
    sender = bearer("carol", "agent")
    agent, task = await ask_form(airlock, sender)
    reply = await airlock.rpc(send(data=TEST_VALUES, task=task, rid="2"), sender)
    assert reply["result"]["status"]["state"] == "completed", reply
    assert answers_seen(agent)[0].data_parts()[0].data == TEST_VALUES
    secrets_ = (SECRET_PASSWORD, SECRET_KEY)
    assert not any(s in json.dumps(reply) for s in secrets_)
    fetched = json.dumps(await get_task(airlock, task["id"]))
    assert not any(s in fetched for s in secrets_)
    assert MASK in fetched
    raw = db_bytes(airlock.home)
    assert not any(s.encode() in raw for s in secrets_)


async def test_a_webhook_channel_without_the_flag_is_not_told(
    airlock: Airlock, receiver: Receiver, control: Receiver
) -> None:
    for name, config in (
        ("holds-only", {"url": receiver.url}),
        ("asks", {"url": control.url, "input_requests": True}),
    ):
        resp = await airlock.gateway.post(
            "/internal/channels/new",
            json={"name": name, "type": "webhook", "config": config},
            headers=bearer("root", "admin"),
        )
        assert resp.status == 201
    _, first = await ask_form(airlock)
    await control.wait(1)
    # a second request, written after the control heard of the first: the outbox run that sends it starts
    # after the run that would have carried a row of the first request to "holds-only" has ended
    _, second = await ask_form(airlock)
    notes = await control.wait(2)
    assert [(n["event"], n["message_id"]) for n in notes] == [
        ("input.requested", first["id"]),
        ("input.requested", second["id"]),
    ]
    assert receiver.bodies == []


async def test_a_second_form_from_the_agent_makes_a_new_input_request(airlock: Airlock) -> None:
    """An agent may ask again after an answer; the new request is listed and answerable like the first."""

    class TwoStep(FormAgent):
        name = "two-step"

        async def plan(self, message: Message, ctx: TurnContext) -> Plan:
            self.received.append((message.model_copy(deep=True), ctx))
            if len(answers_seen(self)) == 2:
                return Plan(reply=text_reply(TaskState.COMPLETED, "Both answers received."))
            return Plan(reply=Reply(state=TaskState.INPUT_REQUIRED, parts=[form_part(TEST_FORM)]))

    agent = TwoStep()
    airlock.mesh.agents.add(agent, default=False)
    task = (await airlock.rpc(send("go", agent="two-step")))["result"]
    first = request_id(task)
    resp = await airlock.resolve(task["id"], TEST_VALUES)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["new_state"] == "input-required"
    second = request_id(body["task"])
    assert second != first
    _, listed = await pending(airlock, bearer())
    assert [(r["approval_id"], r["kind"]) for r in listed["messages"]] == [(second, "input")]
    resp = await airlock.resolve(task["id"], TEST_VALUES)
    assert (await resp.json())["new_state"] == "completed"
    assert len(answers_seen(agent)) == 2


async def test_an_answer_whose_next_turn_cannot_run_fails_the_task_instead_of_leaving_it_working(
    airlock: Airlock,
) -> None:
    agent, task = await ask_form(airlock, bearer("carol", "agent"))

    async def refuse(message: Message, ctx: TurnContext) -> Plan:
        raise ValueError("the settings service is gone")

    agent.plan = refuse  # type: ignore[method-assign]
    resp = await airlock.resolve(task["id"], TEST_VALUES, bearer("bob", "approver"))
    body = await resp.json()
    assert resp.status == 200, body  # the answer was recorded: not a 500
    assert body["new_state"] == "failed" and "could not go on" in text_of(body["task"])
    assert "settings service is gone" in text_of(body["task"])
    stored = await get_task(airlock, task["id"])
    assert stored["status"]["state"] == "failed"
    await error_of(await airlock.resolve(task["id"], TEST_VALUES, bearer("bob", "approver")), 409)
