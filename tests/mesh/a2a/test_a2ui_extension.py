"""The A2UI v0.9 A2A extension on the wire: advertised on the card, activated by the header or by
``a2uiClientCapabilities``, a surface after the Form part of every held status (v0.3 and v1.0), answered by
the A2UI ``action`` event through the one resolve path; clients that do not ask see exactly today's parts.

The real a2a-sdk client talks to a real server on loopback; every surface is checked against the official
v0.9 schemas in ``../shared/a2ui-v0.9``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestServer, unused_port
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from a2ui import BASIC_CATALOG_ID, EXTENSION_URI, MASK, MIME_TYPE
from mesh.a2a.app import create_mesh_app
from mesh.auth import TokenVerifier
from tests.conftest import GUIDE_POLICY, GUIDE_TEXT, SECRET, Airlock, bearer, guide_message, start_airlock

SPEC_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "a2ui-v0.9"
CATALOG_PLACEHOLDER = "https://a2ui.org/specification/v0_9/catalog.json"
CONNECT = "Connect to the production database"
PASSWORD = "correct-horse-battery-staple"
CAPABILITIES = {"a2uiClientCapabilities": {"v0.9": {"supportedCatalogIds": [BASIC_CATALOG_ID]}}}
EXT = {"X-A2A-Extensions": EXTENSION_URI}


def _load(relative: str) -> Any:
    return json.loads((SPEC_DIR / relative).read_text(encoding="utf-8"))


def _registry() -> Registry:
    if not SPEC_DIR.is_dir():
        reason = f"the official A2UI v0.9 schemas are not at {SPEC_DIR}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    catalog = DRAFT202012.create_resource(_load("catalogs/basic/catalog.json"))
    resources = [(CATALOG_PLACEHOLDER, catalog), (BASIC_CATALOG_ID, catalog)]
    for name in ("common_types", "server_to_client", "client_to_server"):
        schema = _load(f"json/{name}.json")
        resources.append((schema["$id"] if "$id" in schema else name, DRAFT202012.create_resource(schema)))
    return Registry().with_resources(resources)


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_load(f"json/{name}.json"), registry=_registry())


def assert_valid_surface(messages: Any) -> dict[str, dict[str, Any]]:
    """The messages validate as a server-to-client list, and the tree has one root and no dangling ids."""
    errors = [e.message for e in _validator("server_to_client_list").iter_errors(messages)]
    assert not errors, errors[:3]
    assert [next(k for k in m if k != "version") for m in messages][:2] == ["createSurface", "updateComponents"]
    assert messages[0]["createSurface"]["catalogId"] == BASIC_CATALOG_ID
    assert {m[next(k for k in m if k != "version")]["surfaceId"] for m in messages} == {
        messages[0]["createSurface"]["surfaceId"]
    }
    [update] = [m["updateComponents"] for m in messages if "updateComponents" in m]
    components = {c["id"]: c for c in update["components"]}
    assert len(components) == len(update["components"])
    referenced = [ref for c in components.values() for ref in [*c.get("children", []), c.get("child")] if ref]
    assert set(referenced) <= set(components), "a dangling child id"
    assert set(components) - set(referenced) == {"root"}, "exactly one root, everything reachable"
    return components


def surface_of_v03(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The v0.3 surface part (the a2a-sdk's wrapping of non-object data) unwrapped to its message list."""
    part = parts[1]
    assert part["kind"] == "data"
    assert part["metadata"] == {"mimeType": MIME_TYPE, "data_part_compat": True}
    return part["data"]["value"]


def buttons(components: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Buttons by their label's text."""
    return {components[c["child"]]["text"]: c for c in components.values() if c["component"] == "Button"}


def action_event(surface_id: str, button: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """What a client sends when the Button is clicked, bindings resolved into ``context``."""
    return {
        "version": "v0.9",
        "action": {
            "name": button["action"]["event"]["name"],
            "surfaceId": surface_id,
            "sourceComponentId": button["id"],
            "timestamp": "2026-01-15T12:00:00Z",
            "context": context,
        },
    }


def assert_valid_event(event: dict[str, Any]) -> None:
    errors = [e.message for e in _validator("client_to_server").iter_errors(event)]
    assert not errors, errors


@contextlib.asynccontextmanager
async def mesh_on_loopback(airlock: Airlock) -> AsyncIterator[str]:
    """The mesh app on a real port (the card's URL is the one clients call)."""
    port = unused_port()
    url = f"http://127.0.0.1:{port}/"
    server = TestServer(create_mesh_app(airlock.mesh, TokenVerifier(secret=SECRET), url), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield url
    finally:
        await server.close()


# --- the card -----------------------------------------------------------------------------------------------


async def test_card_advertises_the_extension(airlock: Airlock) -> None:
    card = await (await airlock.mesh_client.get("/.well-known/agent-card.json")).json()
    [extension] = card["capabilities"]["extensions"]
    assert extension["uri"] == "https://a2ui.org/a2a-extension/a2ui/v0.9"
    assert extension["required"] is False
    _registry()
    errors = [
        e.message for e in Draft202012Validator(_load("json/server_capabilities.json")).iter_errors(extension["params"])
    ]
    assert not errors, errors
    assert extension["params"]["v0.9"]["supportedCatalogIds"] == [BASIC_CATALOG_ID]


# --- the a2a-sdk client ----------------------------------------------------------------------------------------


class SdkClient:
    """An a2a-sdk client (v1.0 transport, chosen from the card) for one caller, activating A2UI or not."""

    def __init__(self, url: str, sub: str, *roles: str, a2ui: bool) -> None:
        self.url, self.a2ui = url, a2ui
        self.headers = bearer(sub, *roles)
        self.extension_headers: list[str | None] = []

    async def __aenter__(self) -> SdkClient:
        from a2a.client import ClientConfig, ClientFactory

        async def seen(response: httpx.Response) -> None:
            if response.request.method == "POST":
                self.extension_headers.append(response.headers.get("X-A2A-Extensions"))

        self.http = httpx.AsyncClient(headers=self.headers, timeout=10, event_hooks={"response": [seen]})
        self.client = await ClientFactory(ClientConfig(streaming=False, httpx_client=self.http)).create_from_url(
            self.url
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await self.http.aclose()

    def context(self) -> Any:
        from a2a.client.client import ClientCallContext
        from a2a.client.service_parameters import ServiceParametersFactory, with_a2a_extensions

        if not self.a2ui:
            return None
        return ClientCallContext(
            service_parameters=ServiceParametersFactory.create([with_a2a_extensions([EXTENSION_URI])])
        )

    async def send(self, message: Any) -> Any:
        from a2a.types import a2a_pb2 as pb

        responses = [
            r async for r in self.client.send_message(pb.SendMessageRequest(message=message), context=self.context())
        ]
        assert len(responses) == 1 and responses[0].HasField("task"), responses
        return responses[0].task

    async def text(self, text: str) -> Any:
        from a2a.types import a2a_pb2 as pb

        return await self.send(pb.Message(message_id=str(uuid.uuid4()), role=pb.ROLE_USER, parts=[pb.Part(text=text)]))

    async def action(self, task: Any, event: dict[str, Any], metadata: dict[str, Any] | None = None) -> Any:
        """The A2UI action event as the extension sends it: a DataPart whose data is the message list."""
        from a2a.types import a2a_pb2 as pb
        from google.protobuf.json_format import ParseDict

        part = pb.Part(media_type=MIME_TYPE)
        ParseDict([event], part.data)
        ParseDict({"mimeType": MIME_TYPE}, part.metadata)
        message = pb.Message(
            message_id=str(uuid.uuid4()), role=pb.ROLE_USER, parts=[part], task_id=task.id, context_id=task.context_id
        )
        if metadata:
            ParseDict(metadata, message.metadata)
        return await self.send(message)

    async def get(self, task_id: str, history_length: int = 0) -> Any:
        from a2a.types import a2a_pb2 as pb

        return await self.client.get_task(
            pb.GetTaskRequest(id=task_id, history_length=history_length), context=self.context()
        )


def parts_of(task: Any) -> list[dict[str, Any]]:
    from google.protobuf.json_format import MessageToDict

    return [MessageToDict(part) for part in task.status.message.parts]


def surface_of_v1(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A v1.0 surface part: ``data`` is the message list itself, tagged with the A2UI media type."""
    part = parts[1]
    assert part["mediaType"] == MIME_TYPE
    assert part["metadata"] == {"mimeType": MIME_TYPE}
    assert isinstance(part["data"], list)
    return part["data"]


async def test_sdk_client_gets_and_answers_the_seed_hold(tmp_path: Path) -> None:
    """The demo's bulk delete under require_approval: the requester's client and an approver's client both
    activate the extension; the approver clicks Approve and the task completes. A client that does not
    activate it gets exactly the parts it got before the extension existed."""
    from a2a.types import a2a_pb2 as pb
    from google.protobuf.json_format import MessageToDict

    async with start_airlock(tmp_path) as airlock:
        await airlock.add_policy()
        async with mesh_on_loopback(airlock) as url:
            async with SdkClient(url, "plain", "agent", a2ui=False) as plain:
                before = await plain.text(GUIDE_TEXT)
                plain_parts = parts_of(before)
                assert plain.extension_headers == [None]
                assert "extensions" not in MessageToDict(before.metadata).get("airlock", {})
            async with SdkClient(url, "alice", "agent", a2ui=True) as alice:
                assert alice.client._card.capabilities.extensions[0].uri == EXTENSION_URI
                held = await alice.text(GUIDE_TEXT)
                assert held.status.state == pb.TASK_STATE_INPUT_REQUIRED
                parts = parts_of(held)
                assert len(parts) == 2
                assert parts[0] == plain_parts[0], "the Form part stays first and exactly as without the extension"
                assert len(plain_parts) == 1
                messages = surface_of_v1(parts)
                components = assert_valid_surface(messages)
                assert set(buttons(components)) == {"Approve", "Deny"}
                assert alice.extension_headers == [EXTENSION_URI]
                # a later read by the same client shows the same surface
                again = await alice.get(held.id)
                assert parts_of(again) == parts

            surface_id = messages[0]["createSurface"]["surfaceId"]
            approve = buttons(components)["Approve"]
            event = action_event(surface_id, approve, {"decision": "approve"})
            assert_valid_event(event)
            async with SdkClient(url, "bob", "approver", a2ui=True) as bob:
                seen = await bob.get(held.id)
                assert surface_of_v1(parts_of(seen)) == messages
                done = await bob.action(held, event)
                assert done.status.state == pb.TASK_STATE_COMPLETED, parts_of(done)
        assert await airlock.executions() == 1


async def test_sdk_client_answers_the_credentials_form(tmp_path: Path) -> None:
    """The demo agent's request for credentials: the password input is obscured, Submit answers it, and the
    password reaches the agent once but history only masked."""
    from a2a.types import a2a_pb2 as pb

    async with start_airlock(tmp_path) as airlock, mesh_on_loopback(airlock) as url:
        async with SdkClient(url, "alice", "agent", a2ui=True) as alice:
            held = await alice.text(CONNECT)
            assert held.status.state == pb.TASK_STATE_INPUT_REQUIRED
            parts = parts_of(held)
            assert parts[0]["data"]["type"] == "Form"
            messages = surface_of_v1(parts)
            components = assert_valid_surface(messages)
            assert components["field-password"]["component"] == "TextField"
            assert components["field-password"]["variant"] == "obscured"
            assert components["field-password"]["value"] == {"path": "/password"}
            assert components["field-username"]["value"] == {"path": "/username"}
            assert components["field-remember_me"]["component"] == "CheckBox"
            submit = buttons(components)["Submit"]
            assert submit["action"]["event"]["context"] == {
                "username": {"path": "/username"},
                "password": {"path": "/password"},
                "remember_me": {"path": "/remember_me"},
            }
            surface_id = messages[0]["createSurface"]["surfaceId"]
            context = {"username": "ops@example.com", "password": PASSWORD, "remember_me": True}
            event = action_event(surface_id, submit, context)
            assert_valid_event(event)
            done = await alice.action(held, event)
            assert done.status.state == pb.TASK_STATE_COMPLETED
            assert "as ops@example.com; will remember you" in done.status.message.parts[0].text
            history = await alice.get(held.id, history_length=50)
            from google.protobuf.json_format import MessageToJson

            dumped = MessageToJson(history)
            assert PASSWORD not in dumped
            assert MASK in dumped


# --- v0.3 JSON on the wire ---------------------------------------------------------------------------------------


async def test_v03_header_activation_shows_the_surface_everywhere(airlock: Airlock) -> None:
    await airlock.add_policy()
    plain = await airlock.rpc(guide_message())
    resp = await airlock.mesh_client.post("/", json=guide_message(), headers={**bearer(), **EXT})
    assert resp.headers["X-A2A-Extensions"] == EXTENSION_URI
    assert (
        "X-A2A-Extensions" not in (await airlock.mesh_client.post("/", json=guide_message(), headers=bearer())).headers
    )
    task = (await resp.json())["result"]
    parts = task["status"]["message"]["parts"]
    assert parts[0] == plain["result"]["status"]["message"]["parts"][0]
    assert plain["result"]["status"]["message"]["parts"] == parts[:1], "no change for clients that did not ask"
    assert_valid_surface(surface_of_v03(parts))
    assert task["metadata"]["airlock"]["extensions"] == [EXTENSION_URI]
    assert "extensions" not in plain["result"]["metadata"]["airlock"]

    # later reads, without the header, find the activation kept on the task
    got = await airlock.rpc({"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"]}})
    assert got["result"]["status"]["message"]["parts"] == parts
    stream = await airlock.mesh_client.post(
        "/",
        json={"jsonrpc": "2.0", "id": 3, "method": "tasks/resubscribe", "params": {"id": task["id"]}},
        headers=bearer(),
    )
    line = b""
    while not line.startswith(b"data: "):  # the first event; the stream stays open while the task is held
        line = await stream.content.readline()
    stream.close()
    first = json.loads(line[6:])
    assert first["result"]["status"]["message"]["parts"] == parts
    v1 = await airlock.rpc({"jsonrpc": "2.0", "id": 4, "method": "GetTask", "params": {"id": task["id"]}})
    v1_parts = v1["result"]["status"]["message"]["parts"]
    assert v1_parts[1]["data"] == surface_of_v03(parts)
    assert v1_parts[1]["mediaType"] == MIME_TYPE and "data_part_compat" not in v1_parts[1]["metadata"]
    history = await airlock.rpc(
        {"jsonrpc": "2.0", "id": 5, "method": "tasks/get", "params": {"id": task["id"], "historyLength": 5}}
    )
    assert history["result"]["history"][-1]["parts"] == parts


async def test_v03_stream_with_capabilities_in_metadata(airlock: Airlock) -> None:
    """``a2uiClientCapabilities`` in the message metadata activates it too, and the held status-update
    event of ``message/stream`` carries the surface."""
    await airlock.add_policy()
    body = guide_message(metadata=CAPABILITIES)
    body["method"] = "message/stream"
    resp = await airlock.mesh_client.post("/", json=body, headers=bearer())
    assert resp.headers["X-A2A-Extensions"] == EXTENSION_URI
    events = [json.loads(line[6:]) for line in (await resp.text()).splitlines() if line.startswith("data: ")]
    last = events[-1]["result"]
    assert last["kind"] == "status-update" and last["status"]["state"] == "input-required"
    assert_valid_surface(surface_of_v03(last["status"]["message"]["parts"]))


async def test_v03_capabilities_for_another_catalog_do_not_activate(airlock: Airlock) -> None:
    await airlock.add_policy()
    other = {"a2uiClientCapabilities": {"v0.9": {"supportedCatalogIds": ["https://example.com/catalog.json"]}}}
    resp = await airlock.mesh_client.post("/", json=guide_message(metadata=other), headers=bearer())
    assert "X-A2A-Extensions" not in resp.headers
    assert len((await resp.json())["result"]["status"]["message"]["parts"]) == 1


def v03_action(task: dict[str, Any], event: dict[str, Any], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """A v0.3 client's action: the list in the a2a-sdk's v0.3 wrapping (DataPart data must be an object)."""
    message: dict[str, Any] = {
        "role": "user",
        "taskId": task["id"],
        "parts": [
            {"kind": "data", "data": {"value": [event]}, "metadata": {"mimeType": MIME_TYPE, "data_part_compat": True}}
        ],
    }
    if metadata is not None:
        message["metadata"] = metadata
    return {"jsonrpc": "2.0", "id": "a", "method": "message/send", "params": {"message": message}}


async def test_requester_cannot_approve_its_own_hold_by_action(airlock: Airlock) -> None:
    await airlock.add_policy()
    alice = bearer("alice", "agent")
    task = await airlock.hold(headers={**alice, **EXT})
    messages = surface_of_v03(task["status"]["message"]["parts"])
    components = assert_valid_surface(messages)
    event = action_event(
        messages[0]["createSurface"]["surfaceId"], buttons(components)["Approve"], {"decision": "approve"}
    )
    refused = await airlock.rpc(v03_action(task, event), {**alice, **EXT})
    today = await airlock.rpc(
        {
            "jsonrpc": "2.0",
            "id": "a",
            "method": "message/send",
            "params": {
                "message": {
                    "role": "user",
                    "taskId": task["id"],
                    "parts": [{"kind": "data", "data": {"decision": "approve"}}],
                }
            },
        },
        alice,
    )
    assert refused["error"] == today["error"]
    assert refused["error"]["code"] == -32004 and refused["error"]["data"]["status"] == 403
    got = await airlock.rpc({"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"]}})
    assert got["result"]["status"]["state"] == "input-required"
    assert await airlock.executions() == 0

    # an approver's click (as a single event object, as a plain v0.3 client may send it) resolves it
    answered = await airlock.rpc(
        {
            "jsonrpc": "2.0",
            "id": "b",
            "method": "message/send",
            "params": {"message": {"role": "user", "taskId": task["id"], "parts": [{"kind": "data", "data": event}]}},
        },
        bearer("bob", "approver"),
    )
    assert answered["result"]["status"]["state"] == "completed", answered
    assert await airlock.executions() == 1


async def test_action_from_another_surface_is_invalid_params(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold(headers={**bearer("alice", "agent"), **EXT})
    event = action_event(
        "airlock-some-earlier-hold", {"id": "x", "action": {"event": {"name": "decision"}}}, {"decision": "approve"}
    )
    reply = await airlock.rpc(v03_action(task, event), bearer("bob", "approver"))
    assert reply["error"]["code"] == -32602
    assert "not the one this task shows" in reply["error"]["message"]
    assert await airlock.executions() == 0


async def test_password_in_an_action_event_is_masked_in_history(airlock: Airlock) -> None:
    """A policy hold that asks for a password too: an event that gives the password but no decision (from a
    caller who may not resolve) is only noted in history, its context and data model masked."""
    fields = [{"id": "otp", "type": "password", "label": "One-time password", "required": True}]
    evaluator = {**GUIDE_POLICY["evaluator"], "config": {"threshold": 10, "fields": fields}}
    await airlock.add_policy(evaluator=evaluator)
    task = await airlock.hold(headers={**bearer("alice", "agent"), **EXT})
    messages = surface_of_v03(task["status"]["message"]["parts"])
    components = assert_valid_surface(messages)
    assert components["field-otp"]["variant"] == "obscured"
    approve = buttons(components)["Approve"]
    assert approve["action"]["event"]["context"] == {"otp": {"path": "/otp"}, "decision": "approve"}
    surface_id = messages[0]["createSurface"]["surfaceId"]
    event = action_event(surface_id, {"id": "field-otp", "action": {"event": {"name": "typed"}}}, {"otp": PASSWORD})
    model = {"a2uiClientDataModel": {"version": "v0.9", "surfaces": {surface_id: {"otp": PASSWORD}}}}
    noted = await airlock.rpc(v03_action(task, event, model), bearer("carol", "agent"))
    assert noted["result"]["status"]["state"] == "input-required", noted
    history = await airlock.rpc(
        {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"], "historyLength": 10}}
    )
    dumped = json.dumps(history)
    assert PASSWORD not in dumped
    last = history["result"]["history"][-1]
    assert last["parts"][0]["data"]["value"][0]["action"]["context"] == {"otp": MASK}
    assert last["metadata"]["a2uiClientDataModel"]["surfaces"][surface_id] == {"otp": MASK}

    # the approver answers with the data model in metadata (not in the context): resolved, value masked
    event = action_event(surface_id, approve, {"decision": "approve"})
    done = await airlock.rpc(v03_action(task, event, model), bearer("bob", "approver"))
    assert done["result"]["status"]["state"] == "completed", done
    history = await airlock.rpc(
        {"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"id": task["id"], "historyLength": 20}}
    )
    assert PASSWORD not in json.dumps(history)
