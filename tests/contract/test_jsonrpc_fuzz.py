"""Hypothesis drives every JSON-RPC method of both A2A versions on a real ``airlock serve`` with malformed
params: each answer is a JSON-RPC error with one of the A2A codes (or a result), never -32603 (an internal
error), never a traceback, and the server logs no unhandled error."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from mesh.a2a.dispatch import dispatch_table
from mesh.wire import jsonrpc as rpc
from tests.e2e.conftest import Server, start_server, stop_server


class _Stub:
    def __getattr__(self, name: str) -> Any:
        return None


METHODS = sorted({*dispatch_table(_Stub()).methods, *dispatch_table(_Stub()).streams})  # type: ignore[arg-type]
A2A_CODES = {
    rpc.PARSE_ERROR,
    rpc.INVALID_REQUEST,
    rpc.METHOD_NOT_FOUND,
    rpc.INVALID_PARAMS,
    rpc.UNAUTHENTICATED,
    rpc.TASK_NOT_FOUND,
    rpc.TASK_NOT_CANCELABLE,
    rpc.PUSH_NOT_SUPPORTED,
    rpc.UNSUPPORTED_OPERATION,
    rpc.CONTENT_TYPE_NOT_SUPPORTED,
    rpc.INVALID_AGENT_RESPONSE,
    rpc.EXTENDED_CARD_NOT_CONFIGURED,
}
EXAMPLES = int(os.environ.get("AIRLOCK_FUZZ_RPC_EXAMPLES", "100"))  # per method
TIMEOUT_S = 10
CODES: dict[Any, int] = {}

# JSON values of every kind, a few levels deep
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# the names A2A params use, so the malformed values reach the checks behind the first one
KEYS = st.sampled_from(
    [
        "message",
        "id",
        "taskId",
        "contextId",
        "messageId",
        "role",
        "parts",
        "kind",
        "text",
        "data",
        "metadata",
        "configuration",
        "historyLength",
        "pushNotificationConfig",
        "pushNotificationConfigId",
        "url",
        "token",
        "name",
        "pageSize",
        "pageToken",
        "status",
        "tenant",
    ]
)
part = st.fixed_dictionaries(
    {}, optional={"kind": st.sampled_from(["text", "data", "file"]) | values, "text": values, "data": values}
)
message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "agent", "ROLE_USER", "ROLE_AGENT"]) | values,
        "parts": st.lists(part | values, max_size=3) | values,
        "messageId": st.text(max_size=8) | values,
        "kind": st.just("message") | values,
        "taskId": values,
        "contextId": values,
        "metadata": values,
    },
)
params = (
    st.dictionaries(KEYS, values, max_size=5)
    | st.fixed_dictionaries({"message": message}, optional={"configuration": values, "metadata": values})
    | st.fixed_dictionaries({"id": st.text(max_size=40) | values}, optional={"historyLength": values})
    | st.fixed_dictionaries({"taskId": values}, optional={"pushNotificationConfig": values, "id": values})
    | values
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # the limits are tested on their own (tests/flood); here they would only turn fuzzed calls into 429s
    server = start_server(tmp_path_factory.mktemp("rpc-fuzz") / "home", "--rate-limit", "off")
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    return server.token("fuzz", "agent", "approver")


def call(server: Server, token: str, body: Any) -> tuple[int, str, bytes]:
    req = urllib.request.Request(
        server.mesh_url + "/",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            kind = resp.headers.get_content_type()
            # a stream: its first event says whether the call was refused (a refusal is the only event)
            raw = resp.readline() + resp.readline() if kind == "text/event-stream" else resp.read()
            return resp.status, kind, raw
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type(), exc.read()


def replies(kind: str, raw: bytes) -> list[dict[str, Any]]:
    if kind == "text/event-stream":
        return [json.loads(line[5:]) for line in raw.splitlines() if line.startswith(b"data:")]
    assert kind == "application/json", raw[:200]
    return [json.loads(raw)]


@pytest.mark.parametrize("method", METHODS)
def test_malformed_params_get_only_a2a_errors(server: Server, token: str, method: str) -> None:
    @seed(int(os.environ.get("AIRLOCK_FUZZ_SEED", "1")))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(params=params, rid=st.text(max_size=8) | st.integers(-(2**53), 2**53))
    def fuzz(params: Any, rid: str | int) -> None:
        status, kind, raw = call(server, token, {"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        assert b"Traceback" not in raw, raw[:2000]
        assert status == 200, (status, raw[:500])
        for reply in replies(kind, raw):
            assert reply.get("jsonrpc") == "2.0", reply
            CODES[reply["error"]["code"] if "error" in reply else "result"] = (
                CODES.get(reply["error"]["code"] if "error" in reply else "result", 0) + 1
            )
            if "error" in reply:
                code = reply["error"]["code"]
                assert code != rpc.INTERNAL_ERROR, (params, reply)
                assert code in A2A_CODES, (params, reply)
                # a lone surrogate (json.dumps writes it, RFC 8259 calls it invalid) is a parse error, id null
                assert reply["id"] == (None if code == rpc.PARSE_ERROR else rid), reply

    fuzz()
    print(method, sorted(CODES.items(), key=str))  # what the calls came to, shown with pytest -s
    assert "Traceback" not in server.log(), server.log()[-4000:]
