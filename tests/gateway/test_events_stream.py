"""``GET /v1/events/stream``: Server-Sent Events from the durable event log, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_gateway_app
from gateway.routes_observe import HEARTBEAT_S, STREAMS
from mesh.auth import TokenVerifier
from tests.conftest import GUIDE_POLICY, SECRET, Airlock, bearer, guide_message
from tests.gateway.conftest import STRUCTURED_FIELDS, error_of, wait_for
from tests.gateway.test_structured_input import GOOD, PASSWORD

HEARTBEAT = 0.2


@dataclass
class Frame:
    """One SSE block: its fields and any comment lines."""

    id: int | None = None
    event: str | None = None
    data: dict[str, Any] | None = None
    comments: list[str] = field(default_factory=list)


class SseReader:
    def __init__(self, resp: ClientResponse) -> None:
        self.resp = resp
        self.raw = b""

    async def frame(self, timeout_s: float = 5.0) -> Frame:
        frame, seen = Frame(), False
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no SSE frame within {timeout_s}s; got so far: {self.raw!r}")
            line = await asyncio.wait_for(self.resp.content.readline(), remaining)
            if not line:
                raise AssertionError(f"stream ended; got: {self.raw!r}")
            self.raw += line
            text = line.decode().rstrip("\n")
            if text == "":
                if seen:
                    return frame
                continue
            seen = True
            name, _, value = text.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                frame.comments.append(value)
            elif name == "id":
                frame.id = int(value)
            elif name == "event":
                frame.event = value
            elif name == "data":
                frame.data = json.loads(value)

    async def events(self, done: Callable[[list[Frame]], bool], timeout_s: float = 5.0) -> list[Frame]:
        """Frames with an event in them, read until ``done`` holds for them."""
        got: list[Frame] = []
        deadline = time.monotonic() + timeout_s
        while not done(got):
            frame = await self.frame(max(deadline - time.monotonic(), 0.01))
            if frame.event is not None:
                got.append(frame)
        return got


@pytest.fixture
async def gw(airlock: Airlock) -> AsyncIterator[TestClient]:
    """A second gateway over the same mesh, with a short heartbeat."""
    app = create_gateway_app(airlock.mesh, TokenVerifier(secret=SECRET), notifications=False)
    app[HEARTBEAT_S] = HEARTBEAT
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def open_stream(gw: TestClient, headers: dict[str, str] | None = None, **extra: str) -> SseReader:
    resp = await gw.get("/v1/events/stream", headers={**(headers or bearer()), **extra})
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/event-stream"
    return SseReader(resp)


def kinds(frames: list[Frame]) -> list[str]:
    return [f.event or "" for f in frames]


def has(*wanted: str) -> Callable[[list[Frame]], bool]:
    def done(frames: list[Frame]) -> bool:
        got = kinds(frames)
        return all(w in got for w in wanted)

    return done


def assert_well_formed(frames: list[Frame]) -> None:
    ids = [f.id for f in frames]
    assert all(isinstance(i, int) for i in ids), ids
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
    for f in frames:
        assert f.data is not None and f.data["id"] == f.id and f.data["kind"] == f.event, f


async def test_stream_tells_of_a_hold_and_its_resolution(airlock: Airlock, gw: TestClient) -> None:
    await airlock.add_policy()
    sse = await open_stream(gw)
    task = await airlock.hold()
    [created] = await sse.events(has("approval.created"))
    assert created.event == "approval.created"
    assert created.data is not None
    assert created.data["subject"] == task["id"]
    assert created.data["data"]["task_id"] == task["id"]
    assert created.data["data"]["approval_id"] == task["metadata"]["airlock"]["approvalId"]
    assert created.data["data"]["state"] == "input-required"

    assert (await airlock.resolve(task["id"], {"decision": "approve"})).status == 200
    later = await sse.events(has("approval.resolved", "task.updated"))
    assert kinds(later)[0] == "approval.resolved"
    resolved = later[0]
    assert resolved.data is not None and resolved.data["data"]["status"] == "approved"
    assert later[-1].data is not None and later[-1].data["data"]["state"] == "completed"
    assert_well_formed([created, *later])
    assert created.id is not None and resolved.id is not None and created.id < resolved.id


async def test_last_event_id_resumes_with_nothing_lost(airlock: Airlock, gw: TestClient) -> None:
    await airlock.add_policy()
    sse = await open_stream(gw)
    first_task = await airlock.hold()
    assert (await airlock.resolve(first_task["id"], {"decision": "deny"})).status == 200
    seen = await sse.events(has("approval.created", "approval.resolved"))
    sse.resp.close()
    first = seen[0]
    assert first.event == "approval.created" and first.id is not None

    # while no one listens, more happens
    second_task = await airlock.hold()
    assert (await airlock.resolve(second_task["id"], {"decision": "deny"})).status == 200

    expected = [e.seq for e in await airlock.mesh.store.events_after("default", first.id)]
    assert len(expected) >= 3
    again = await open_stream(gw, **{"Last-Event-ID": str(first.id)})
    resumed = await again.events(lambda got: len(got) >= len(expected))
    assert [f.id for f in resumed] == expected
    assert first.id not in [f.id for f in resumed]
    assert [f.id for f in seen[1:]] == expected[: len(seen) - 1]  # what the first stream saw, in the same order
    assert kinds(resumed)[-2:] == ["approval.created", "approval.resolved"]
    assert_well_formed(resumed)
    # and nothing more: the next frame is a heartbeat, not a repeat
    frame = await again.frame(timeout_s=3)
    assert frame.event is None and frame.comments == ["heartbeat"]


async def test_another_tenants_stream_sees_none_of_it(airlock: Airlock, gw: TestClient) -> None:
    await airlock.add_policy()
    other = bearer("bob", "approver", "admin", tenant="tenant-b")
    resp = await airlock.gateway.post("/internal/policies/new", json=GUIDE_POLICY, headers=other)
    assert resp.status == 201, await resp.text()
    theirs = await open_stream(gw, other)
    ours = await open_stream(gw)

    task = await airlock.hold()
    assert (await airlock.resolve(task["id"], {"decision": "deny"})).status == 200  # the records stay to delete
    await ours.events(has("approval.created", "approval.resolved"))

    reply = await airlock.rpc(guide_message(), other)
    b_task = reply["result"]
    assert b_task["status"]["state"] == "input-required"
    got = await theirs.events(has("approval.created"))
    assert [f.data["subject"] for f in got if f.data] == [b_task["id"]]
    assert task["id"].encode() not in theirs.raw


async def test_no_sensitive_value_reaches_a_stream(airlock: Airlock, gw: TestClient) -> None:
    await airlock.add_policy(
        evaluator={"plugin": "bulk_operation", "config": {"threshold": 10, "fields": STRUCTURED_FIELDS}}
    )
    sse = await open_stream(gw)
    task = await airlock.hold()
    resp = await airlock.resolve(task["id"], GOOD)
    assert resp.status == 200, await resp.text()
    await sse.events(has("approval.created", "approval.resolved", "task.updated"))
    replay = await open_stream(gw, **{"Last-Event-ID": "0"})
    await replay.events(has("approval.created", "approval.resolved", "task.updated"))
    for raw in (sse.raw, replay.raw):
        assert PASSWORD.encode() not in raw
        assert b"nightly cleanup" not in raw  # nor the other values typed into the form


async def test_heartbeat_comments_while_idle(gw: TestClient) -> None:
    sse = await open_stream(gw)
    frame = await sse.frame(timeout_s=3)
    while "heartbeat" not in frame.comments:
        frame = await sse.frame(timeout_s=3)
    assert frame.event is None and frame.id is None
    assert b": heartbeat\n\n" in sse.raw


async def test_stream_ends_when_the_client_leaves(gw: TestClient) -> None:
    sse = await open_stream(gw)
    await sse.frame()
    streams = gw.server.app[STREAMS]
    assert len(streams) == 1
    sse.resp.close()
    await wait_for(lambda: not streams, timeout_s=5)


async def test_stream_needs_an_admin_or_an_approver(gw: TestClient) -> None:
    await error_of(await gw.get("/v1/events/stream"), 401)
    await error_of(await gw.get("/v1/events/stream", headers=bearer("dave", "agent")), 403)
    await error_of(await gw.get("/v1/events/stream", headers={**bearer(), "Last-Event-ID": "nope"}), 400)
    for too_big in (str(2**63), "1" * 40):
        await error_of(await gw.get("/v1/events/stream", headers={**bearer(), "Last-Event-ID": too_big}), 400)
        await error_of(await gw.get(f"/v1/events/stream?last_event_id={too_big}", headers=bearer()), 400)


@pytest.mark.parametrize("query", ["last_event_id=abc", "last_event_id=", "last_event_id=-1", "last_event_id=1.5"])
async def test_a_last_event_id_query_that_is_no_event_id_is_400_naming_it(gw: TestClient, query: str) -> None:
    await error_of(await gw.get(f"/v1/events/stream?{query}", headers=bearer()), 400, field="last_event_id")
