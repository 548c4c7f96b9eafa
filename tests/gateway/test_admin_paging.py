"""The admin listings are paged (``limit``, an opaque ``cursor``, ``next_cursor``), the admin and observation
bodies and queries are parsed by the models of ``gateway.models`` (a 400 names the field), and what the routes
answer fits the schemas the document generates from them."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.errors import ApiError
from gateway.models.admin import AgentCreate, encode_cursor
from gateway.models.base import parse
from gateway.openapi import SPEC_PATH
from mesh.store import AgentRecord
from tests.conftest import GUIDE_POLICY, Airlock, bearer
from tests.gateway.conftest import error_of
from tests.gateway.test_openapi import DOC_URI, assert_matches

ADMIN = bearer("root", "admin")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def registry(doc: dict[str, Any]) -> Registry:
    return Registry().with_resource(DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))


async def walk(airlock: Airlock, doc: dict, registry: Registry, path: str, key: str, limit: int) -> list[str]:
    """Every item's name, a page at a time from ``next_cursor`` until it is null; each page fits the document."""
    names: list[str] = []
    query = f"?limit={limit}"
    for _ in range(100):
        resp = await airlock.gateway.get(path + query, headers=ADMIN)
        body = await assert_matches(doc, registry, resp, path, "get", 200)
        assert len(body[key]) <= limit
        names += [item["name"] for item in body[key]]
        if body["next_cursor"] is None:
            return names
        query = f"?limit={limit}&cursor={body['next_cursor']}"
    raise AssertionError("the walk did not end")


def policy(name: str) -> dict[str, Any]:
    return {**copy.deepcopy(GUIDE_POLICY), "name": name}


@pytest.mark.parametrize("limit", [1, 2, 5, 7, 500])
async def test_policies_page_by_name_without_repeats_or_skips(
    airlock: Airlock, doc: dict, registry: Registry, limit: int
) -> None:
    names = ["p.7", "P6", "p5", "a:4", "z3", "Z2", "m_1"]
    for name in names:
        await airlock.add_policy(policy(name))
    walked = await walk(airlock, doc, registry, "/internal/policies", "policies", limit)
    assert sorted(walked) == sorted(names) and len(walked) == len(names)
    listed = await (await airlock.gateway.get("/internal/policies", headers=ADMIN)).json()
    assert [p["name"] for p in listed["policies"]] == walked and listed["next_cursor"] is None


async def test_channels_page_by_name_without_repeats_or_skips(airlock: Airlock, doc: dict, registry: Registry) -> None:
    names = [f"ch-{i}" for i in (5, 3, 9, 1, 7)]
    for name in names:
        body = {"name": name, "type": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}}
        resp = await airlock.gateway.post("/internal/channels/new", json=body, headers=ADMIN)
        await assert_matches(doc, registry, resp, "/internal/channels/new", "post", 201)
    for limit in (1, 2, 5):
        assert await walk(airlock, doc, registry, "/internal/channels", "channels", limit) == sorted(names)


async def test_agents_page_local_then_downstream(airlock: Airlock, doc: dict, registry: Registry) -> None:
    card = {"name": "Remote", "url": "http://127.0.0.1:1/", "skills": []}
    async with airlock.mesh.store.transaction() as tx:
        for name in ("r-b", "r-a", "r-c"):
            await tx.put_agent(AgentRecord(name=name, url="http://127.0.0.1:1", card=card, created_at=1.0))
    local = sorted(a.name for a in airlock.mesh.agents.all())
    assert local  # the demo agent
    for limit in (1, 2, 3, 100):
        assert await walk(airlock, doc, registry, "/internal/agents", "agents", limit) == [*local, "r-a", "r-b", "r-c"]


@pytest.mark.parametrize("path", ["/internal/policies", "/internal/channels", "/internal/agents"])
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=x", "limit"),
        ("limit=", "limit"),
        ("limit=1.5", "limit"),
        ("cursor=", "cursor"),
        ("cursor=!!", "cursor"),
        ("cursor=a", "cursor"),  # not base64
        ("cursor=_w", "cursor"),  # not UTF-8
        (f"cursor={encode_cursor(chr(0))}", "cursor"),
        (f"cursor={'A' * 601}", "cursor"),
    ],
)
async def test_a_bad_limit_or_cursor_is_400_naming_it(
    airlock: Airlock, doc: dict, registry: Registry, path: str, query: str, field: str
) -> None:
    resp = await airlock.gateway.get(f"{path}?{query}", headers=ADMIN)
    err = await assert_matches(doc, registry, resp, path, "get", 400)
    assert err["error"]["field"] == field, err


async def test_an_agents_cursor_the_server_did_not_give_is_400(airlock: Airlock) -> None:
    for key in ("bogus:x", "local:", "remote"):
        resp = await airlock.gateway.get(f"/internal/agents?cursor={encode_cursor(key)}", headers=ADMIN)
        await error_of(resp, 400, field="cursor")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/internal/policies/delete", {}, "policy_id"),
        ("/internal/policies/delete", {"policy_id": 5}, "policy_id"),
        ("/internal/policies/delete", {"policy_id": ""}, "policy_id"),
        ("/internal/policies/new", {**GUIDE_POLICY, "priority": 2**31}, "priority"),
        ("/internal/policies/new", {**GUIDE_POLICY, "priority": True}, "priority"),
        ("/internal/policies/new", {**GUIDE_POLICY, "timeout": 10**10}, "timeout"),
        ("/internal/policies/new", {**GUIDE_POLICY, "timeout": "99999999d"}, "timeout"),
        ("/internal/policies/new", {**GUIDE_POLICY, "timeout": True}, "timeout"),
        ("/internal/policies/new", {**GUIDE_POLICY, "name": "x" * 101}, "name"),
        ("/internal/policies/new", {**GUIDE_POLICY, "description": 5}, "description"),
        ("/internal/policies/new", {**GUIDE_POLICY, "channels": [""]}, "channels.0"),
        ("/internal/policies/new", {**GUIDE_POLICY, "evaluator": {"plugin": "always", "x": 1}}, "evaluator.x"),
        ("/internal/policies/new", {**GUIDE_POLICY, "evaluator": {"plugin": 3}}, "evaluator.plugin"),
        ("/internal/policies/update", {"policy_id": "p", "enabled": None}, "enabled"),
        ("/internal/policies/update", {"policy_id": "p", "evaluator": None}, "evaluator"),
        ("/internal/channels/new", {"name": "x" * 101, "type": "webhook", "config": {}}, "name"),
        ("/internal/channels/new", {"name": "c", "type": 1, "config": {}}, "type"),
        ("/internal/channels/update", {"name": "c", "events": []}, "events"),
        ("/internal/channels/update", {"name": "c", "config": None}, "config"),
        ("/internal/channels/update", {"name": "c", "colour": "red"}, "colour"),
        ("/internal/channels/delete", {"name": ""}, "name"),
        ("/internal/channels/delete", {"name": ["c"]}, "name"),
        ("/internal/agents/new", {"name": "a", "url": "http://" + "x" * 2048}, "url"),
        ("/internal/agents/new", {"name": "a", "url": "http://[::1]:1/"}, "url"),
        ("/internal/agents/new", {"name": 5, "url": "http://127.0.0.1:1"}, "name"),
        ("/internal/agents/delete", {"name": 5}, "name"),
    ],
)
async def test_bodies_the_models_refuse_are_400_naming_the_field(
    airlock: Airlock, doc: dict, registry: Registry, path: str, body: dict, field: str
) -> None:
    resp = await airlock.gateway.post(path, json=body, headers=ADMIN)
    err = await assert_matches(doc, registry, resp, path, "post", 400)
    assert err["error"]["field"] == field, err


async def test_what_the_model_takes_the_mesh_takes_too(airlock: Airlock) -> None:
    """JSON's 900.0 is the integer 900, and an alias with spaces and capitals is still an enforcement."""
    body = {**GUIDE_POLICY, "enforcement": " ASK ", "timeout": 900.0, "priority": 5.0}
    created = await airlock.add_policy(body)
    assert (created["enforcement"], created["timeout"], created["priority"]) == ("require_approval", 900, 5)


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/audit", "limit=501", "limit"),
        ("/v1/audit", "after=-1", "after"),
        ("/internal/outbox", "limit=501", "limit"),
        ("/internal/outbox", "state=lost", "state"),
        ("/internal/outbox", "after=x", "after"),
    ],
)
async def test_the_audit_and_outbox_queries_are_models(
    airlock: Airlock, doc: dict, registry: Registry, path: str, query: str, field: str
) -> None:
    err = await assert_matches(
        doc, registry, await airlock.gateway.get(f"{path}?{query}", headers=ADMIN), path, "get", 400
    )
    assert err["error"]["field"] == field


async def test_observation_and_outbox_answers_fit_the_document(
    airlock: Airlock, doc: dict, registry: Registry, receiver: Any
) -> None:
    gw = airlock.gateway
    channel = {
        "name": "ops",
        "type": "webhook",
        "config": {"url": "http://127.0.0.1:9/down"},
        "events": ["approval.requested"],
    }
    await assert_matches(
        doc,
        registry,
        await gw.post("/internal/channels/new", json=channel, headers=ADMIN),
        "/internal/channels/new",
        "post",
        201,
    )
    update = {"name": "ops", "events": None, "config": {"input_requests": True}}
    await assert_matches(
        doc,
        registry,
        await gw.post("/internal/channels/update", json=update, headers=ADMIN),
        "/internal/channels/update",
        "post",
        200,
    )
    await airlock.add_policy(channels=["ops"])
    await airlock.hold()
    await airlock.hold("Delete all expired records again")

    status = await assert_matches(doc, registry, await gw.get("/v1/status", headers=ADMIN), "/v1/status", "get", 200)
    assert status["pending"] == 2 and status["policies"] == 1
    first = await assert_matches(
        doc, registry, await gw.get("/v1/audit?limit=1", headers=ADMIN), "/v1/audit", "get", 200
    )
    assert len(first["entries"]) == 1 and first["next_after"] == first["entries"][0]["seq"]
    rest = await gw.get(f"/v1/audit?after={first['next_after']}&limit=500", headers=ADMIN)
    body = await assert_matches(doc, registry, rest, "/v1/audit", "get", 200)
    assert body["next_after"] is None and all(e["seq"] > first["next_after"] for e in body["entries"])

    outbox = await assert_matches(
        doc, registry, await gw.get("/internal/outbox?limit=1", headers=ADMIN), "/internal/outbox", "get", 200
    )
    assert len(outbox["entries"]) == 1 and outbox["next_after"] == outbox["entries"][0]["id"]
    for state in ("dead", "delivered"):
        await assert_matches(
            doc,
            registry,
            await gw.get(f"/internal/outbox?state={state}", headers=ADMIN),
            "/internal/outbox",
            "get",
            200,
        )
    path = "/internal/outbox/{id}/retry"
    await assert_matches(
        doc, registry, await gw.post("/internal/outbox/999999/retry", headers=ADMIN), path, "post", 404
    )
    retried = await gw.post(f"/internal/outbox/{outbox['entries'][0]['id']}/retry", headers=ADMIN)
    assert (await assert_matches(doc, registry, retried, path, "post", 200))["ok"] is True

    types = await assert_matches(
        doc, registry, await gw.get("/internal/channel-types", headers=ADMIN), "/internal/channel-types", "get", 200
    )
    branches = {
        b["properties"]["type"]["const"]: b["properties"]["config"]
        for b in doc["components"]["schemas"]["ChannelCreate"]["oneOf"]
    }
    assert branches == {t["type"]: t["config_schema"] for t in types["types"]}  # the document carries the types' own
    plugins = await assert_matches(
        doc, registry, await gw.get("/internal/plugins", headers=ADMIN), "/internal/plugins", "get", 200
    )
    assert {p["name"] for p in plugins["plugins"]} == set(
        doc["components"]["schemas"]["Evaluator"]["properties"]["plugin"]["enum"]
    )
    resp = await gw.post("/internal/agents/delete", json={"name": "nobody"}, headers=ADMIN)
    await assert_matches(doc, registry, resp, "/internal/agents/delete", "post", 404)


@pytest.mark.parametrize("url", ["http://agents.internal:9000/", "https://a.example", "http://[::1]:8000/a2a"])
def test_an_agent_url_may_name_a_host_an_address_or_an_ipv6_literal(url: str) -> None:
    assert parse(AgentCreate, {"name": "peer", "url": url}).url == url


@pytest.mark.parametrize("url", ["ftp://a.example/", "http://", "http://[::1/x", "http://a b/"])
def test_an_agent_url_that_is_no_http_url_is_refused(url: str) -> None:
    with pytest.raises(ApiError) as exc:
        parse(AgentCreate, {"name": "peer", "url": url})
    assert exc.value.field == "url"
