"""``message/stream`` and ``tasks/resubscribe`` over real HTTP: Server-Sent Events, one JSON-RPC response per
``data:`` line, the Task first, the stream closed after an interrupted or terminal state."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import ClientResponse

from mesh.core.events import Event
from tests.conftest import GUIDE_TEXT, Airlock, bearer, guide_message, start_airlock, tool_message

FINAL_STATES = {"input-required", "auth-required", "completed", "canceled", "failed", "rejected"}


def streamed(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "method": "message/stream"}


def resubscribe(task_id: str, request_id: Any = "r") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tasks/resubscribe", "params": {"id": task_id}}


def get(task_id: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task_id}}


def parse_sse(text: str, request_id: Any) -> list[dict[str, Any]]:
    """Each event is one ``data: `` line holding one JSON-RPC response for the request's id."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        lines = block.splitlines()
        assert len(lines) == 1 and lines[0].startswith("data: "), block
        event = orjson.loads(lines[0][len("data: ") :])
        assert event["jsonrpc"] == "2.0"
        assert event["id"] == request_id
        assert ("result" in event) != ("error" in event)
        events.append(event)
    return events


async def open_stream(airlock: Airlock, body: dict[str, Any], headers: dict[str, str] | None = None):
    resp = await airlock.mesh_client.post("/", json=body, headers=headers if headers is not None else bearer())
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return resp


async def stream(airlock: Airlock, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[dict]:
    """Post a streaming request and read until the server closes the stream."""
    resp = await open_stream(airlock, body, headers)
    text = await asyncio.wait_for(resp.text(), timeout=10)
    return parse_sse(text, body.get("id"))


async def next_event(resp: ClientResponse, request_id: Any) -> dict[str, Any]:
    """Read one event off an open stream."""
    data = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), timeout=10)
    [event] = parse_sse(data.decode(), request_id)
    return event


def results(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert all("result" in e for e in events), events
    return [e["result"] for e in events]


def assert_ends_once(updates: list[dict[str, Any]]) -> None:
    """Only the last event is final, and it is a status update in an interrupted or terminal state."""
    last = updates[-1]
    assert last["kind"] == "status-update" and last["final"] is True
    assert last["status"]["state"] in FINAL_STATES
    assert all(not u.get("final") for u in updates[:-1])


# --- message/stream -------------------------------------------------------------------------------------------


async def test_echo_streams_task_then_input_required_and_closes(airlock: Airlock) -> None:
    events = results(await stream(airlock, streamed(guide_message("hello there", request_id="e1"))))
    assert [e["kind"] for e in events] == ["task", "status-update"]
    task, update = events
    assert task["status"]["state"] == "submitted"
    assert task["contextId"] == "session-123"
    assert update["taskId"] == task["id"] and update["contextId"] == "session-123"
    assert update["status"]["state"] == "input-required"
    assert update["final"] is True
    assert update["status"]["message"]["parts"][0]["text"] == "staging-db heard: hello there"
    got = (await airlock.rpc(get(task["id"])))["result"]
    assert got["status"]["state"] == "input-required"


async def test_guide_message_streams_the_hold_with_its_form(airlock: Airlock) -> None:
    await airlock.add_policy()
    events = results(await stream(airlock, streamed(guide_message(GUIDE_TEXT, request_id=7))))
    assert [e["kind"] for e in events] == ["task", "status-update"]
    task, update = events
    assert task["status"]["state"] == "submitted"
    assert_ends_once(events)
    assert update["status"]["state"] == "input-required"
    form = update["status"]["message"]["parts"][0]
    assert form["kind"] == "data" and form["data"]["type"] == "Form"
    assert form["metadata"]["mimeType"] == "application/json+a2ui"
    assert await airlock.executions() == 0
    got = (await airlock.rpc(get(task["id"])))["result"]
    assert got["status"]["state"] == "input-required"


async def test_allowed_tool_call_streams_to_completed(airlock: Airlock) -> None:
    body = streamed(tool_message("exec", {}, request_id="t1"))
    events = results(await stream(airlock, body))
    assert [e["kind"] for e in events] == ["task", "status-update"]
    assert events[0]["status"]["state"] == "submitted"
    assert events[1]["status"]["state"] == "completed"
    assert events[1]["status"]["message"]["parts"][0]["data"]["decision"] == "allow"
    assert_ends_once(events)


async def test_unheld_agent_run_streams_its_artifact_then_completed(airlock: Airlock) -> None:
    """Without a policy the guide's message runs at once: the artifact comes before the completed status."""
    events = results(await stream(airlock, streamed(guide_message(GUIDE_TEXT))))
    assert [e["kind"] for e in events] == ["task", "artifact-update", "status-update"]
    artifact = events[1]
    assert artifact["taskId"] == events[0]["id"]
    assert artifact["append"] is False and artifact["lastChunk"] is True
    assert artifact["artifact"]["parts"][1]["data"] == {"deleted": 42}
    assert events[2]["status"]["state"] == "completed"
    assert await airlock.executions() == 1


async def test_follow_up_streams_the_task_as_it_stands_then_the_new_turn(airlock: Airlock) -> None:
    first = results(await stream(airlock, streamed(guide_message("one"))))
    task_id = first[0]["id"]
    events = results(await stream(airlock, streamed(guide_message("two", request_id="f", taskId=task_id))))
    assert [e["kind"] for e in events] == ["task", "status-update"]
    assert events[0]["id"] == task_id
    assert events[0]["status"] == first[1]["status"]  # as it stood before this turn
    assert events[1]["status"]["message"]["parts"][0]["text"] == "staging-db heard: two"
    assert_ends_once(events)


async def test_follow_up_to_a_held_task_still_closes(airlock: Airlock) -> None:
    await airlock.add_policy()
    held = await airlock.hold()
    events = results(await stream(airlock, streamed(guide_message("any news?", taskId=held["id"]))))
    assert [e["kind"] for e in events] == ["task", "status-update"]
    assert events[1]["status"]["state"] == "input-required"
    assert_ends_once(events)


async def test_follow_up_to_an_unknown_task_is_a_not_found_event(airlock: Airlock) -> None:
    events = await stream(airlock, streamed(guide_message("hi", request_id="u", taskId="no-such-task")))
    assert [e["error"]["code"] for e in events] == [-32001]
    assert "not found" in events[0]["error"]["message"].lower()


async def test_follow_up_to_a_finished_task_ends_in_an_error(airlock: Airlock) -> None:
    done = results(await stream(airlock, streamed(tool_message("exec", {}))))
    follow = guide_message("again", request_id="x", taskId=done[0]["id"], contextId=done[0]["contextId"])
    events = await stream(airlock, streamed(follow))
    assert events[-1]["error"]["code"] == -32004
    assert all("result" in e for e in events[:-1])


@pytest.mark.parametrize(
    "params",
    [
        {"": "x"},
        {"message": {"role": "user", "parts": "not a list"}},
        {"message": {"role": "user"}},
    ],
)
async def test_bad_params_are_an_error_event(airlock: Airlock, params: dict[str, Any]) -> None:
    body = {"jsonrpc": "2.0", "id": "bad", "method": "message/stream", "params": params}
    events = await stream(airlock, body)
    assert [e["error"]["code"] for e in events] == [-32602]


async def test_bad_resubscribe_params_are_an_error_event(airlock: Airlock) -> None:
    body = {"jsonrpc": "2.0", "id": 5, "method": "tasks/resubscribe", "params": {"id": ""}}
    assert [e["error"]["code"] for e in await stream(airlock, body)] == [-32602]


async def test_stream_needs_a_token(airlock: Airlock) -> None:
    resp = await airlock.mesh_client.post("/", json=streamed(guide_message("hi")), headers={})
    assert resp.status == 401


async def test_client_that_leaves_after_the_first_event_does_not_stop_the_task(
    airlock: Airlock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await airlock.add_policy()
    gate = asyncio.Event()
    plan = airlock.demo.plan

    async def slow_plan(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await plan(*args, **kwargs)

    monkeypatch.setattr(airlock.demo, "plan", slow_plan)
    resp = await open_stream(airlock, streamed(guide_message(GUIDE_TEXT, request_id="d")))
    first = await next_event(resp, "d")
    task_id = first["result"]["id"]
    assert first["result"]["status"]["state"] == "submitted"
    resp.close()  # the client goes away while the turn is still waiting on the agent
    await asyncio.sleep(0.1)
    gate.set()
    deadline = time.monotonic() + 10
    while True:
        reply = await airlock.rpc(get(task_id))
        if "result" in reply and reply["result"]["status"]["state"] == "input-required":
            break
        assert time.monotonic() < deadline, reply
        await asyncio.sleep(0.05)
    assert (await airlock.resolve(task_id, {"decision": "approve"})).status == 200
    assert await airlock.executions() == 1


# --- tasks/resubscribe ------------------------------------------------------------------------------------------


async def test_resubscribe_follows_a_held_task_through_approval(airlock: Airlock) -> None:
    await airlock.add_policy()
    held = await airlock.hold()
    resp = await open_stream(airlock, resubscribe(held["id"], request_id="rs"))
    first = (await next_event(resp, "rs"))["result"]
    assert first["kind"] == "task" and first["id"] == held["id"]
    assert first["status"]["state"] == "input-required"

    async def approve() -> int:
        return (await airlock.resolve(held["id"], {"decision": "approve"})).status

    approval = asyncio.create_task(approve())
    rest = parse_sse(await asyncio.wait_for(resp.text(), timeout=10), "rs")
    assert await approval == 200
    events = results(rest)
    assert [e["kind"] for e in events] == ["status-update", "artifact-update", "status-update"]
    assert events[0]["status"]["state"] == "working" and events[0]["final"] is False
    assert events[1]["artifact"]["parts"][1]["data"] == {"deleted": 42}
    assert events[2]["status"]["state"] == "completed"
    assert_ends_once(events)
    assert all(e["taskId"] == held["id"] and e["contextId"] == "session-123" for e in events)
    assert await airlock.executions() == 1


async def test_resubscribe_sees_a_deny(airlock: Airlock) -> None:
    await airlock.add_policy()
    held = await airlock.hold()
    resp = await open_stream(airlock, resubscribe(held["id"]))
    assert (await next_event(resp, "r"))["result"]["status"]["state"] == "input-required"
    assert (await airlock.resolve(held["id"], {"decision": "deny"})).status == 200
    events = results(parse_sse(await asyncio.wait_for(resp.text(), timeout=10), "r"))
    assert [(e["kind"], e["status"]["state"]) for e in events] == [("status-update", "rejected")]
    assert_ends_once(events)
    assert await airlock.executions() == 0


async def test_resubscribe_reads_the_store_when_an_event_carries_no_task(
    airlock: Airlock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events relayed from another replica name the task but may not carry it."""
    await airlock.add_policy()
    held = await airlock.hold()
    publish = airlock.mesh.events.publish

    def bare_publish(event: Event, *, relay: bool = True) -> None:
        data = {k: v for k, v in event.data.items() if k != "task"}
        publish(Event(kind=event.kind, tenant=event.tenant, subject=event.subject, data=data), relay=relay)

    monkeypatch.setattr(airlock.mesh.events, "publish", bare_publish)
    resp = await open_stream(airlock, resubscribe(held["id"]))
    assert (await next_event(resp, "r"))["result"]["status"]["state"] == "input-required"
    assert (await airlock.resolve(held["id"], {"decision": "approve"})).status == 200
    events = results(parse_sse(await asyncio.wait_for(resp.text(), timeout=10), "r"))
    assert events[-1]["status"]["state"] == "completed"
    assert "artifact-update" in [e["kind"] for e in events]
    assert_ends_once(events)


async def test_resubscribe_to_a_finished_task_emits_it_and_closes(airlock: Airlock) -> None:
    done = results(await stream(airlock, streamed(tool_message("exec", {}))))
    events = results(await stream(airlock, resubscribe(done[0]["id"])))
    assert len(events) == 1
    assert events[0]["kind"] == "task" and events[0]["status"]["state"] == "completed"


async def test_resubscribe_to_an_unknown_task_says_not_found(airlock: Airlock) -> None:
    events = await stream(airlock, resubscribe("no-such-task", request_id=11))
    assert len(events) == 1
    assert events[0]["error"]["code"] == -32001
    assert "not found" in events[0]["error"]["message"].lower()


async def test_resubscribe_to_another_tenants_task_says_not_found(airlock: Airlock) -> None:
    await airlock.add_policy()
    held = await airlock.hold()
    events = await stream(airlock, resubscribe(held["id"]), headers=bearer("mallory", tenant="other"))
    assert [e["error"]["code"] for e in events] == [-32001]
    assert "not found" in events[0]["error"]["message"].lower()


# --- a real A2A client ------------------------------------------------------------------------------------------


async def test_a2a_sdk_client_streams_the_echo(tmp_path: Path) -> None:
    from a2a.client import ClientConfig, ClientFactory
    from a2a.client.card_resolver import parse_agent_card
    from a2a.types import Message, Part, Role, SendMessageRequest, TaskState

    async with start_airlock(tmp_path, auth=False) as airlock:
        base = str(airlock.mesh_client.make_url("/"))
        card_json = await (await airlock.mesh_client.get("/.well-known/agent-card.json")).json()
        assert card_json["capabilities"]["streaming"] is True
        # the fixture's card names a fixed port; point it at this server and keep to the v0.3 binding
        card_json["url"] = base
        card_json["additionalInterfaces"] = [{"url": base, "transport": "JSONRPC"}]
        card_json.pop("supportedInterfaces", None)
        card = parse_agent_card(card_json)
        async with httpx.AsyncClient(timeout=10) as http:
            client = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(card)
            request = SendMessageRequest(
                message=Message(
                    message_id="m-1", role=Role.ROLE_USER, context_id="ctx-sdk", parts=[Part(text="hello sdk")]
                )
            )
            events = [event async for event in client.send_message(request)]
        assert [e.WhichOneof("payload") for e in events] == ["task", "status_update"]
        task, update = events[0].task, events[1].status_update
        assert task.context_id == "ctx-sdk"
        assert update.task_id == task.id
        assert update.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert update.status.message.parts[0].text == "staging-db heard: hello sdk"
