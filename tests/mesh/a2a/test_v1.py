"""A2A v1.0 methods on the same endpoint as v0.3: wire shapes, both versions over one task, errors, and the
real a2a-sdk client choosing 1.0 from the card."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer, unused_port

from mesh.a2a.app import DISPATCH, create_mesh_app
from tests.conftest import GUIDE_TEXT, Airlock, bearer, guide_message, start_airlock

A2UI = "application/json+a2ui"
STATES = {
    "TASK_STATE_SUBMITTED",
    "TASK_STATE_WORKING",
    "TASK_STATE_INPUT_REQUIRED",
    "TASK_STATE_COMPLETED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_FAILED",
    "TASK_STATE_REJECTED",
    "TASK_STATE_AUTH_REQUIRED",
}


def call(method: str, params: dict[str, Any], request_id: Any = "v1") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def v1_message(text: str, **fields: Any) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": text}], **fields}


def send(text: str = GUIDE_TEXT, request_id: Any = "s", **fields: Any) -> dict[str, Any]:
    return call("SendMessage", {"message": v1_message(text, **fields), "configuration": {}}, request_id)


def assert_v1(obj: Any, path: str = "") -> None:
    """No v0.3 leftovers: no ``kind``, enums spelled the v1.0 way (sender data and metadata not checked)."""
    if isinstance(obj, dict):
        assert "kind" not in obj, f"{path} has a kind"
        assert "mimeType" not in obj, f"{path} has a mimeType"
        if "role" in obj:
            assert obj["role"] in ("ROLE_USER", "ROLE_AGENT"), f"{path}.role = {obj['role']}"
        if "state" in obj:
            assert obj["state"] in STATES, f"{path}.state = {obj['state']}"
        for key, value in obj.items():
            if key not in ("data", "metadata"):
                assert_v1(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            assert_v1(item, f"{path}[{i}]")


async def v1_task(airlock: Airlock, text: str = GUIDE_TEXT, **fields: Any) -> dict[str, Any]:
    reply = await airlock.rpc(send(text, **fields))
    assert "result" in reply, reply
    assert set(reply["result"]) == {"task"}, reply
    return reply["result"]["task"]


async def error_code(airlock: Airlock, body: dict[str, Any]) -> int:
    reply = await airlock.rpc(body)
    assert "result" not in reply, reply
    assert reply["id"] == body["id"]
    return reply["error"]["code"]


def sse_events(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: ") :]) for line in body.splitlines() if line.startswith("data: ")]


# --- card ---------------------------------------------------------------------------------------------------


async def test_card_offers_both_versions_on_one_url(airlock: Airlock) -> None:
    card = await (await airlock.mesh_client.get("/.well-known/agent-card.json")).json()
    interfaces = card["supportedInterfaces"]
    assert {i["protocolVersion"] for i in interfaces} == {"1.0", "0.3.0"}
    for iface in interfaces:
        assert iface["url"] == card["url"]
        assert iface["protocolBinding"] == "JSONRPC"
    assert card["protocolVersion"] == "0.3.0" and card["preferredTransport"] == "JSONRPC"


# --- SendMessage ----------------------------------------------------------------------------------------------


async def test_guide_message_holds_with_the_form_part(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await v1_task(airlock, contextId="session-v1")
    assert_v1(task)
    assert task["contextId"] == "session-v1"
    status = task["status"]
    assert status["state"] == "TASK_STATE_INPUT_REQUIRED"
    assert status["message"]["role"] == "ROLE_AGENT"
    assert status["message"]["taskId"] == task["id"]
    [form] = [p for p in status["message"]["parts"] if "data" in p]
    assert form["data"]["type"] == "Form"
    assert form["mediaType"] == A2UI
    assert form["metadata"]["mimeType"] == A2UI
    assert task["metadata"]["airlock"]["approvalId"]


async def test_demo_echo_over_v1(airlock: Airlock) -> None:
    task = await v1_task(airlock, "what can you do?")
    assert_v1(task)
    assert task["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    texts = [p["text"] for p in task["status"]["message"]["parts"] if "text" in p]
    assert texts and all(isinstance(t, str) and t for t in texts)


async def test_follow_up_over_v1_continues_the_task(airlock: Airlock) -> None:
    first = await v1_task(airlock, "what can you do?")
    again = await v1_task(airlock, "and then?", taskId=first["id"], contextId=first["contextId"])
    assert again["id"] == first["id"]
    reply = await airlock.rpc(call("GetTask", {"id": first["id"]}))
    history = reply["result"]["history"]
    assert [m["role"] for m in history].count("ROLE_USER") == 2


# --- one task, both versions ----------------------------------------------------------------------------------


async def test_task_made_over_v03_reads_over_v1(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    reply = await airlock.rpc(call("GetTask", {"id": task["id"], "historyLength": 10}))
    got = reply["result"]
    assert_v1(got)
    assert got["id"] == task["id"] and got["contextId"] == task["contextId"]
    assert got["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    assert got["status"]["timestamp"] == task["status"]["timestamp"]
    assert got["history"][0]["role"] == "ROLE_USER"
    assert got["history"][0]["parts"] == [{"text": GUIDE_TEXT}]
    assert got["history"][-1]["role"] == "ROLE_AGENT"
    one = await airlock.rpc(call("GetTask", {"id": task["id"], "historyLength": 1}))
    assert len(one["result"]["history"]) == 1


async def test_task_made_over_v1_reads_over_v03(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await v1_task(airlock, metadata={"source": "v1"})
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task["id"]}})
    got = reply["result"]
    assert got["kind"] == "task" and got["status"]["state"] == "input-required"
    user = got["history"][0]
    assert user["kind"] == "message" and user["role"] == "user"
    assert user["parts"] == [{"kind": "text", "text": GUIDE_TEXT}]
    assert user["metadata"] == {"source": "v1"}
    form = got["status"]["message"]["parts"][0]
    assert form["kind"] == "data" and form["metadata"] == {"mimeType": A2UI}
    assert "mediaType" not in form


async def test_file_and_data_parts_keep_their_fields_both_ways(airlock: Airlock) -> None:
    raw = base64.b64encode(b"hello").decode()
    parts = [
        {"text": "what can you do?"},
        {"raw": raw, "mediaType": "text/plain", "filename": "a.txt", "metadata": {"n": 1}},
        {"url": "https://example.com/b.pdf", "mediaType": "application/pdf"},
        {"data": {"k": "v"}, "mediaType": "application/json"},
        {"data": [1, 2]},
    ]
    message = {"messageId": "m-1", "role": "ROLE_USER", "parts": parts}
    reply = await airlock.rpc(call("SendMessage", {"message": message}))
    task_id = reply["result"]["task"]["id"]
    v03 = await airlock.rpc({"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task_id}})
    stored = v03["result"]["history"][0]["parts"]
    assert stored[1] == {
        "kind": "file",
        "file": {"bytes": raw, "mimeType": "text/plain", "name": "a.txt"},
        "metadata": {"n": 1},
    }
    assert stored[2] == {"kind": "file", "file": {"uri": "https://example.com/b.pdf", "mimeType": "application/pdf"}}
    assert stored[3] == {"kind": "data", "data": {"k": "v"}, "metadata": {"mimeType": "application/json"}}
    v1 = await airlock.rpc(call("GetTask", {"id": task_id}))
    back = v1["result"]["history"][0]
    assert back["messageId"] == "m-1"
    assert back["parts"][1:4] == [parts[1], parts[2], {**parts[3], "metadata": {"mimeType": "application/json"}}]
    assert back["parts"][4] == {"data": [1, 2]}


# --- ListTasks ----------------------------------------------------------------------------------------------


async def test_list_tasks_filters_and_pages(airlock: Airlock) -> None:
    made = [await v1_task(airlock, "what can you do?", contextId="ctx-a") for _ in range(3)]
    other = await v1_task(airlock, "what can you do?", contextId="ctx-b")
    await airlock.rpc(call("CancelTask", {"id": made[0]["id"]}))

    page1 = (await airlock.rpc(call("ListTasks", {"contextId": "ctx-a", "pageSize": 2})))["result"]
    assert page1["totalSize"] == 3 and page1["pageSize"] == 2 and len(page1["tasks"]) == 2
    assert page1["nextPageToken"]
    page2 = (
        await airlock.rpc(call("ListTasks", {"contextId": "ctx-a", "pageSize": 2, "pageToken": page1["nextPageToken"]}))
    )["result"]
    assert len(page2["tasks"]) == 1 and page2["nextPageToken"] == ""
    seen = [t["id"] for t in page1["tasks"] + page2["tasks"]]
    assert sorted(seen) == sorted(t["id"] for t in made)
    assert other["id"] not in seen
    for task in page1["tasks"]:
        assert_v1(task)
        assert "history" not in task

    canceled = (await airlock.rpc(call("ListTasks", {"status": "TASK_STATE_CANCELED"})))["result"]
    assert [t["id"] for t in canceled["tasks"]] == [made[0]["id"]]
    assert canceled["tasks"][0]["status"]["state"] == "TASK_STATE_CANCELED"
    held = (await airlock.rpc(call("ListTasks", {"status": "TASK_STATE_INPUT_REQUIRED"})))["result"]
    assert held["totalSize"] == 3

    everything = (await airlock.rpc(call("ListTasks", {"historyLength": 1})))["result"]
    assert everything["totalSize"] == 4 and everything["nextPageToken"] == ""
    assert all(len(t["history"]) == 1 for t in everything["tasks"])
    later = (await airlock.rpc(call("ListTasks", {"statusTimestampAfter": "2999-01-01T00:00:00Z"})))["result"]
    assert later["tasks"] == [] and later["totalSize"] == 0
    earlier = (await airlock.rpc(call("ListTasks", {"statusTimestampAfter": "2000-01-01T00:00:00Z", "pageSize": 3})))[
        "result"
    ]
    assert earlier["totalSize"] == 4 and len(earlier["tasks"]) == 3 and earlier["nextPageToken"]


async def test_list_tasks_leaves_artifacts_out_unless_asked(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resolved = await airlock.resolve(task["id"], {"decision": "approve"})
    assert resolved.status == 200, await resolved.text()
    got = (await airlock.rpc(call("GetTask", {"id": task["id"]})))["result"]
    assert got["artifacts"], "the approved action left no artifact to list"
    plain = (await airlock.rpc(call("ListTasks", {})))["result"]["tasks"][0]
    assert "artifacts" not in plain
    full = (await airlock.rpc(call("ListTasks", {"includeArtifacts": True})))["result"]["tasks"][0]
    assert full["artifacts"] == got["artifacts"]
    assert_v1(full)


# --- CancelTask ------------------------------------------------------------------------------------------------


async def test_cancel_task_over_v1(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await v1_task(airlock)
    reply = await airlock.rpc(call("CancelTask", {"id": task["id"]}))
    assert reply["result"]["status"]["state"] == "TASK_STATE_CANCELED"
    assert_v1(reply["result"])
    v03 = await airlock.rpc({"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task["id"]}})
    assert v03["result"]["status"]["state"] == "canceled"
    assert await error_code(airlock, call("CancelTask", {"id": task["id"]})) == -32002


# --- errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("SendMessage", {}),
        ("SendMessage", {"": "x"}),
        ("SendMessage", {"message": {"messageId": "m", "role": "ROLE_USER"}}),
        ("SendMessage", {"message": {"messageId": "m", "role": "ROLE_USER", "parts": {"text": "x"}}}),
        ("SendMessage", {"message": {"messageId": "m", "role": "user", "parts": [{"text": "x"}]}}),
        ("SendMessage", {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"metadata": {}}]}}),
        ("SendMessage", {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x", "url": "y"}]}}),
        ("SendMessage", {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"raw": "not base64!"}]}}),
        ("SendMessage", {"message": v1_message("x"), "configuration": {"historyLength": -1}}),
        ("SendMessage", {"message": v1_message("x"), "configuration": {"returnImmediately": "yes"}}),
        ("GetTask", {}),
        ("GetTask", {"id": 7}),
        ("GetTask", {"id": "x", "historyLength": -1}),
        ("CancelTask", {}),
        ("ListTasks", {"pageSize": 101}),
        ("ListTasks", {"pageSize": -1}),
        ("ListTasks", {"pageToken": "bogus"}),
        ("ListTasks", {"status": "working"}),
        ("ListTasks", {"statusTimestampAfter": "yesterday"}),
        ("CreateTaskPushNotificationConfig", {"url": "https://example.com/hook"}),
        ("CreateTaskPushNotificationConfig", {"taskId": "t"}),
        ("GetTaskPushNotificationConfig", {"id": "c"}),
        ("ListTaskPushNotificationConfigs", {}),
        ("DeleteTaskPushNotificationConfig", {"taskId": "t"}),
    ],
)
async def test_bad_params_are_invalid_params(airlock: Airlock, method: str, params: dict[str, Any]) -> None:
    assert await error_code(airlock, call(method, params)) == -32602


@pytest.mark.parametrize("method", ["GetTask", "CancelTask"])
async def test_unknown_task_is_task_not_found(airlock: Airlock, method: str) -> None:
    assert await error_code(airlock, call(method, {"id": "no-such-task"})) == -32001


async def test_follow_up_to_unknown_task_is_task_not_found(airlock: Airlock) -> None:
    assert await error_code(airlock, send("hello", taskId="no-such-task")) == -32001


async def test_unknown_method_and_extended_card(airlock: Airlock) -> None:
    assert await error_code(airlock, call("SendMesage", {})) == -32601
    assert await error_code(airlock, call("GetExtendedAgentCard", {})) == -32007


async def test_v1_methods_need_the_token(airlock: Airlock) -> None:
    resp = await airlock.mesh_client.post("/", json=send("hello"))
    assert resp.status == 401
    other_tenant = await airlock.rpc(call("GetTask", {"id": (await v1_task(airlock, "hi"))["id"]}), bearer(tenant="t2"))
    assert other_tenant["error"]["code"] == -32001


# --- streaming -------------------------------------------------------------------------------------------------


async def stream(airlock: Airlock, body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = await airlock.mesh_client.post("/", json=body, headers=bearer())
    assert resp.status == 200
    if resp.content_type == "application/json":
        return [await resp.json()]
    assert resp.content_type == "text/event-stream"
    return sse_events(await resp.text())


async def test_send_streaming_message(airlock: Airlock) -> None:
    await airlock.add_policy()
    body = call("SendStreamingMessage", {"message": v1_message(GUIDE_TEXT)})
    table = airlock.mesh_client.app[DISPATCH].streams
    assert "message/stream" in table and "SendStreamingMessage" in table
    resp = await airlock.mesh_client.post("/", json=body, headers=bearer())
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    events = sse_events(await resp.text())
    assert events and all("result" in e for e in events), events
    results = [e["result"] for e in events]
    assert "task" in results[0], results[0]
    for result in results:
        assert len(result) == 1 and next(iter(result)) in ("task", "statusUpdate", "artifactUpdate", "message")
        assert_v1(result)
    task_id = results[0]["task"]["id"]
    last = results[-1]
    final = last.get("task") or last.get("statusUpdate")
    assert final is not None
    assert final["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    if "statusUpdate" in last:
        assert last["statusUpdate"]["taskId"] == task_id and "final" not in last["statusUpdate"]
    got = await airlock.rpc(call("GetTask", {"id": task_id}))
    assert got["result"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"


async def next_sse(resp: Any) -> dict[str, Any]:
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode()
        assert line, "the stream ended"
        if line.startswith("data: "):
            return json.loads(line[len("data: ") :])


async def test_subscribe_to_task(airlock: Airlock) -> None:
    await airlock.add_policy()
    table = airlock.mesh_client.app[DISPATCH].streams
    assert "tasks/resubscribe" in table and "SubscribeToTask" in table
    task = await v1_task(airlock)
    resp = await airlock.mesh_client.post("/", json=call("SubscribeToTask", {"id": task["id"]}), headers=bearer())
    assert resp.content_type == "text/event-stream"
    first = (await next_sse(resp))["result"]
    assert_v1(first)
    assert first["task"]["id"] == task["id"]
    assert first["task"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    canceled = await airlock.rpc(call("CancelTask", {"id": task["id"]}))
    assert canceled["result"]["status"]["state"] == "TASK_STATE_CANCELED"
    rest = sse_events((await asyncio.wait_for(resp.read(), 10)).decode())
    assert rest, "no event after the cancel"
    update = rest[-1]["result"]["statusUpdate"]
    assert update["taskId"] == task["id"] and update["status"]["state"] == "TASK_STATE_CANCELED"
    assert "final" not in update
    missing = await stream(airlock, call("SubscribeToTask", {"id": "no-such-task"}))
    assert missing[-1]["error"]["code"] == -32001


# --- push notification configs ----------------------------------------------------------------------------------


async def test_push_config_methods(airlock: Airlock) -> None:
    table = airlock.mesh_client.app[DISPATCH].methods
    assert "tasks/pushNotificationConfig/set" in table and "CreateTaskPushNotificationConfig" in table
    task = await v1_task(airlock, "what can you do?")
    hook = "http://127.0.0.1:9/hook"
    created = await airlock.rpc(
        call("CreateTaskPushNotificationConfig", {"taskId": task["id"], "id": "c1", "url": hook, "token": "tok"})
    )
    assert created["result"] == {"taskId": task["id"], "id": "c1", "url": hook, "token": "tok"}
    got = await airlock.rpc(call("GetTaskPushNotificationConfig", {"taskId": task["id"], "id": "c1"}))
    assert got["result"] == created["result"]

    v03 = await airlock.rpc(
        {
            "jsonrpc": "2.0",
            "id": "p",
            "method": "tasks/pushNotificationConfig/set",
            "params": {"taskId": task["id"], "pushNotificationConfig": {"id": "c2", "url": hook + "2"}},
        }
    )
    assert v03["result"]["pushNotificationConfig"]["id"] == "c2"
    listed = await airlock.rpc(call("ListTaskPushNotificationConfigs", {"taskId": task["id"]}))
    assert sorted(c["id"] for c in listed["result"]["configs"]) == ["c1", "c2"]
    assert all(c["taskId"] == task["id"] and "pushNotificationConfig" not in c for c in listed["result"]["configs"])
    page = await airlock.rpc(call("ListTaskPushNotificationConfigs", {"taskId": task["id"], "pageSize": 1}))
    assert len(page["result"]["configs"]) == 1 and page["result"]["nextPageToken"]

    deleted = await airlock.rpc(call("DeleteTaskPushNotificationConfig", {"taskId": task["id"], "id": "c1"}))
    assert deleted == {"jsonrpc": "2.0", "id": "v1", "result": None}
    v03_list = await airlock.rpc(
        {"jsonrpc": "2.0", "id": "l", "method": "tasks/pushNotificationConfig/list", "params": {"id": task["id"]}}
    )
    assert [c["pushNotificationConfig"]["id"] for c in v03_list["result"]] == ["c2"]
    missing = await airlock.rpc(call("ListTaskPushNotificationConfigs", {"taskId": "no-such-task"}))
    assert missing["error"]["code"] == -32001


async def test_send_message_configuration_push_config(airlock: Airlock) -> None:
    assert "tasks/pushNotificationConfig/list" in airlock.mesh_client.app[DISPATCH].methods
    config = {"taskPushNotificationConfig": {"id": "from-send", "url": "http://127.0.0.1:9/hook", "token": "t"}}
    reply = await airlock.rpc(call("SendMessage", {"message": v1_message("what can you do?"), "configuration": config}))
    task_id = reply["result"]["task"]["id"]
    listed = await airlock.rpc(call("ListTaskPushNotificationConfigs", {"taskId": task_id}))
    assert [(c["id"], c["url"], c.get("token")) for c in listed["result"]["configs"]] == [
        ("from-send", "http://127.0.0.1:9/hook", "t")
    ]


# --- the real a2a-sdk client -----------------------------------------------------------------------------------


async def test_a2a_sdk_client_chooses_v1_and_works(tmp_path: Path) -> None:
    from a2a.client import ClientConfig, ClientFactory
    from a2a.client.transports.jsonrpc import JsonRpcTransport
    from a2a.types import a2a_pb2 as pb

    async with start_airlock(tmp_path, auth=False) as airlock:
        await airlock.add_policy()
        port = unused_port()
        url = f"http://127.0.0.1:{port}/"
        served = TestServer(create_mesh_app(airlock.mesh, None, url), host="127.0.0.1", port=port)
        await served.start_server()
        wire: list[tuple[str | None, str]] = []

        async def record(request: httpx.Request) -> None:
            if request.method == "POST":
                wire.append((request.headers.get("A2A-Version"), json.loads(request.content)["method"]))

        try:
            async with httpx.AsyncClient(event_hooks={"request": [record]}, timeout=10) as http:
                client = await ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create_from_url(url)
                assert isinstance(client._transport, JsonRpcTransport)  # 1.0, not the 0.3 compat transport

                request = pb.SendMessageRequest(
                    message=pb.Message(
                        message_id=str(uuid.uuid4()),
                        role=pb.ROLE_USER,
                        parts=[pb.Part(text=GUIDE_TEXT)],
                        context_id="sdk-session",
                    )
                )
                responses = [r async for r in client.send_message(request)]
                assert len(responses) == 1 and responses[0].HasField("task")
                task = responses[0].task
                assert task.status.state == pb.TASK_STATE_INPUT_REQUIRED
                assert task.context_id == "sdk-session"
                form = task.status.message.parts[0]
                assert form.WhichOneof("content") == "data"
                assert form.media_type == A2UI
                assert form.data.struct_value["type"] == "Form"
                assert task.status.message.role == pb.ROLE_AGENT

                got = await client.get_task(pb.GetTaskRequest(id=task.id, history_length=5))
                assert got.id == task.id and got.status.state == pb.TASK_STATE_INPUT_REQUIRED
                assert got.history[0].role == pb.ROLE_USER and got.history[0].parts[0].text == GUIDE_TEXT

                canceled = await client.cancel_task(pb.CancelTaskRequest(id=task.id))
                assert canceled.status.state == pb.TASK_STATE_CANCELED
                await client.close()
        finally:
            await served.close()

        assert [method for _, method in wire] == ["SendMessage", "GetTask", "CancelTask"]
        assert {version for version, _ in wire} == {"1.0"}
        v03 = await airlock.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task.id}}, {})
        assert v03["result"]["status"]["state"] == "canceled"


async def test_a2a_sdk_client_streams_over_v1(tmp_path: Path) -> None:
    from a2a.client import ClientConfig, ClientFactory
    from a2a.types import a2a_pb2 as pb

    async with start_airlock(tmp_path, auth=False) as airlock:
        port = unused_port()
        url = f"http://127.0.0.1:{port}/"
        served = TestServer(create_mesh_app(airlock.mesh, None, url), host="127.0.0.1", port=port)
        await served.start_server()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                client = await ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create_from_url(url)
                assert client._card.capabilities.streaming, "the card does not declare streaming"
                request = pb.SendMessageRequest(
                    message=pb.Message(message_id="m-s", role=pb.ROLE_USER, parts=[pb.Part(text="what can you do?")])
                )
                events = [e async for e in client.send_message(request)]
                assert events[0].HasField("task")
                states = [
                    e.task.status.state if e.HasField("task") else e.status_update.status.state
                    for e in events
                    if e.HasField("task") or e.HasField("status_update")
                ]
                assert states[-1] == pb.TASK_STATE_INPUT_REQUIRED
                assert pb.TASK_STATE_UNSPECIFIED not in states
                await client.close()
        finally:
            await served.close()


async def test_v03_still_answers_beside_v1(airlock: Airlock) -> None:
    reply = await airlock.rpc(guide_message("what can you do?"))
    assert reply["result"]["kind"] == "task" and reply["result"]["status"]["state"] == "input-required"
