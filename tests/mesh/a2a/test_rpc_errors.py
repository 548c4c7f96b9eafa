"""JSON-RPC envelope and parameter errors on the mesh: HTTP 200, a JSON-RPC error, the request id echoed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import Airlock, bearer, guide_message, make_token


async def post_raw(airlock: Airlock, data: bytes | str, path: str = "/", headers: dict[str, str] | None = None):
    hdrs = {"Content-Type": "application/json", **(headers if headers is not None else bearer())}
    return await airlock.mesh_client.post(path, data=data, headers=hdrs)


async def rpc_error(airlock: Airlock, body: Any, *, expect_id: Any) -> dict[str, Any]:
    resp = await airlock.mesh_client.post("/", json=body, headers=bearer())
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    reply = await resp.json()
    assert reply["jsonrpc"] == "2.0"
    assert "result" not in reply
    assert reply["id"] == expect_id
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    assert "Traceback" not in reply["error"]["message"]
    return reply["error"]


def send(message: Any, request_id: Any = "r1") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "message/send", "params": {"message": message}}


# --- parse and envelope -----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{not json", b'{"jsonrpc": "2.0", "id": 1,', b"", b"\xff\xfe"])
async def test_malformed_json_is_parse_error_with_null_id(airlock: Airlock, raw: bytes) -> None:
    resp = await post_raw(airlock, raw)
    assert resp.status == 200
    reply = await resp.json()
    assert reply == {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": reply["error"]["message"]}}


async def test_send_path_is_the_same_handler(airlock: Airlock) -> None:
    resp = await post_raw(airlock, b"{oops", path="/send")
    assert resp.status == 200
    assert (await resp.json())["error"]["code"] == -32700
    resp = await airlock.mesh_client.post("/send", json=guide_message("hello there"), headers=bearer())
    assert resp.status == 200
    assert (await resp.json())["result"]["kind"] == "task"


@pytest.mark.parametrize(
    ("body", "expect_id"),
    [
        ({"jsonrpc": "1.0", "id": "a", "method": "tasks/get", "params": {"id": "x"}}, "a"),
        ({"id": 7, "method": "tasks/get", "params": {"id": "x"}}, 7),
        ({"jsonrpc": 2.0, "id": 8, "method": "tasks/get", "params": {"id": "x"}}, 8),
        ({"jsonrpc": "2.0", "id": "b", "params": {"id": "x"}}, "b"),
        ({"jsonrpc": "2.0", "id": "c", "method": "", "params": {}}, "c"),
        ({"jsonrpc": "2.0", "id": "d", "method": 5, "params": {}}, "d"),
        ({"jsonrpc": "2.0", "id": {"a": 1}, "method": "tasks/get", "params": {"id": "x"}}, None),
        ({"jsonrpc": "2.0", "id": [1], "method": "tasks/get", "params": {"id": "x"}}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "tasks/get", "params": {"id": "x"}}, None),
        ([{"jsonrpc": "2.0", "id": 1, "method": "tasks/get"}], None),
        ("just a string", None),
    ],
)
async def test_invalid_request(airlock: Airlock, body: Any, expect_id: Any) -> None:
    err = await rpc_error(airlock, body, expect_id=expect_id)
    assert err["code"] == -32600


async def test_request_without_id_still_gets_an_error_with_null_id(airlock: Airlock) -> None:
    err = await rpc_error(airlock, {"jsonrpc": "2.0", "method": "message/ssend", "params": {}}, expect_id=None)
    assert err["code"] == -32601


@pytest.mark.parametrize("method", ["message/ssend", "tasks/list", "nope", "message/stream/x"])
async def test_unknown_method(airlock: Airlock, method: str) -> None:
    err = await rpc_error(airlock, {"jsonrpc": "2.0", "id": 3, "method": method, "params": {}}, expect_id=3)
    assert err["code"] == -32601


# --- params ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"": "x"},
        {"message": None},
        {"message": "hello"},
        [1, 2],
        "params",
    ],
)
async def test_send_bad_params(airlock: Airlock, params: Any) -> None:
    body = {"jsonrpc": "2.0", "id": 11, "method": "message/send", "params": params}
    err = await rpc_error(airlock, body, expect_id=11)
    assert err["code"] == -32602


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "parts": "hello"},
        {"role": "user", "parts": {"kind": "text", "text": "hi"}},
        {"role": "user"},
        {"role": "user", "parts": []},
        {"role": "user", "parts": [{"kind": "video", "url": "x"}]},
        {"role": "user", "parts": [{"text": "no kind"}]},
        {"role": "user", "parts": [{"kind": "text"}]},
        {"role": "user", "parts": [{"kind": "text", "text": 5}]},
        {"role": "user", "parts": [{"kind": "data", "data": "not an object"}]},
        {"role": "user", "parts": [{"kind": "file", "file": {"name": "x"}}]},
        {"role": "user", "parts": ["hello"]},
        {"role": "system", "parts": [{"kind": "text", "text": "hi"}]},
        {"role": "USER", "parts": [{"kind": "text", "text": "hi"}]},
        {"parts": [{"kind": "text", "text": "hi"}]},
        {"kind": "task", "role": "user", "parts": [{"kind": "text", "text": "hi"}]},
        {"role": "user", "parts": [{"kind": "text", "text": "hi"}], "taskId": 5},
        {"role": "user", "parts": [{"kind": "text", "text": "hi"}], "contextId": ["x"]},
    ],
)
async def test_send_bad_message(airlock: Airlock, message: Any) -> None:
    err = await rpc_error(airlock, send(message), expect_id="r1")
    assert err["code"] == -32602


async def test_tool_call_arguments_must_be_an_object(airlock: Airlock) -> None:
    message = {"role": "user", "parts": [{"kind": "data", "data": {"tool": "exec", "arguments": ["ls"]}}]}
    err = await rpc_error(airlock, send(message), expect_id="r1")
    assert err["code"] == -32602


async def test_unknown_agent_named_in_metadata(airlock: Airlock) -> None:
    message = {"role": "user", "parts": [{"kind": "text", "text": "hi"}], "metadata": {"agent": "nobody"}}
    err = await rpc_error(airlock, send(message), expect_id="r1")
    assert err["code"] == -32602


@pytest.mark.parametrize("method", ["tasks/get", "tasks/cancel"])
@pytest.mark.parametrize("params", [{"": "x"}, {}, {"id": ""}, {"id": 5}, {"id": None}])
async def test_task_methods_bad_params(airlock: Airlock, method: str, params: dict[str, Any]) -> None:
    err = await rpc_error(airlock, {"jsonrpc": "2.0", "id": 4, "method": method, "params": params}, expect_id=4)
    assert err["code"] == -32602


@pytest.mark.parametrize("history_length", [-1, -100, "two", 1.5, [1]])
async def test_get_bad_history_length(airlock: Airlock, history_length: Any) -> None:
    task = (await airlock.rpc(guide_message("hello")))["result"]
    body = {
        "jsonrpc": "2.0",
        "id": 5,
        "method": "tasks/get",
        "params": {"id": task["id"], "historyLength": history_length},
    }
    err = await rpc_error(airlock, body, expect_id=5)
    assert err["code"] == -32602


@pytest.mark.parametrize("method", ["tasks/get", "tasks/cancel"])
async def test_unknown_task(airlock: Airlock, method: str) -> None:
    body = {"jsonrpc": "2.0", "id": "u", "method": method, "params": {"id": "no-such-task"}}
    err = await rpc_error(airlock, body, expect_id="u")
    assert err["code"] == -32001


async def test_send_to_unknown_task(airlock: Airlock) -> None:
    err = await rpc_error(airlock, guide_message("hi", request_id="s", taskId="no-such-task"), expect_id="s")
    assert err["code"] == -32001


async def test_task_of_another_tenant_is_not_found(airlock: Airlock) -> None:
    task = (await airlock.rpc(guide_message("hello")))["result"]
    other = bearer("mallory", "agent", tenant="other")
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task["id"]}}, other)
    assert reply["error"]["code"] == -32001
    reply = await airlock.rpc(guide_message("more", taskId=task["id"], contextId=task["contextId"]), other)
    assert reply["error"]["code"] == -32001
    reply = await airlock.rpc(
        {"jsonrpc": "2.0", "id": 1, "method": "tasks/cancel", "params": {"id": task["id"]}}, other
    )
    assert reply["error"]["code"] == -32001


# --- auth and size -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Basic YWxpY2U6cHc="},
        {"Authorization": f"Token {make_token()}"},
        {"Authorization": f"Bearer {make_token(ttl_s=-10)}"},
        {"Authorization": f"Bearer {make_token()[:-4]}AAAA"},
    ],
)
async def test_missing_or_bad_token_is_401_with_rpc_error(airlock: Airlock, headers: dict[str, str]) -> None:
    resp = await airlock.mesh_client.post("/", json=guide_message("hello", request_id="q"), headers=headers)
    assert resp.status == 401
    assert resp.content_type == "application/json"
    reply = await resp.json()
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == "q"
    assert isinstance(reply["error"]["code"], int)
    assert "result" not in reply


async def test_401_does_not_create_a_task(airlock: Airlock) -> None:
    await airlock.add_policy()
    resp = await airlock.mesh_client.post("/", json=guide_message(), headers={})
    assert resp.status == 401
    listing = await (await airlock.gateway.post("/messages/pending", json={}, headers=bearer())).json()
    assert listing["messages"] == []


async def test_oversized_body_is_413_json(airlock: Airlock) -> None:
    big = "x" * (1024 * 1024 + 10)
    body = guide_message(big)
    resp = await airlock.mesh_client.post("/", json=body, headers=bearer())
    assert resp.status == 413
    assert resp.content_type == "application/json"
    reply = await resp.json()
    assert isinstance(reply["error"]["code"], int)
    assert "Traceback" not in await resp.text()


async def test_body_just_under_the_limit_is_accepted(airlock: Airlock) -> None:
    body = guide_message("y" * (1024 * 1024 - 4096))
    resp = await airlock.mesh_client.post("/", json=body, headers=bearer())
    assert resp.status == 200
    assert (await resp.json())["result"]["status"]["state"] == "input-required"


async def test_get_on_rpc_path_is_405_json_naming_the_allowed_method(airlock: Airlock) -> None:
    resp = await airlock.mesh_client.get("/send")
    assert resp.status == 405 and resp.content_type == "application/json"
    assert resp.headers["Allow"] == "POST"
    assert (await resp.json())["error"]["code"] == "method_not_allowed"


async def test_an_unknown_path_is_404_json(airlock: Airlock) -> None:
    resp = await airlock.mesh_client.post("/no/such/path", json={})
    assert resp.status == 404 and resp.content_type == "application/json"
    assert (await resp.json())["error"] == {"code": "not_found", "message": "Not Found"}


async def test_oversized_after_decompression_is_413(airlock: Airlock) -> None:
    import gzip

    import orjson

    packed = gzip.compress(orjson.dumps(guide_message("z" * (3 * 1024 * 1024))))
    assert len(packed) < 64 * 1024
    headers = {**bearer(), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    resp = await airlock.mesh_client.post("/", data=packed, headers=headers)
    assert resp.status == 413
    assert isinstance((await resp.json())["error"]["code"], int)


async def test_oversized_chunked_body_is_413(airlock: Airlock) -> None:
    async def chunks():
        for _ in range(12):
            yield b"x" * 100_000

    resp = await airlock.mesh_client.post("/", data=chunks(), headers=bearer())
    assert resp.status == 413
    assert isinstance((await resp.json())["error"]["code"], int)


@pytest.mark.parametrize("arguments", [None, [], "x", {"items": 5}])
async def test_bad_arguments_to_a_named_agent_are_not_an_internal_error(airlock: Airlock, arguments: Any) -> None:
    message = {
        "role": "user",
        "parts": [{"kind": "data", "data": {"tool": "bulk_delete_expired", "arguments": arguments}}],
        "metadata": {"agent": "staging-db"},
    }
    resp = await airlock.mesh_client.post("/", json=send(message), headers=bearer())
    assert resp.status == 200
    reply = await resp.json()
    assert reply.get("error", {}).get("code") != -32603, reply


@pytest.mark.parametrize(
    "method",
    [
        "tasks/pushNotificationConfig/set",
        "tasks/pushNotificationConfig/get",
        "tasks/pushNotificationConfig/list",
        "tasks/pushNotificationConfig/delete",
    ],
)
async def test_push_methods_on_an_unknown_task_answer_task_not_found(airlock: Airlock, method: str) -> None:
    card = await (await airlock.mesh_client.get("/.well-known/agent-card.json")).json()
    assert card["capabilities"]["pushNotifications"] is True
    params = {
        "taskId": "t",
        "id": "t",
        "pushNotificationConfigId": "c",
        "pushNotificationConfig": {"url": "http://127.0.0.1:9/hook"},
    }
    err = await rpc_error(airlock, {"jsonrpc": "2.0", "id": "p", "method": method, "params": params}, expect_id="p")
    assert err["code"] == -32001


@pytest.mark.parametrize("method", ["message/stream", "tasks/resubscribe"])
async def test_stream_methods_are_declared_and_answer_as_event_streams(airlock: Airlock, method: str) -> None:
    card = await (await airlock.mesh_client.get("/.well-known/agent-card.json")).json()
    assert card["capabilities"]["streaming"] is True
    body = {"jsonrpc": "2.0", "id": "s", "method": method, "params": guide_message("hi")["params"]}
    resp = await airlock.mesh_client.post("/", json=body, headers=bearer())
    assert resp.status == 200
    assert resp.content_type == "text/event-stream"
    events = [orjson.loads(line[len("data: ") :]) for line in (await resp.text()).splitlines() if line]
    assert events and all(e["id"] == "s" and e["jsonrpc"] == "2.0" for e in events)
    if method == "message/stream":
        assert events[0]["result"]["kind"] == "task"
        assert events[-1]["result"]["status"]["state"] == "input-required"
    else:  # no task id in a message's params: a bad request, answered as the stream's one event
        assert [e["error"]["code"] for e in events] == [-32602]


@pytest.mark.parametrize("method", ["message/send", "message/stream", "SendMessage", "tasks/get"])
@pytest.mark.parametrize("depth", [65, 300, 1000])
async def test_a_body_nested_too_deep_is_invalid_params_and_starts_nothing(
    airlock: Airlock, method: str, depth: int
) -> None:
    nested = '{"n":' * depth + '"x"' + "}" * depth  # written out: too deep for json.dumps to encode
    envelope = f'{{"jsonrpc": "2.0", "id": "deep", "method": "{method}", "params": {{"message": {{"metadata": '
    raw = envelope + nested + "}}}"
    headers = {**bearer(), "Content-Type": "application/json"}
    resp = await airlock.mesh_client.post("/", data=raw.encode(), headers=headers)
    assert resp.status == 200 and resp.content_type == "application/json"
    reply = await resp.json()
    assert reply["id"] == "deep" and reply["error"]["code"] == -32602
    assert "nested deeper than 64" in reply["error"]["message"] and "Traceback" not in await resp.text()
    listed = await airlock.rpc({"jsonrpc": "2.0", "id": 2, "method": "ListTasks", "params": {}})
    assert listed["result"]["tasks"] == []  # nothing was created, announced or not


async def test_a_body_at_the_depth_limit_is_read(airlock: Airlock) -> None:
    nested: Any = "x"
    for _ in range(58):  # the envelope, params, message and metadata take the other levels
        nested = {"n": nested}
    body = guide_message("hello there")
    body["params"]["message"]["metadata"] = {"deep": nested}
    resp = await airlock.mesh_client.post("/", json=body, headers=bearer())
    assert (await resp.json())["result"]["kind"] == "task"


async def test_a_batch_is_refused_clearly(airlock: Airlock) -> None:
    err = await rpc_error(airlock, [guide_message("one"), guide_message("two")], expect_id=None)
    assert err["code"] == -32600 and "batches are not supported" in err["message"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
@pytest.mark.parametrize("path", ["/", "/send"])
async def test_a_body_not_sent_as_json_is_invalid_request(
    airlock: Airlock, content_type: str | None, path: str
) -> None:
    headers = {**bearer(), **({"Content-Type": content_type} if content_type else {})}
    raw = orjson.dumps({"jsonrpc": "2.0", "id": "t", "method": "tasks/get", "params": {"id": "x"}})
    resp = await airlock.mesh_client.post(path, data=raw, headers=headers)
    assert resp.status == 200 and resp.content_type == "application/json"
    reply = await resp.json()
    assert reply["error"]["code"] == -32600 and "Content-Type" in reply["error"]["message"]
