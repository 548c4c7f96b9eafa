"""``schemas/openapi.json``: a valid OpenAPI 3.1 document that matches the routes and what they answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.app import create_gateway_app
from gateway.models.document import QUERIES, query_parameters
from gateway.models.document import schemas as generated_schemas
from gateway.openapi import SPEC_PATH
from tests.conftest import GUIDE_POLICY, Airlock, bearer, tool_message

DOC_URI = "urn:airlock:gateway:openapi"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
JSON = "application/json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def registry(doc: dict[str, Any]) -> Registry:
    return Registry().with_resource(DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))


def pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def response_schema_uri(doc: dict[str, Any], registry: Registry, path: str, method: str, status: int) -> str:
    """The URI of the JSON schema declared for one response, following a ``$ref`` to a shared response."""
    responses = doc["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not declare {status}"
    location = pointer("paths", path, method, "responses", str(status))
    response = responses[str(status)]
    if "$ref" in response:
        location = response["$ref"].removeprefix("#")
        response = registry.resolver().lookup(f"{DOC_URI}#{location}").contents
    assert JSON in response["content"], f"{method.upper()} {path} {status} has no JSON body"
    return f"{DOC_URI}#{location}{pointer('content', JSON, 'schema')}"


async def assert_matches(
    doc: dict[str, Any], registry: Registry, resp: Any, path: str, method: str, status: int
) -> Any:
    """The response has the expected status and its body fits the schema the document declares for it."""
    body = await resp.json()
    assert resp.status == status, body
    assert resp.content_type == JSON
    uri = response_schema_uri(doc, registry, path, method, status)
    validator = Draft202012Validator(
        {"$ref": uri}, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return body


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"].startswith("3.1")


def test_every_schema_reference_resolves(doc: dict[str, Any], registry: Registry) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs
    resolver = registry.resolver()
    for ref in refs:
        assert ref.startswith("#/"), ref
        resolver.lookup(f"{DOC_URI}{ref}")


def test_the_error_shape_is_shared_by_every_error_response(doc: dict[str, Any], registry: Registry) -> None:
    error = doc["components"]["schemas"]["Error"]
    assert set(error["properties"]["error"]["required"]) == {"code", "message"}
    assert "field" in error["properties"]["error"]["properties"]
    resolver = registry.resolver()
    for path, item in doc["paths"].items():
        for method in METHODS:
            for status, response in item.get(method, {}).get("responses", {}).items():
                if int(status) < 400 or path == "/healthz":
                    continue
                contents = resolver.lookup(f"{DOC_URI}{response['$ref']}").contents if "$ref" in response else response
                assert contents["content"][JSON]["schema"] == {"$ref": "#/components/schemas/Error"}, (
                    f"{method.upper()} {path} {status}"
                )


def test_security_bearer_jwt_except_health_and_the_document(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert doc["security"] == [{"bearerAuth": []}]
    for path in ("/healthz", "/openapi.json"):
        assert doc["paths"][path]["get"]["security"] == []
    resolve = doc["paths"]["/messages/{id}/resolve"]["post"]
    assert {} in resolve["security"] and {"bearerAuth": []} in resolve["security"]
    body = resolve["requestBody"]["content"][JSON]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "callback_token" in doc["components"]["schemas"][body]["properties"]


async def test_the_routes_and_the_document_name_the_same_operations(airlock: Airlock, doc: dict[str, Any]) -> None:
    app = create_gateway_app(airlock.mesh, None, notifications=False)
    routed: set[tuple[str, str]] = set()
    for route in app.router.routes():
        assert route.resource is not None
        routed.add((route.method.lower(), route.resource.canonical))
    # aiohttp answers HEAD for every GET route by itself; the document lists the GET.
    heads = {(m, p) for m, p in routed if m == "head"}
    assert all(("get", p) in routed for _, p in heads)
    routed -= heads
    # the dashboard's HTML pages and static files are no JSON API (docs/dashboard.md describes them)
    routed = {(m, p) for m, p in routed if p != "/dashboard" and not p.startswith("/dashboard/")}
    documented = {(m, p) for p, item in doc["paths"].items() for m in METHODS if m in item}
    assert routed == documented
    assert ("get", "/openapi.json") in routed and ("get", "/healthz") in routed


async def test_get_openapi_json_serves_the_document_without_auth(airlock: Airlock, doc: dict[str, Any]) -> None:
    resp = await airlock.gateway.get("/openapi.json")
    assert resp.status == 200
    assert resp.content_type == JSON
    assert await resp.json() == doc
    again = await airlock.gateway.get("/openapi.json", headers=bearer())
    assert again.status == 200 and await again.read() == await resp.read()


async def test_pending_and_resolve_bodies_fit_their_declared_schemas(
    airlock: Airlock, doc: dict[str, Any], registry: Registry
) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    other = await airlock.hold()
    listing = await airlock.gateway.post("/messages/pending", json={"tenant_id": "default"}, headers=bearer())
    body = await assert_matches(doc, registry, listing, "/messages/pending", "post", 200)
    assert {m["message_id"] for m in body["messages"]} == {task["id"], other["id"]}

    path = "/messages/{id}/resolve"
    approved = await assert_matches(
        doc, registry, await airlock.resolve(task["id"], {"decision": "approve"}), path, "post", 200
    )
    assert approved["new_state"] == "completed"
    denied = await assert_matches(
        doc, registry, await airlock.resolve(other["id"], {"decision": "deny"}), path, "post", 200
    )
    assert denied["new_state"] == "rejected"
    conflict = await assert_matches(
        doc, registry, await airlock.resolve(task["id"], {"decision": "deny"}), path, "post", 409
    )
    assert conflict["error"]["code"] == "conflict"
    missing = await airlock.resolve("no-such-task", {"decision": "approve"})
    await assert_matches(doc, registry, missing, path, "post", 404)
    unauthenticated = await airlock.gateway.post(f"/messages/{task['id']}/resolve", json={"resolution": {}})
    await assert_matches(doc, registry, unauthenticated, path, "post", 401)


async def test_admin_and_health_bodies_fit_their_declared_schemas(
    airlock: Airlock, doc: dict[str, Any], registry: Registry, receiver: Any
) -> None:
    gw, admin = airlock.gateway, bearer("root", "admin")
    channel = {"name": "ops", "type": "webhook", "config": {"url": receiver.url}}
    resp = await gw.post("/internal/channels/new", json=channel, headers=admin)
    await assert_matches(doc, registry, resp, "/internal/channels/new", "post", 201)
    resp = await gw.post("/internal/channels/new", json=channel, headers=admin)
    await assert_matches(doc, registry, resp, "/internal/channels/new", "post", 409)
    await assert_matches(
        doc, registry, await gw.get("/internal/channels", headers=admin), "/internal/channels", "get", 200
    )

    policy = {**GUIDE_POLICY, "channels": ["ops"], "timeout": "15m"}
    resp = await gw.post("/internal/policies/new", json=policy, headers=admin)
    await assert_matches(doc, registry, resp, "/internal/policies/new", "post", 201)
    resp = await gw.post("/internal/policies/new", json={**policy, "priority": "high"}, headers=admin)
    err = await assert_matches(doc, registry, resp, "/internal/policies/new", "post", 400)
    assert "field" in err["error"]
    resp = await gw.post(
        "/internal/policies/update", json={"policy_id": policy["name"], "enforcement": "allow"}, headers=admin
    )
    await assert_matches(doc, registry, resp, "/internal/policies/update", "post", 200)
    await assert_matches(
        doc, registry, await gw.get("/internal/policies", headers=admin), "/internal/policies", "get", 200
    )
    await assert_matches(
        doc, registry, await gw.get("/internal/plugins", headers=admin), "/internal/plugins", "get", 200
    )
    resp = await gw.get("/internal/plugins", headers=bearer("bob", "approver"))
    await assert_matches(doc, registry, resp, "/internal/plugins", "get", 403)
    resp = await gw.post("/internal/policies/delete", json={"policy_id": policy["name"]}, headers=admin)
    await assert_matches(doc, registry, resp, "/internal/policies/delete", "post", 200)
    resp = await gw.post("/internal/policies/delete", json={"policy_id": policy["name"]}, headers=admin)
    await assert_matches(doc, registry, resp, "/internal/policies/delete", "post", 404)
    resp = await gw.post("/internal/channels/delete", json={"name": "ops"}, headers=admin)
    await assert_matches(doc, registry, resp, "/internal/channels/delete", "post", 200)
    await assert_matches(doc, registry, await gw.get("/healthz"), "/healthz", "get", 200)


def test_the_request_schemas_are_the_ones_the_models_generate(doc: dict[str, Any]) -> None:
    """Routes parse their bodies with gateway.models; the committed document must carry exactly what those
    models generate (after changing a model: python -m gateway.models)."""
    generated = generated_schemas()
    assert generated
    for name, schema in generated.items():
        assert doc["components"]["schemas"].get(name) == schema, f"{name}: run python -m gateway.models"


def test_the_query_parameters_are_the_ones_the_models_generate(doc: dict[str, Any]) -> None:
    """Routes parse their query strings with gateway.models; each operation's query parameters in the committed
    document are exactly what its model generates."""
    for (method, path), model in QUERIES.items():
        documented = [p for p in doc["paths"][path][method].get("parameters", []) if p.get("in") == "query"]
        assert documented == query_parameters(model), f"{method.upper()} {path}: run python -m gateway.models"


async def test_dry_run_bodies_fit_their_declared_schemas(
    airlock: Airlock, doc: dict[str, Any], registry: Registry
) -> None:
    gw, admin, path = airlock.gateway, bearer("root", "admin"), "/internal/policies/dry-run"
    for n in (12, 2):
        await airlock.rpc(tool_message("bulk_delete", {"items": list(range(n))}))
    result = await assert_matches(
        doc, registry, await gw.post(path, json={"policy": GUIDE_POLICY}, headers=admin), path, "post", 200
    )
    assert result["transitions"] == {"allow→require_approval": 1}
    bad = {"policy": {**GUIDE_POLICY, "priority": "high"}}
    await assert_matches(doc, registry, await gw.post(path, json=bad, headers=admin), path, "post", 400)
    missing = {"policy": GUIDE_POLICY, "replaces": "nope"}
    await assert_matches(doc, registry, await gw.post(path, json=missing, headers=admin), path, "post", 404)
    await airlock.add_policy()
    await assert_matches(
        doc, registry, await gw.post(path, json={"policy": GUIDE_POLICY}, headers=admin), path, "post", 409
    )
    update = {"policy_id": GUIDE_POLICY["name"], "enforcement": "allow", "dry_run": True}
    resp = await gw.post("/internal/policies/update", json=update, headers=admin)
    tried = await assert_matches(doc, registry, resp, "/internal/policies/update", "post", 200)
    # the 12-item call was allowed before the policy existed: the current set holds it, the change lets it through
    assert (tried["changed"], tried["differs_from_recorded"]) == (1, 1)
    assert tried["transitions"] == {"require_approval→allow": 1}
