"""Admin routes for policies and plugins, and the guide's "permanently allow" step."""

from __future__ import annotations

import copy

import pytest

from tests.conftest import GUIDE_POLICY, Airlock, bearer, tool_message
from tests.gateway.conftest import auth, error_of, pending, token

PLUGINS = {"bulk_operation", "tool_match", "command_match", "path_match", "always"}
ADMIN = bearer("root", "admin")


async def create(airlock: Airlock, body: dict, headers: dict[str, str] | None = None):
    return await airlock.gateway.post("/internal/policies/new", json=body, headers=headers or ADMIN)


async def update(airlock: Airlock, body: dict, headers: dict[str, str] | None = None):
    return await airlock.gateway.post("/internal/policies/update", json=body, headers=headers or ADMIN)


async def delete(airlock: Airlock, body: dict, headers: dict[str, str] | None = None):
    return await airlock.gateway.post("/internal/policies/delete", json=body, headers=headers or ADMIN)


async def listing(airlock: Airlock) -> list[dict]:
    resp = await airlock.gateway.get("/internal/policies", headers=ADMIN)
    assert resp.status == 200
    return (await resp.json())["policies"]


async def test_create_the_guides_policy(airlock: Airlock) -> None:
    resp = await create(airlock, GUIDE_POLICY)
    assert resp.status == 201
    body = await resp.json()
    assert body["policy_id"] == "bulk_ops_approval"
    assert body["name"] == "bulk_ops_approval"
    assert body["description"] == GUIDE_POLICY["description"]
    assert body["scope_type"] == "tool"
    assert body["enforcement"] == "require_approval"
    assert body["evaluator"] == {"plugin": "bulk_operation", "config": {"threshold": 10}}
    assert body["tenant_id"] == "default"
    assert body["created_at"] and body["updated_at"]
    assert await listing(airlock) == [body]


async def test_same_name_again_is_409(airlock: Airlock) -> None:
    assert (await create(airlock, GUIDE_POLICY)).status == 201
    err = await error_of(await create(airlock, {**GUIDE_POLICY, "description": "another"}), 409)
    assert err["code"] == "conflict"
    [stored] = await listing(airlock)
    assert stored["description"] == GUIDE_POLICY["description"]


async def test_same_name_in_another_tenant_is_its_own_policy(airlock: Airlock) -> None:
    assert (await create(airlock, GUIDE_POLICY)).status == 201
    resp = await create(airlock, GUIDE_POLICY, bearer("b-admin", "admin", tenant="tenant-b"))
    assert resp.status == 201
    assert (await resp.json())["tenant_id"] == "tenant-b"


def with_evaluator(plugin: object, config: object = None) -> dict:
    body = copy.deepcopy(GUIDE_POLICY)
    body["evaluator"] = {"plugin": plugin} if config is None else {"plugin": plugin, "config": config}
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (with_evaluator("no_such_plugin", {}), "evaluator.plugin"),
        (with_evaluator("", {}), "evaluator.plugin"),
        (with_evaluator("bulk_operation", {}), "evaluator.config.threshold"),
        (with_evaluator("bulk_operation", {"threshold": "ten"}), "evaluator.config.threshold"),
        (with_evaluator("bulk_operation", {"threshold": -1}), "evaluator.config.threshold"),
        (with_evaluator("bulk_operation", {"threshold": 10, "treshold": 5}), "evaluator.config.treshold"),
        (with_evaluator("bulk_operation", "threshold=10"), "evaluator.config"),
        (with_evaluator("tool_match", {"tools": []}), "evaluator.config.tools"),
        ({**GUIDE_POLICY, "enforcement": "maybe"}, "enforcement"),
        ({**GUIDE_POLICY, "enforcement": 3}, "enforcement"),
        ({**GUIDE_POLICY, "scope_type": "planet"}, "scope_type"),
        ({**GUIDE_POLICY, "name": ""}, "name"),
        ({**GUIDE_POLICY, "name": "has space"}, "name"),
        ({**GUIDE_POLICY, "colour": "red"}, "colour"),
        ({**GUIDE_POLICY, "timeout": "soon"}, "timeout"),
        ({**GUIDE_POLICY, "timeout": 0}, "timeout"),
        ({**GUIDE_POLICY, "priority": "high"}, "priority"),
        ({**GUIDE_POLICY, "enabled": "yes"}, "enabled"),
        ({**GUIDE_POLICY, "channels": "ops"}, "channels"),
        ({**GUIDE_POLICY, "channels": ["no-such-channel"]}, "channels"),
        ({k: v for k, v in GUIDE_POLICY.items() if k != "evaluator"}, "evaluator"),
        ({k: v for k, v in GUIDE_POLICY.items() if k != "name"}, "name"),
        (
            with_evaluator("bulk_operation", {"threshold": 1, "fields": [{"id": "x", "type": "colour"}]}),
            "evaluator.config.fields",
        ),
        (
            with_evaluator("bulk_operation", {"threshold": 1, "fields": [{"id": "decision", "type": "text"}]}),
            "evaluator.config.fields",
        ),
    ],
)
async def test_bad_policy_is_400_naming_the_field(airlock: Airlock, body: dict, field: str) -> None:
    await error_of(await create(airlock, body), 400, field=field)
    assert await listing(airlock) == []


@pytest.mark.parametrize(("alias", "canonical"), [("deny", "block"), ("ask", "require_approval")])
async def test_enforcement_aliases(airlock: Airlock, alias: str, canonical: str) -> None:
    resp = await create(airlock, {**GUIDE_POLICY, "enforcement": alias})
    assert resp.status == 201
    assert (await resp.json())["enforcement"] == canonical


async def test_ask_alias_holds_and_deny_alias_blocks(airlock: Airlock) -> None:
    assert (await create(airlock, {**GUIDE_POLICY, "enforcement": "ask"})).status == 201
    await airlock.hold()
    assert (await update(airlock, {"policy_id": "bulk_ops_approval", "enforcement": "deny"})).status == 200
    reply = await airlock.rpc(
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "message/send",
            "params": {
                "message": {
                    "role": "user",
                    "parts": [{"kind": "text", "text": "Delete all expired records from the staging database"}],
                }
            },
        }
    )
    assert reply["result"]["status"]["state"] == "rejected"
    assert await airlock.executions() == 0


@pytest.mark.parametrize("roles", [("approver",), ("agent",), ("agent", "approver")])
async def test_non_admin_is_403_on_every_admin_route(airlock: Airlock, roles: tuple[str, ...]) -> None:
    assert (await create(airlock, GUIDE_POLICY)).status == 201
    headers = auth(token("mallory", *roles))
    await error_of(await create(airlock, {**GUIDE_POLICY, "name": "other"}, headers), 403)
    await error_of(await update(airlock, {"policy_id": "bulk_ops_approval", "enforcement": "allow"}, headers), 403)
    await error_of(await delete(airlock, {"policy_id": "bulk_ops_approval"}, headers), 403)
    await error_of(await airlock.gateway.get("/internal/policies", headers=headers), 403)
    await error_of(await airlock.gateway.get("/internal/plugins", headers=headers), 403)
    [stored] = await listing(airlock)
    assert stored["enforcement"] == "require_approval"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/internal/policies/new"),
        ("POST", "/internal/policies/update"),
        ("POST", "/internal/policies/delete"),
        ("GET", "/internal/policies"),
        ("GET", "/internal/plugins"),
        ("POST", "/internal/channels/new"),
        ("GET", "/internal/channels"),
        ("POST", "/internal/channels/delete"),
    ],
)
async def test_admin_routes_need_a_token(airlock: Airlock, method: str, path: str) -> None:
    kwargs = {"json": {}} if method == "POST" else {}
    await error_of(await airlock.gateway.request(method, path, **kwargs), 401)
    await error_of(await airlock.gateway.request(method, path, headers={"Authorization": "Bearer x"}, **kwargs), 401)


async def test_update_returns_the_policy_and_unknown_is_404(airlock: Airlock) -> None:
    assert (await create(airlock, GUIDE_POLICY)).status == 201
    resp = await update(airlock, {"policy_id": "bulk_ops_approval", "evaluator": {"config": {"threshold": 100}}})
    assert resp.status == 200
    body = await resp.json()
    assert body["policy_id"] == "bulk_ops_approval"
    assert body["evaluator"] == {"plugin": "bulk_operation", "config": {"threshold": 100}}
    assert body["enforcement"] == "require_approval"
    [stored] = await listing(airlock)
    assert stored["evaluator"]["config"] == {"threshold": 100}
    await error_of(await update(airlock, {"policy_id": "nope", "enforcement": "allow"}), 404)
    await error_of(await update(airlock, {"enforcement": "allow"}), 400, field="policy_id")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"enforcement": "sometimes"}, "enforcement"),
        ({"evaluator": {"plugin": "bogus"}}, "evaluator.plugin"),
        ({"evaluator": {"config": {"threshold": "x"}}}, "evaluator.config.threshold"),
        ({"name": "renamed"}, "name"),
        ({"channels": ["ghost"]}, "channels"),
        ({"bogus": 1}, "bogus"),
    ],
)
async def test_bad_update_is_400_naming_the_field(airlock: Airlock, change: dict, field: str) -> None:
    assert (await create(airlock, GUIDE_POLICY)).status == 201
    await error_of(await update(airlock, {"policy_id": "bulk_ops_approval", **change}), 400, field=field)
    [stored] = await listing(airlock)
    assert stored["enforcement"] == "require_approval"
    assert stored["evaluator"] == GUIDE_POLICY["evaluator"]


async def test_guide_update_to_allow_runs_without_a_hold(airlock: Airlock) -> None:
    assert (await create(airlock, GUIDE_POLICY)).status == 201
    held = await airlock.hold()
    assert held["status"]["state"] == "input-required"
    resp = await update(airlock, {"policy_id": "bulk_ops_approval", "enforcement": "allow"})
    assert resp.status == 200
    assert (await resp.json())["enforcement"] == "allow"
    reply = await airlock.rpc(
        {
            "jsonrpc": "2.0",
            "id": "2",
            "method": "message/send",
            "params": {
                "message": {
                    "role": "user",
                    "parts": [{"kind": "text", "text": "Delete all expired records from the staging database"}],
                    "contextId": "session-123",
                }
            },
        }
    )
    assert reply["result"]["status"]["state"] == "completed"
    assert await airlock.executions() == 1
    status, body = await pending(airlock, bearer())
    assert status == 200
    assert [m["message_id"] for m in body["messages"]] == [held["id"]], "only the earlier hold is pending"
    resp = await update(airlock, {"policy_id": "bulk_ops_approval", "enforcement": "require_approval"})
    assert resp.status == 200
    again = await airlock.rpc(tool_message("bulk_delete_expired", {"items": [f"rec-{i:03d}" for i in range(11)]}))
    assert again["result"]["status"]["state"] == "input-required"
    assert await airlock.executions() == 1


async def test_delete_then_again_is_404(airlock: Airlock) -> None:
    assert (await create(airlock, GUIDE_POLICY)).status == 201
    resp = await delete(airlock, {"policy_id": "bulk_ops_approval"})
    assert resp.status == 200
    body = await resp.json()
    assert body["ok"] is True and body["policy_id"] == "bulk_ops_approval"
    assert await listing(airlock) == []
    await error_of(await delete(airlock, {"policy_id": "bulk_ops_approval"}), 404)
    await error_of(await delete(airlock, {}), 400, field="policy_id")
    reply = await airlock.rpc(
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "message/send",
            "params": {
                "message": {
                    "role": "user",
                    "parts": [{"kind": "text", "text": "Delete all expired records from the staging database"}],
                }
            },
        }
    )
    assert reply["result"]["status"]["state"] == "completed", "a deleted policy holds nothing"


async def test_delete_in_another_tenant_is_404(airlock: Airlock) -> None:
    assert (await create(airlock, GUIDE_POLICY)).status == 201
    await error_of(
        await delete(airlock, {"policy_id": "bulk_ops_approval"}, bearer("b", "admin", tenant="tenant-b")), 404
    )
    assert len(await listing(airlock)) == 1


async def test_list_policies_in_name_order(airlock: Airlock) -> None:
    for name in ("zeta", "alpha", "mid"):
        assert (await create(airlock, {**GUIDE_POLICY, "name": name})).status == 201
    assert [p["policy_id"] for p in await listing(airlock)] == ["alpha", "mid", "zeta"]
    other = await airlock.gateway.get("/internal/policies", headers=bearer("b", "admin", tenant="tenant-b"))
    assert (await other.json())["policies"] == []


async def test_plugins_listing(airlock: Airlock) -> None:
    resp = await airlock.gateway.get("/internal/plugins", headers=ADMIN)
    assert resp.status == 200
    plugins = {p["name"]: p for p in (await resp.json())["plugins"]}
    assert PLUGINS <= set(plugins)
    for name in PLUGINS:
        schema = plugins[name]["config_schema"]
        assert isinstance(schema, dict) and schema["type"] == "object"
        assert "properties" in schema
        assert isinstance(plugins[name]["description"], str) and plugins[name]["description"]
    assert "threshold" in plugins["bulk_operation"]["config_schema"]["required"]


@pytest.mark.parametrize(
    ("plugin", "config"),
    [
        ("tool_match", {"tools": ["bulk_*"]}),
        ("command_match", {"patterns": ["rm -rf *"]}),
        ("path_match", {"paths": ["/etc/**"]}),
        ("always", {}),
        ("bulk_operation", {"threshold": 0, "items_keys": ["items"]}),
    ],
)
async def test_each_plugin_accepts_a_valid_config(airlock: Airlock, plugin: str, config: dict) -> None:
    resp = await create(airlock, {**with_evaluator(plugin, config), "name": f"p-{plugin}"})
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["evaluator"] == {"plugin": plugin, "config": config}


@pytest.mark.parametrize("timeout", [10**30, 2**62, "99999999999d", 10**9])
async def test_timeout_too_far_away_is_400_naming_timeout(airlock: Airlock, timeout: object) -> None:
    await error_of(await create(airlock, {**GUIDE_POLICY, "timeout": timeout}), 400, field="timeout")
    assert (await create(airlock, GUIDE_POLICY)).status == 201
    await error_of(await update(airlock, {"policy_id": "bulk_ops_approval", "timeout": timeout}), 400, field="timeout")
    # holds keep working and listing them never breaks
    await airlock.hold()
    status, body = await pending(airlock, bearer())
    assert status == 200 and body["total"] == 1


async def test_long_but_sane_timeout_is_kept(airlock: Airlock) -> None:
    resp = await create(airlock, {**GUIDE_POLICY, "timeout": "30d"})
    assert resp.status == 201
    assert (await resp.json())["timeout"] == 30 * 86400
    await airlock.hold()
    status, body = await pending(airlock, bearer())
    assert status == 200 and body["total"] == 1
