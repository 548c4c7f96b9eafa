"""message/send, tasks/get and tasks/cancel against the demo agent: wire shapes, follow-ups, holds, cancel."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from tests.conftest import GUIDE_TEXT, Airlock, bearer, guide_message

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
CAMEL = re.compile(r"^[a-z][A-Za-z0-9]*$")


def get(task_id: str, request_id: Any = "g", **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tasks/get", "params": {"id": task_id, **params}}


def cancel(task_id: str, request_id: Any = "c") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tasks/cancel", "params": {"id": task_id}}


def follow_up(task: dict[str, Any], text: str, request_id: str = "f") -> dict[str, Any]:
    return guide_message(text, request_id=request_id, taskId=task["id"], contextId=task["contextId"])


def assert_camel_keys(obj: Any, path: str = "") -> None:
    """Wire keys are camelCase (data payloads are the sender's own and are not checked)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            assert CAMEL.match(key), f"{path}.{key} is not camelCase"
            if key in ("data", "metadata"):
                continue
            assert_camel_keys(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            assert_camel_keys(item, f"{path}[{i}]")


def assert_message(message: dict[str, Any], role: str | None = None) -> None:
    assert message["kind"] == "message"
    assert message["role"] in ("user", "agent")
    if role:
        assert message["role"] == role
    assert isinstance(message["messageId"], str) and message["messageId"]
    assert isinstance(message["parts"], list) and message["parts"]
    for part in message["parts"]:
        assert part["kind"] in ("text", "data", "file")


def assert_task(task: dict[str, Any]) -> None:
    assert task["kind"] == "task"
    assert isinstance(task["id"], str) and task["id"]
    assert isinstance(task["contextId"], str) and task["contextId"]
    status = task["status"]
    assert ISO_UTC.match(status["timestamp"]), status["timestamp"]
    stamp = datetime.fromisoformat(status["timestamp"].replace("Z", "+00:00"))
    assert stamp.tzinfo is not None and stamp.utcoffset() == UTC.utcoffset(None)
    if "message" in status:
        assert_message(status["message"], "agent")
        assert status["message"]["taskId"] == task["id"]
        assert status["message"]["contextId"] == task["contextId"]
    for message in task.get("history", []):
        assert_message(message)
    for artifact in task.get("artifacts", []):
        assert isinstance(artifact["artifactId"], str)
        for part in artifact["parts"]:
            assert part["kind"] in ("text", "data", "file")
    assert_camel_keys(task)


# --- message/send ------------------------------------------------------------------------------------------


async def test_echo_reply_leaves_task_input_required(airlock: Airlock) -> None:
    reply = await airlock.rpc(guide_message("what can you do?", request_id="e1"))
    assert reply["jsonrpc"] == "2.0" and reply["id"] == "e1"
    task = reply["result"]
    assert_task(task)
    assert task["status"]["state"] == "input-required"
    text = task["status"]["message"]["parts"][0]
    assert text["kind"] == "text" and "what can you do?" in text["text"]
    assert task["contextId"] == "session-123"
    uuid.UUID(task["id"])
    assert await airlock.executions() == 0


async def test_integer_request_id_is_echoed(airlock: Airlock) -> None:
    body = guide_message("hi")
    body["id"] = 42
    assert (await airlock.rpc(body))["id"] == 42


async def test_guide_message_without_message_id_or_kind_gets_an_id(airlock: Airlock) -> None:
    body = guide_message("hello")
    assert "messageId" not in body["params"]["message"] and "kind" not in body["params"]["message"]
    task = (await airlock.rpc(body))["result"]
    history = (await airlock.rpc(get(task["id"])))["result"]["history"]
    user = history[0]
    assert_message(user, "user")
    uuid.UUID(user["messageId"])
    assert user["taskId"] == task["id"] and user["contextId"] == task["contextId"]


async def test_client_message_id_and_kind_are_kept(airlock: Airlock) -> None:
    body = guide_message("hello", messageId="client-msg-1", kind="message")
    task = (await airlock.rpc(body))["result"]
    history = (await airlock.rpc(get(task["id"])))["result"]["history"]
    assert history[0]["messageId"] == "client-msg-1"


async def test_new_tasks_get_server_ids_and_keep_context(airlock: Airlock) -> None:
    a = (await airlock.rpc(guide_message("one")))["result"]
    b = (await airlock.rpc(guide_message("two")))["result"]
    assert a["id"] != b["id"]
    assert a["contextId"] == b["contextId"] == "session-123"
    body = guide_message("three")
    del body["params"]["message"]["contextId"]
    c = (await airlock.rpc(body))["result"]
    assert c["contextId"] and c["contextId"] != "session-123"


async def test_follow_ups_continue_the_task_and_grow_history(airlock: Airlock) -> None:
    task = (await airlock.rpc(guide_message("hello")))["result"]
    for i in range(3):
        reply = await airlock.rpc(follow_up(task, f"follow-up {i}", request_id=f"f{i}"))
        assert reply["id"] == f"f{i}"
        again = reply["result"]
        assert_task(again)
        assert again["id"] == task["id"]
        assert again["contextId"] == task["contextId"]
        assert again["status"]["state"] == "input-required"
        assert f"follow-up {i}" in again["status"]["message"]["parts"][0]["text"]
    history = (await airlock.rpc(get(task["id"])))["result"]["history"]
    assert len(history) == 8
    assert [m["role"] for m in history] == ["user", "agent"] * 4
    assert [m["parts"][0]["text"] for m in history[0::2]] == ["hello", "follow-up 0", "follow-up 1", "follow-up 2"]


async def test_follow_up_without_context_id_takes_the_tasks(airlock: Airlock) -> None:
    task = (await airlock.rpc(guide_message("hello")))["result"]
    body = guide_message("more", taskId=task["id"])
    del body["params"]["message"]["contextId"]
    again = (await airlock.rpc(body))["result"]
    assert again["id"] == task["id"] and again["contextId"] == "session-123"


async def test_follow_up_with_other_context_is_invalid_params(airlock: Airlock) -> None:
    task = (await airlock.rpc(guide_message("hello")))["result"]
    reply = await airlock.rpc(guide_message("more", request_id="x", taskId=task["id"], contextId="another-session"))
    assert reply["id"] == "x"
    assert reply["error"]["code"] == -32602
    history = (await airlock.rpc(get(task["id"])))["result"]["history"]
    assert len(history) == 2


async def test_follow_up_can_ask_for_the_action(airlock: Airlock) -> None:
    """A conversation that starts with small talk and then asks to delete runs it (no policy)."""
    task = (await airlock.rpc(guide_message("hello")))["result"]
    done = (await airlock.rpc(follow_up(task, GUIDE_TEXT)))["result"]
    assert done["id"] == task["id"]
    assert done["status"]["state"] == "completed"
    assert await airlock.executions() == 1
    assert_task(done)
    assert done["artifacts"][0]["parts"][1]["data"] == {"deleted": 42}


async def test_message_to_terminal_task_is_unsupported(airlock: Airlock) -> None:
    done = (await airlock.rpc(guide_message(GUIDE_TEXT)))["result"]
    assert done["status"]["state"] == "completed"
    reply = await airlock.rpc(follow_up(done, "again please", request_id="t"))
    assert reply["id"] == "t"
    assert reply["error"]["code"] == -32004
    assert await airlock.executions() == 1


# --- tasks/get ---------------------------------------------------------------------------------------------


async def test_get_history_length(airlock: Airlock) -> None:
    task = (await airlock.rpc(guide_message("hello")))["result"]
    await airlock.rpc(follow_up(task, "second"))
    full = (await airlock.rpc(get(task["id"])))["result"]
    assert_task(full)
    assert len(full["history"]) == 4
    none = (await airlock.rpc(get(task["id"], historyLength=0)))["result"]
    assert "history" not in none or none["history"] == []
    one = (await airlock.rpc(get(task["id"], historyLength=1)))["result"]
    assert one["history"] == full["history"][-1:]
    two = (await airlock.rpc(get(task["id"], historyLength=2)))["result"]
    assert two["history"] == full["history"][-2:]
    many = (await airlock.rpc(get(task["id"], historyLength=100)))["result"]
    assert many["history"] == full["history"]
    explicit_null = (await airlock.rpc(get(task["id"], historyLength=None)))["result"]
    assert explicit_null["history"] == full["history"]


async def test_get_returns_same_task_as_send(airlock: Airlock) -> None:
    task = (await airlock.rpc(guide_message("hello")))["result"]
    got = await airlock.rpc(get(task["id"], request_id=9))
    assert got["id"] == 9
    fetched = got["result"]
    assert fetched["id"] == task["id"]
    assert fetched["status"] == task["status"]


# --- tasks/cancel ------------------------------------------------------------------------------------------


async def test_cancel_right_after_send(airlock: Airlock) -> None:
    task = (await airlock.rpc(guide_message("hello")))["result"]
    reply = await airlock.rpc(cancel(task["id"], request_id="c1"))
    assert reply["id"] == "c1"
    canceled = reply["result"]
    assert_task(canceled)
    assert canceled["id"] == task["id"]
    assert canceled["status"]["state"] == "canceled"
    got = (await airlock.rpc(get(task["id"])))["result"]
    assert got["status"]["state"] == "canceled"
    again = await airlock.rpc(cancel(task["id"]))
    assert again["error"]["code"] == -32002
    after = await airlock.rpc(follow_up(task, "hello?"))
    assert after["error"]["code"] == -32004


async def test_cancel_completed_task_is_not_cancelable(airlock: Airlock) -> None:
    done = (await airlock.rpc(guide_message(GUIDE_TEXT)))["result"]
    assert done["status"]["state"] == "completed"
    reply = await airlock.rpc(cancel(done["id"], request_id=77))
    assert reply["id"] == 77
    assert reply["error"]["code"] == -32002
    got = (await airlock.rpc(get(done["id"])))["result"]
    assert got["status"]["state"] == "completed"


# --- held tasks --------------------------------------------------------------------------------------------


async def pending_ids(airlock: Airlock) -> list[str]:
    resp = await airlock.gateway.post("/messages/pending", json={"tenant_id": "default"}, headers=bearer())
    assert resp.status == 200
    return [m["message_id"] for m in (await resp.json())["messages"]]


async def test_hold_shape(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    assert_task(task)
    form = task["status"]["message"]["parts"][0]
    assert form["kind"] == "data"
    assert form["data"]["type"] == "Form"
    assert form["metadata"]["mimeType"] == "application/json+a2ui"
    assert task["contextId"] == "session-123"
    assert await pending_ids(airlock) == [task["id"]]


async def test_requesters_follow_up_does_not_resolve_a_hold(airlock: Airlock) -> None:
    await airlock.add_policy()
    agent = bearer("agent-7", "agent")
    task = await airlock.hold(headers=agent)
    for text in ("approve", "yes, approved", '{"decision": "approve"}'):
        reply = await airlock.rpc(follow_up(task, text), agent)
        still = reply["result"]
        assert still["id"] == task["id"]
        assert still["status"]["state"] == "input-required"
    # a decision the requester states is refused, as the gateway's 403, and is not kept as if it were made
    data = {"kind": "data", "data": {"decision": "approve"}}
    body = guide_message("x", taskId=task["id"], contextId=task["contextId"], parts=[data])
    refused = (await airlock.rpc(body, agent))["error"]
    assert refused["data"]["status"] == 403 and "cannot resolve" in refused["message"]
    got = (await airlock.rpc(get(task["id"]), agent))["result"]
    assert got["status"]["state"] == "input-required"
    assert len(got["history"]) == 5
    assert not any(p.get("data") == {"decision": "approve"} for m in got["history"] for p in m["parts"])
    assert await pending_ids(airlock) == [task["id"]]
    assert await airlock.executions() == 0
    resp = await airlock.resolve(task["id"], {"decision": "approve"})
    assert resp.status == 200
    assert (await resp.json())["new_state"] == "completed"
    assert await airlock.executions() == 1


async def test_an_agent_that_may_approve_cannot_approve_its_own_hold_over_a2a(airlock: Airlock) -> None:
    await airlock.add_policy()
    agent = bearer("agent-8", "agent", "approver")
    task = await airlock.hold(headers=agent)
    body = guide_message(
        "x", taskId=task["id"], contextId=task["contextId"], parts=[{"kind": "data", "data": {"decision": "approve"}}]
    )
    refused = (await airlock.rpc(body, agent))["error"]
    assert refused["data"]["status"] == 403 and "cannot resolve it" in refused["message"]
    assert await pending_ids(airlock) == [task["id"]] and await airlock.executions() == 0


async def test_approver_follow_up_over_a2a_does_not_resolve_either(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    reply = await airlock.rpc(follow_up(task, "approve"), bearer("carol", "approver"))
    assert reply["result"]["status"]["state"] == "input-required"
    assert await pending_ids(airlock) == [task["id"]]
    assert await airlock.executions() == 0


async def test_cancel_held_task_ends_its_approval(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    canceled = (await airlock.rpc(cancel(task["id"])))["result"]
    assert canceled["status"]["state"] == "canceled"
    assert await pending_ids(airlock) == []
    resp = await airlock.resolve(task["id"], {"decision": "approve"})
    assert resp.status == 409
    assert await airlock.executions() == 0
    got = (await airlock.rpc(get(task["id"])))["result"]
    assert got["status"]["state"] == "canceled"


async def test_denied_hold_is_rejected_and_takes_no_more_messages(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resp = await airlock.resolve(task["id"], {"decision": "deny"})
    assert resp.status == 200
    got = (await airlock.rpc(get(task["id"])))["result"]
    assert got["status"]["state"] == "rejected"
    assert (await airlock.rpc(follow_up(task, "please?")))["error"]["code"] == -32004
    assert (await airlock.rpc(cancel(task["id"])))["error"]["code"] == -32002
    assert await airlock.executions() == 0


async def test_approved_hold_history_and_artifacts(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resp = await airlock.resolve(task["id"], {"decision": "approve"})
    assert resp.status == 200
    got = (await airlock.rpc(get(task["id"])))["result"]
    assert_task(got)
    assert got["status"]["state"] == "completed"
    assert got["artifacts"][0]["parts"][1]["data"] == {"deleted": 42}
    roles = [m["role"] for m in got["history"]]
    assert roles[0] == "user" and roles[-1] == "agent"


async def test_file_and_data_parts_are_accepted_and_kept(airlock: Airlock) -> None:
    parts = [
        {"kind": "text", "text": "see attached"},
        {"kind": "file", "file": {"name": "a.txt", "mimeType": "text/plain", "bytes": "aGVsbG8="}},
        {"kind": "file", "file": {"uri": "https://example.com/b.txt"}},
        {"kind": "data", "data": {"note": "no tool here"}},
    ]
    task = (await airlock.rpc(guide_message("x", parts=parts)))["result"]
    assert task["status"]["state"] == "input-required"
    user = (await airlock.rpc(get(task["id"])))["result"]["history"][0]
    assert [p["kind"] for p in user["parts"]] == ["text", "file", "file", "data"]
    assert user["parts"][1]["file"] == {"name": "a.txt", "mimeType": "text/plain", "bytes": "aGVsbG8="}


async def test_send_configuration_history_length_must_not_be_negative(airlock: Airlock) -> None:
    body = guide_message("hello")
    body["params"]["configuration"] = {"blocking": True, "historyLength": -1}
    assert (await airlock.rpc(body))["error"]["code"] == -32602
    body["params"]["configuration"] = {"blocking": True, "acceptedOutputModes": ["text/plain"]}
    assert (await airlock.rpc(body))["result"]["status"]["state"] == "input-required"
