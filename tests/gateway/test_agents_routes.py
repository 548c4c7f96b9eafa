"""``/internal/agents/*``: add a downstream agent by its card, list, delete; admin only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.agents.remote import RemoteAgent
from tests.conftest import Airlock, bearer, serving
from tests.gateway.conftest import error_of
from tests.mesh.agents.test_remote_agents import ECHO_SKILL, EchoPeer, free_port, to_agent


@pytest.fixture
def peer() -> Iterator[EchoPeer]:
    """A real a2a-sdk agent on loopback."""
    server = EchoPeer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def add(airlock: Airlock, body: Any, headers: dict[str, str] | None = None) -> Any:
    return await airlock.gateway.post(
        "/internal/agents/new", json=body, headers=headers if headers is not None else bearer()
    )


async def audit_kinds(airlock: Airlock) -> list[tuple[str, str]]:
    return [(e.kind, e.subject) for e in await airlock.mesh.store.audit_entries() if e.kind.startswith("agent.")]


async def test_add_list_delete(airlock: Airlock, peer: EchoPeer) -> None:
    resp = await add(airlock, {"name": "echo", "url": peer.url + "/"})
    assert resp.status == 201
    body = await resp.json()
    assert body["name"] == "echo" and body["url"] == peer.url
    assert body["card"]["name"] == "Echo"
    assert [s["id"] for s in body["skills"]] == [ECHO_SKILL]
    assert isinstance(airlock.mesh.agents.get("echo"), RemoteAgent)

    listed = await (await airlock.gateway.get("/internal/agents", headers=bearer())).json()
    by_name = {a["name"]: a for a in listed["agents"]}
    assert by_name["staging-db"]["kind"] == "local"
    assert by_name["echo"]["kind"] == "remote" and by_name["echo"]["url"] == peer.url
    assert [s["id"] for s in by_name["echo"]["skills"]] == [ECHO_SKILL]

    resp = await airlock.gateway.post("/internal/agents/delete", json={"name": "echo"}, headers=bearer())
    assert resp.status == 200
    assert await resp.json() == {"ok": True, "name": "echo"}
    assert airlock.mesh.agents.get("echo") is None
    reply = await airlock.rpc(to_agent("still there?"))
    assert "no agent named 'echo'" in reply["error"]["message"]
    resp = await airlock.gateway.post("/internal/agents/delete", json={"name": "echo"}, headers=bearer())
    await error_of(resp, 404)
    listed = await (await airlock.gateway.get("/internal/agents", headers=bearer())).json()
    assert [a["name"] for a in listed["agents"]] == ["staging-db"]
    assert await audit_kinds(airlock) == [("agent.created", "echo"), ("agent.deleted", "echo")]


async def test_the_card_is_found_at_the_older_path(airlock: Airlock) -> None:
    async def card(request: web.Request) -> web.Response:
        origin = str(request.url.origin())
        return web.json_response({"name": "old", "url": origin + "/rpc", "protocolVersion": "0.2.5", "skills": []})

    app = web.Application()
    app.router.add_get("/.well-known/agent.json", card)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        resp = await add(airlock, {"name": "old", "url": str(server.make_url(""))})
        assert resp.status == 201, await resp.text()
        agent = airlock.mesh.agents.get("old")
        assert isinstance(agent, RemoteAgent) and agent.endpoint.endswith("/rpc")
    finally:
        await server.close()


async def test_a_taken_name_is_a_conflict(airlock: Airlock, peer: EchoPeer) -> None:
    assert (await add(airlock, {"name": "echo", "url": peer.url})).status == 201
    await error_of(await add(airlock, {"name": "echo", "url": peer.url}), 409, field="name")
    await error_of(await add(airlock, {"name": "staging-db", "url": peer.url}), 409, field="name")
    assert airlock.mesh.agents.default == "staging-db"
    assert await audit_kinds(airlock) == [("agent.created", "echo")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1:1"}, "name"),
        ({"name": "", "url": "http://127.0.0.1:1"}, "name"),
        ({"name": "has space", "url": "http://127.0.0.1:1"}, "name"),
        ({"name": "x" * 101, "url": "http://127.0.0.1:1"}, "name"),
        ({"name": "guard", "url": "http://127.0.0.1:1"}, "name"),
        ({"name": "ok"}, "url"),
        ({"name": "ok", "url": "ftp://example.com"}, "url"),
        ({"name": "ok", "url": "http://127.0.0.1:1", "extra": 1}, "extra"),
    ],
)
async def test_bad_bodies(airlock: Airlock, body: dict[str, Any], field: str) -> None:
    await error_of(await add(airlock, body), 400, field=field)


async def test_an_unreachable_url_is_rejected(airlock: Airlock) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    err = await error_of(await add(airlock, {"name": "gone", "url": url}), 400, field="url")
    assert "unreachable" in err["message"]
    assert airlock.mesh.agents.get("gone") is None
    assert await airlock.mesh.store.list_agents() == []


class CardServer:
    def __init__(self) -> None:
        self.card: Any = {}
        self.status = 200
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        if isinstance(self.card, str):
            return web.Response(text=self.card, status=self.status)
        return web.json_response(self.card, status=self.status)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def card_server() -> AsyncIterator[CardServer]:
    cards = CardServer()
    async with serving(cards, [("GET", "/.well-known/agent-card.json", cards.handle)]):
        yield cards


V1_ONLY = {
    "name": "new",
    "supportedInterfaces": [{"url": "http://127.0.0.1:9/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
}


@pytest.mark.parametrize(
    ("card", "status", "said"),
    [
        ("not json", 200, "not JSON"),
        ([1, 2], 200, "not a JSON object"),
        ({"name": "x"}, 404, "HTTP 404"),
        ({"url": "http://127.0.0.1:9/"}, 200, "has no name"),
        (V1_ONLY, 200, "no JSON-RPC interface at protocol 0.3"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "preferredTransport": "GRPC"}, 200, "no JSON-RPC interface"),
        ({"name": "x", "url": "http://127.0.0.1:9/", "skills": "many"}, 200, "skills must be a list"),
    ],
)
async def test_an_invalid_card_is_rejected(
    airlock: Airlock, card_server: CardServer, card: Any, status: int, said: str
) -> None:
    card_server.card, card_server.status = card, status
    err = await error_of(await add(airlock, {"name": "bad", "url": card_server.url}), 400, field="url")
    assert said in err["message"]
    assert airlock.mesh.agents.get("bad") is None


async def test_routes_need_a_token_and_the_admin_role(airlock: Airlock, peer: EchoPeer) -> None:
    body = {"name": "echo", "url": peer.url}
    await error_of(await add(airlock, body, headers={}), 401)
    await error_of(await add(airlock, body, headers=bearer("bob", "approver")), 403)
    await error_of(await airlock.gateway.get("/internal/agents", headers={}), 401)
    await error_of(await airlock.gateway.get("/internal/agents", headers=bearer("bob", "agent")), 403)
    assert (await add(airlock, body)).status == 201
    for headers, status in (({}, 401), (bearer("bob", "approver"), 403)):
        resp = await airlock.gateway.post("/internal/agents/delete", json={"name": "echo"}, headers=headers)
        await error_of(resp, status)
    assert isinstance(airlock.mesh.agents.get("echo"), RemoteAgent)
    assert peer.calls == []


async def test_delete_checks_its_body(airlock: Airlock) -> None:
    resp = await airlock.gateway.post("/internal/agents/delete", json={}, headers=bearer())
    await error_of(resp, 400, field="name")
    resp = await airlock.gateway.post("/internal/agents/delete", json={"name": "staging-db"}, headers=bearer())
    await error_of(resp, 400, field="name")
    assert airlock.mesh.agents.get("staging-db") is not None
