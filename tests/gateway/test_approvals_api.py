"""``/v1/approvals``: list with run groups, get, create, resolve (persist), bulk resolve with run grants,
the queue limit, expiry, tenant isolation, and the same approvals as ``/messages/*`` (final for both)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.openapi import SPEC_PATH
from tests.conftest import Airlock, bearer, start_airlock, tool_message
from tests.gateway.conftest import Clock, error_of

AGENT = bearer("bot", "agent")
OTHER_AGENT = bearer("bot2", "agent")
APPROVER = bearer("bob", "approver")
ADMIN = bearer("root", "admin")
OTHER_TENANT = bearer("eve", "approver", "admin", "agent", tenant="acme")
EXEC_POLICY = {
    "name": "exec_needs_a_person",
    "scope_type": "tool",
    "enforcement": "require_approval",
    "evaluator": {"plugin": "tool_match", "config": {"tools": ["exec"]}},
}
CALL = {"tool": "exec", "agent": "deploy-bot", "message": "clean the build cache", "command": "rm -rf /tmp/cache"}


async def create(airlock: Airlock, headers: dict[str, str] | None = None, **body: Any) -> tuple[int, Any]:
    resp = await airlock.gateway.post(
        "/v1/approvals", json={**CALL, **body}, headers=AGENT if headers is None else headers
    )
    return resp.status, await resp.json()


async def created(airlock: Airlock, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    status, answer = await create(airlock, headers, **body)
    assert status == 201, answer
    return answer


async def get(airlock: Airlock, approval_id: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    resp = await airlock.gateway.get(f"/v1/approvals/{approval_id}", headers=APPROVER if headers is None else headers)
    return resp.status, await resp.json()


async def listing(airlock: Airlock, headers: dict[str, str] | None = None, **query: str) -> dict[str, Any]:
    resp = await airlock.gateway.get("/v1/approvals", params=query, headers=APPROVER if headers is None else headers)
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def resolve(airlock: Airlock, approval_id: str, body: Any, headers: dict[str, str] | None = None):
    return await airlock.gateway.post(
        f"/v1/approvals/{approval_id}/resolve", json=body, headers=APPROVER if headers is None else headers
    )


async def bulk(airlock: Airlock, body: Any, headers: dict[str, str] | None = None):
    return await airlock.gateway.post(
        "/v1/approvals/bulk-resolve", json=body, headers=APPROVER if headers is None else headers
    )


async def status_of(airlock: Airlock, approval_id: str) -> str:
    code, body = await get(airlock, approval_id)
    assert code == 200, body
    return body["status"]


async def audit_kinds(airlock: Airlock) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.kind, e.subject, e.detail) async for e in airlock.mesh.store.iter_audit()]


def exec_call(command: str, *, run_id: str | None = None, request_id: str = "1") -> dict[str, Any]:
    body = tool_message("exec", {"command": command}, request_id)
    if run_id is not None:
        body["params"]["message"]["metadata"] = {"run_id": run_id}
    return body


async def exec_hold(airlock: Airlock, command: str, **kw: Any) -> dict[str, Any]:
    reply = await airlock.rpc(exec_call(command, **kw), AGENT)
    task = reply["result"]
    assert task["status"]["state"] == "input-required", reply
    return task


# ---------------------------------------------------------------- create, get, list


async def test_create_get_and_list_an_approval(airlock: Airlock) -> None:
    status, answer = await create(airlock, run_id="run-1")
    assert status == 201, answer
    assert answer["status"] == "pending" and answer["id"] and answer["expires_at"]

    code, one = await get(airlock, answer["id"])
    assert code == 200
    assert one["id"] == answer["id"] and one["status"] == "pending"
    assert (one["tool"], one["command"], one["path"]) == ("exec", "rm -rf /tmp/cache", None)
    assert (one["agent"], one["run_id"], one["message"]) == ("deploy-bot", "run-1", "clean the build cache")
    assert one["session"] and one["created_at"] and one["expires_at"] == answer["expires_at"]
    assert "resolved_at" not in one and "resolved_by" not in one
    code, again = await get(airlock, answer["id"], AGENT)  # the agent may look at its request
    assert code == 200 and again["status"] == "pending"

    path_status, path_call = await create(airlock, tool="read", command=None, path="/etc/shadow")
    assert path_status == 201, path_call
    body = await listing(airlock)
    rows = {a["id"]: a for a in body["approvals"]}
    assert set(rows) == {answer["id"], path_call["id"]}
    assert rows[answer["id"]] == one
    assert (rows[path_call["id"]]["tool"], rows[path_call["id"]]["path"]) == ("read", "/etc/shadow")
    assert body["run_groups"] == []  # one approval is not a group


async def test_an_admin_may_create_an_approver_may_not(airlock: Airlock) -> None:
    assert (await create(airlock, ADMIN))[0] == 201
    status, body = await create(airlock, APPROVER)
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert len((await listing(airlock))["approvals"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent": "a", "message": "m"}, "tool"),
        ({**CALL, "tool": 7}, "tool"),
        ({**CALL, "tool": ""}, "tool"),
        ({**CALL, "tool": "x" * 201}, "tool"),
        ({"tool": "exec", "message": "m"}, "agent"),
        ({**CALL, "agent": ["a"]}, "agent"),
        ({"tool": "exec", "agent": "a"}, "message"),
        ({**CALL, "message": {"text": "hi"}}, "message"),
        ({**CALL, "command": 5}, "command"),
        ({**CALL, "command": ""}, "command"),
        ({**CALL, "path": False}, "path"),
        ({**CALL, "run_id": ""}, "run_id"),
        ({**CALL, "run_id": 12}, "run_id"),
        ({**CALL, "surprise": 1}, "surprise"),
    ],
)
async def test_create_names_the_bad_field(airlock: Airlock, body: dict[str, Any], field: str) -> None:
    resp = await airlock.gateway.post("/v1/approvals", json=body, headers=AGENT)
    await error_of(resp, 400, field=field)
    assert (await listing(airlock))["approvals"] == []


@pytest.mark.parametrize("raw", [b"", b"{", b"null", b"[]", b'"exec"', b"42", b"\xff\xfe", b'{"tool": "exec",}'])
async def test_create_with_a_body_that_is_not_an_object_is_400(airlock: Airlock, raw: bytes) -> None:
    headers = {**AGENT, "Content-Type": "application/json"}
    await error_of(await airlock.gateway.post("/v1/approvals", data=raw, headers=headers), 400)


async def test_get_an_unknown_approval_is_404(airlock: Airlock) -> None:
    resp = await airlock.gateway.get("/v1/approvals/no-such-id", headers=APPROVER)
    await error_of(resp, 404)


async def test_an_approval_of_another_tenant_is_not_found(airlock: Airlock) -> None:
    mine = await created(airlock, run_id="shared-run")
    await created(airlock, run_id="shared-run")
    resp = await airlock.gateway.get(f"/v1/approvals/{mine['id']}", headers=OTHER_TENANT)
    await error_of(resp, 404)
    await error_of(await resolve(airlock, mine["id"], {"approved": True}, OTHER_TENANT), 404)
    theirs = await listing(airlock, OTHER_TENANT)
    assert theirs == {"approvals": [], "run_groups": [], "next_cursor": None}
    resp = await bulk(airlock, {"run_id": "shared-run", "action": "approve"}, OTHER_TENANT)
    assert resp.status == 200 and await resp.json() == {"resolved": 0, "ids": []}
    assert await status_of(airlock, mine["id"]) == "pending"
    assert len((await listing(airlock))["approvals"]) == 2


async def test_every_route_needs_a_token(airlock: Airlock) -> None:
    approval = await created(airlock)
    aid = approval["id"]
    gw = airlock.gateway
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic YWxpY2U6cHc="}):
        await error_of(await gw.get("/v1/approvals", headers=headers), 401)
        await error_of(await gw.get(f"/v1/approvals/{aid}", headers=headers), 401)
        await error_of(await gw.post("/v1/approvals", json=CALL, headers=headers), 401)
        await error_of(await gw.post(f"/v1/approvals/{aid}/resolve", json={"approved": True}, headers=headers), 401)
        await error_of(await gw.get(f"/v1/approvals/{aid}/resolve", headers=headers), 401)
        resp = await gw.post("/v1/approvals/bulk-resolve", json={"run_id": "r", "action": "approve"}, headers=headers)
        await error_of(resp, 401)
    assert await status_of(airlock, aid) == "pending"
    assert len((await listing(airlock))["approvals"]) == 1


async def test_role_rules(airlock: Airlock) -> None:
    approval = await created(airlock, run_id="r")
    await error_of(await airlock.gateway.get("/v1/approvals", headers=AGENT), 403)
    await error_of(await resolve(airlock, approval["id"], {"approved": True}, AGENT), 403)
    await error_of(await bulk(airlock, {"run_id": "r", "action": "approve"}, AGENT), 403)
    assert await status_of(airlock, approval["id"]) == "pending"


# ---------------------------------------------------------------- resolve


async def test_approve_then_replay_is_gone(airlock: Airlock) -> None:
    approval = await created(airlock)
    resp = await resolve(airlock, approval["id"], {"approved": True})
    body = await resp.json()
    assert resp.status == 200, body
    assert {k: body[k] for k in ("id", "status", "approved", "persisted")} == {
        "id": approval["id"],
        "status": "approved",
        "approved": True,
        "persisted": False,
    }
    code, one = await get(airlock, approval["id"])
    assert code == 200
    assert one["status"] == "approved" and one["resolved_by"] == "bob" and one["resolved_at"]  # the caller
    assert (await listing(airlock))["approvals"] == []
    for again in ({"approved": True}, {"approved": False}):
        err = await error_of(await resolve(airlock, approval["id"], again), 410)
        assert err["code"] == "gone"
    assert await status_of(airlock, approval["id"]) == "approved"


async def test_deny_with_a_named_resolver(airlock: Airlock) -> None:
    approval = await created(airlock)
    resp = await resolve(airlock, approval["id"], {"approved": False, "resolved_by": "security-team"})
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "denied" and body["approved"] is False
    _, one = await get(airlock, approval["id"])
    assert (one["status"], one["resolved_by"]) == ("denied", "security-team")
    task = await airlock.mesh.store.get_task("default", approval["task_id"])
    assert task is not None and task.state == "rejected"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "approved"),
        ({"approved": "yes"}, "approved"),
        ({"approved": 1}, "approved"),
        ({"approved": None}, "approved"),
        ({"approved": True, "persist": "yes"}, "persist"),
        ({"approved": True, "resolved_by": 5}, "resolved_by"),
        ({"approved": True, "resolved_by": ""}, "resolved_by"),
        ({"approved": True, "resolved_by": "x" * 201}, "resolved_by"),
    ],
)
async def test_resolve_names_the_bad_field(airlock: Airlock, body: dict[str, Any], field: str) -> None:
    approval = await created(airlock)
    await error_of(await resolve(airlock, approval["id"], body), 400, field=field)
    assert await status_of(airlock, approval["id"]) == "pending"


@pytest.mark.parametrize("raw", [b"", b"{", b"null", b"[true]", b"true"])
async def test_resolve_with_a_body_that_is_not_an_object_is_400(airlock: Airlock, raw: bytes) -> None:
    approval = await created(airlock)
    headers = {**APPROVER, "Content-Type": "application/json"}
    resp = await airlock.gateway.post(f"/v1/approvals/{approval['id']}/resolve", data=raw, headers=headers)
    await error_of(resp, 400)
    assert await status_of(airlock, approval["id"]) == "pending"


async def test_resolve_an_unknown_approval_is_404(airlock: Airlock) -> None:
    await error_of(await resolve(airlock, "no-such-id", {"approved": True}), 404)


async def test_an_expired_approval_is_gone_and_never_listed(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock, timeout_s=60) as airlock:
        approval = await created(airlock)
        assert [a["id"] for a in (await listing(airlock))["approvals"]] == [approval["id"]]
        clock.advance(61)
        assert (await listing(airlock))["approvals"] == []
        _, one = await get(airlock, approval["id"])
        assert one["status"] == "expired"
        await error_of(await resolve(airlock, approval["id"], {"approved": True}), 410)
        task = await airlock.mesh.store.get_task("default", approval["task_id"])
        assert task is not None and task.state == "rejected"


async def test_a_pending_approval_past_its_time_is_expired_when_read(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock, timeout_s=60) as airlock:
        approval = await created(airlock)
        clock.advance(61)
        _, one = await get(airlock, approval["id"])  # before any sweep or resolve
        assert one["status"] == "expired" and one["resolved_by"] == "system"


# ---------------------------------------------------------------- persist


async def test_persist_adds_an_exact_rule_the_mesh_honours(airlock: Airlock) -> None:
    await airlock.add_policy(EXEC_POLICY)
    task = await exec_hold(airlock, "ls /srv/app")
    approval_id = task["metadata"]["airlock"]["approvalId"]
    assert approval_id in {a["id"] for a in (await listing(airlock))["approvals"]}

    resp = await resolve(airlock, approval_id, {"approved": True, "persist": True}, ADMIN)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["persisted"] is True and body["status"] == "approved"

    resp = await airlock.gateway.get("/internal/policies", headers=ADMIN)
    policies = (await resp.json())["policies"]
    exact = [p for p in policies if p["evaluator"]["plugin"] == "exact_call"]
    assert len(exact) == 1, policies
    assert exact[0]["enforcement"] == "allow"
    assert exact[0]["evaluator"]["config"] == {"tool": "exec", "command": "ls /srv/app"}

    same = await airlock.rpc(exec_call("ls /srv/app", request_id="2"), AGENT)
    assert same["result"]["status"]["state"] == "completed", same
    other = await airlock.rpc(exec_call("ls /srv/app; rm -rf /", request_id="3"), AGENT)
    assert other["result"]["status"]["state"] == "input-required", other
    wider = await airlock.rpc(exec_call("ls /srv", request_id="4"), AGENT)
    assert wider["result"]["status"]["state"] == "input-required", wider
    # the API honours the rule too
    status, answer = await create(airlock, command="ls /srv/app")
    assert status == 200 and answer["status"] == "approved", answer
    assert (await create(airlock, command="ls /srv/app2"))[0] == 201
    persisted = [e async for e in airlock.mesh.store.iter_audit() if e.kind == "rule.persisted"]
    assert [e.subject for e in persisted] == [approval_id]
    assert persisted[0].detail["rule"] == {"tool": "exec", "command": "ls /srv/app"}


async def test_persist_of_a_path_call(airlock: Airlock) -> None:
    approval = await created(airlock, tool="read", command=None, path="/var/log/app.log")
    resp = await resolve(airlock, approval["id"], {"approved": True, "persist": True}, ADMIN)
    assert resp.status == 200 and (await resp.json())["persisted"] is True
    assert (await create(airlock, tool="read", command=None, path="/var/log/app.log"))[0] == 200
    assert (await create(airlock, tool="read", command=None, path="/var/log/app.log.1"))[0] == 201
    assert (await create(airlock, tool="write", command=None, path="/var/log/app.log"))[0] == 201


async def test_persist_needs_the_admin_role(airlock: Airlock) -> None:
    approval = await created(airlock)
    err = await error_of(await resolve(airlock, approval["id"], {"approved": True, "persist": True}, APPROVER), 403)
    assert err["code"] == "forbidden"
    assert await status_of(airlock, approval["id"]) == "pending"
    resp = await airlock.gateway.get("/internal/policies", headers=ADMIN)
    assert (await resp.json())["policies"] == []


async def test_persist_with_a_denial_writes_nothing(airlock: Airlock) -> None:
    approval = await created(airlock)
    resp = await resolve(airlock, approval["id"], {"approved": False, "persist": True}, ADMIN)
    body = await resp.json()
    assert resp.status == 200 and body["persisted"] is False and body["status"] == "denied"
    resp = await airlock.gateway.get("/internal/policies", headers=ADMIN)
    assert (await resp.json())["policies"] == []


async def test_persist_of_a_call_without_an_exact_form_is_400_and_resolves_nothing(airlock: Airlock) -> None:
    approval = await created(airlock, tool="deploy", command=None)
    err = await error_of(await resolve(airlock, approval["id"], {"approved": True, "persist": True}, ADMIN), 400)
    assert err.get("field") == "persist"
    assert await status_of(airlock, approval["id"]) == "pending"


# ---------------------------------------------------------------- the mesh's holds


async def test_a_mesh_hold_resolved_here_is_final_for_messages(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    rows = (await listing(airlock))["approvals"]
    assert [r["task_id"] for r in rows] == [task["id"]]
    row = rows[0]
    assert row["id"] == task["metadata"]["airlock"]["approvalId"]
    assert row["session"] == "session-123" and row["status"] == "pending"

    resp = await resolve(airlock, row["id"], {"approved": True})
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "approved", body
    err = await error_of(await airlock.resolve(task["id"], {"decision": "deny"}), 409)
    assert err["code"] == "conflict"
    assert await airlock.executions() == 1
    state = await airlock.rpc({"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task["id"]}})
    assert state["result"]["status"]["state"] == "completed"


async def test_a_mesh_hold_resolved_through_messages_is_gone_here(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    approval_id = task["metadata"]["airlock"]["approvalId"]
    resp = await airlock.resolve(task["id"], {"decision": "deny"})
    assert resp.status == 200, await resp.text()
    err = await error_of(await resolve(airlock, approval_id, {"approved": True}), 410)
    assert err["code"] == "gone"
    assert await status_of(airlock, approval_id) == "denied"
    assert await airlock.executions() == 0
    assert (await listing(airlock))["approvals"] == []


# ---------------------------------------------------------------- run groups and bulk resolve


async def test_run_groups_name_runs_with_two_or_more_pending(airlock: Airlock) -> None:
    a1 = await created(airlock, run_id="run-a")
    a2 = await created(airlock, run_id="run-a")
    b1 = await created(airlock, run_id="run-b")
    loose = await created(airlock)
    body = await listing(airlock)
    assert {a["id"] for a in body["approvals"]} == {a1["id"], a2["id"], b1["id"], loose["id"]}
    assert body["run_groups"] == [{"run_id": "run-a", "count": 2, "ids": [a1["id"], a2["id"]]}]

    only_a = await listing(airlock, run_id="run-a")
    assert {a["id"] for a in only_a["approvals"]} == {a1["id"], a2["id"]}
    assert only_a["run_groups"] == body["run_groups"]
    only_b = await listing(airlock, run_id="run-b")
    assert [a["id"] for a in only_b["approvals"]] == [b1["id"]] and only_b["run_groups"] == []
    assert await listing(airlock, run_id="no-such-run") == {"approvals": [], "run_groups": [], "next_cursor": None}

    await resolve(airlock, a1["id"], {"approved": False})
    assert (await listing(airlock))["run_groups"] == []  # one left: no longer a group


async def test_bulk_approve_opens_a_run_grant(airlock: Airlock) -> None:
    a1 = await created(airlock, run_id="ci-42")
    a2 = await created(airlock, run_id="ci-42", command="make deploy")
    other_run = await created(airlock, run_id="ci-43")
    resp = await bulk(airlock, {"run_id": "ci-42", "action": "approve", "resolved_by": "release-manager"})
    body = await resp.json()
    assert resp.status == 200, body
    assert body["resolved"] == 2 and sorted(body["ids"]) == sorted([a1["id"], a2["id"]])
    for aid in body["ids"]:
        _, one = await get(airlock, aid)
        assert (one["status"], one["resolved_by"]) == ("approved", "release-manager")
    assert await status_of(airlock, other_run["id"]) == "pending"

    status, later = await create(airlock, run_id="ci-42", command="make smoke")
    assert status == 200, later
    assert later["status"] == "approved" and "ci-42" in later["message"]
    assert await status_of(airlock, later["id"]) == "approved"
    assert (await create(airlock, run_id="ci-42", agent="another-bot"))[0] == 201
    assert (await create(airlock, OTHER_AGENT, run_id="ci-42"))[0] == 201  # same agent name, another caller
    assert (await create(airlock, run_id="ci-44"))[0] == 201
    assert (await create(airlock))[0] == 201
    assert (await create(airlock, OTHER_TENANT, run_id="ci-42"))[0] == 201

    kinds = await audit_kinds(airlock)
    opened = [(s, d) for k, s, d in kinds if k == "grant.opened"]
    assert opened == [("ci-42", opened[0][1])] and opened[0][1]["agent"] == "deploy-bot"
    used = [(s, d) for k, s, d in kinds if k == "grant.used"]
    assert len(used) == 1 and used[0][0] == later["id"] and used[0][1]["run_id"] == "ci-42"


async def test_a_run_grant_covers_the_mesh_holds_of_that_run(airlock: Airlock) -> None:
    await airlock.add_policy(EXEC_POLICY)
    first = await exec_hold(airlock, "deploy a", run_id="run-7")
    second = await exec_hold(airlock, "deploy b", run_id="run-7", request_id="2")
    body = await listing(airlock)
    assert body["run_groups"][0]["run_id"] == "run-7" and body["run_groups"][0]["count"] == 2
    resp = await bulk(airlock, {"run_id": "run-7", "action": "approve"})
    assert (await resp.json())["resolved"] == 2
    for task in (first, second):
        got = await airlock.rpc({"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task["id"]}})
        assert got["result"]["status"]["state"] == "completed"
    later = await airlock.rpc(exec_call("deploy c", run_id="run-7", request_id="3"), AGENT)
    assert later["result"]["status"]["state"] == "completed", later
    elsewhere = await airlock.rpc(exec_call("deploy c", run_id="run-8", request_id="4"), AGENT)
    assert elsewhere["result"]["status"]["state"] == "input-required", elsewhere
    another_agent = await airlock.rpc(exec_call("deploy c", run_id="run-7", request_id="5"), OTHER_AGENT)
    assert another_agent["result"]["status"]["state"] == "input-required", another_agent


async def test_bulk_deny_opens_no_grant(airlock: Airlock) -> None:
    a1 = await created(airlock, run_id="r")
    a2 = await created(airlock, run_id="r")
    resp = await bulk(airlock, {"run_id": "r", "action": "deny"})
    body = await resp.json()
    assert resp.status == 200 and body["resolved"] == 2
    assert {await status_of(airlock, a1["id"]), await status_of(airlock, a2["id"])} == {"denied"}
    assert (await create(airlock, run_id="r"))[0] == 201
    assert not [k for k, _, _ in await audit_kinds(airlock) if k.startswith("grant.")]


async def test_bulk_with_ids_that_differ_from_the_pending_set_is_409(airlock: Airlock) -> None:
    a1 = await created(airlock, run_id="r")
    a2 = await created(airlock, run_id="r")
    for ids in ([a1["id"]], [a1["id"], a2["id"], "extra"], []):
        err = await error_of(await bulk(airlock, {"run_id": "r", "action": "approve", "ids": ids}), 409)
        assert err["code"] == "conflict"
    assert {a["id"] for a in (await listing(airlock, run_id="r"))["approvals"]} == {a1["id"], a2["id"]}
    assert not [k for k, _, _ in await audit_kinds(airlock) if k.startswith("grant.")]
    resp = await bulk(airlock, {"run_id": "r", "action": "approve", "ids": [a2["id"], a1["id"]]})
    assert resp.status == 200 and (await resp.json())["resolved"] == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "approve"}, "run_id"),
        ({"run_id": "", "action": "approve"}, "run_id"),
        ({"run_id": "  ", "action": "approve"}, "run_id"),
        ({"run_id": ["r"], "action": "approve"}, "run_id"),
        ({"run_id": "r"}, "action"),
        ({"run_id": "r", "action": "allow"}, "action"),
        ({"run_id": "r", "action": True}, "action"),
        ({"run_id": "r", "action": "approve", "ids": "a1"}, "ids"),
        ({"run_id": "r", "action": "approve", "ids": [1]}, "ids.0"),
        ({"run_id": "r", "action": "approve", "resolved_by": 3}, "resolved_by"),
        ({"run_id": "r", "action": "approve", "resolved_by": ""}, "resolved_by"),
    ],
)
async def test_bulk_names_the_bad_field(airlock: Airlock, body: dict[str, Any], field: str) -> None:
    a1 = await created(airlock, run_id="r")
    await error_of(await bulk(airlock, body), 400, field=field)
    assert await status_of(airlock, a1["id"]) == "pending"


@pytest.mark.parametrize("raw", [b"", b"{", b"null", b"[]", b'"r"'])
async def test_bulk_with_a_body_that_is_not_an_object_is_400(airlock: Airlock, raw: bytes) -> None:
    headers = {**APPROVER, "Content-Type": "application/json"}
    await error_of(await airlock.gateway.post("/v1/approvals/bulk-resolve", data=raw, headers=headers), 400)


async def test_bulk_skips_what_the_caller_caused_and_grants_nothing_for_it(airlock: Airlock) -> None:
    both = bearer("selfish", "agent", "approver")
    mine = await created(airlock, both, run_id="r", agent="selfish-bot")
    theirs = await created(airlock, run_id="r")
    resp = await bulk(airlock, {"run_id": "r", "action": "approve"}, both)
    body = await resp.json()
    assert resp.status == 200 and body["ids"] == [theirs["id"]]
    assert await status_of(airlock, mine["id"]) == "pending"
    # no grant for the agent whose call the caller could not approve
    assert (await create(airlock, both, run_id="r", agent="selfish-bot"))[0] == 201


# ---------------------------------------------------------------- the queue limit


async def test_a_full_queue_is_503(tmp_path: Path) -> None:
    async with start_airlock(tmp_path, max_pending=2) as airlock:
        first = await created(airlock)
        await created(airlock)
        status, body = await create(airlock)
        assert status == 503 and body["error"]["code"] == "unavailable", body
        assert len((await listing(airlock))["approvals"]) == 2
        assert (await resolve(airlock, first["id"], {"approved": False})).status == 200
        assert (await create(airlock))[0] == 201


# ---------------------------------------------------------------- the OpenAPI document


async def test_bodies_fit_the_declared_schemas(airlock: Airlock) -> None:
    doc = json.loads(SPEC_PATH.read_text())
    uri = "urn:airlock:gateway:openapi"
    registry = Registry().with_resource(uri, Resource.from_contents(doc, default_specification=DRAFT202012))

    async def fits(resp: Any, path: str, method: str) -> Any:
        body = await resp.json()
        response = doc["paths"][path][method]["responses"][str(resp.status)]
        if "$ref" in response:
            location = response["$ref"].removeprefix("#")
        else:
            location = f"/paths/{path.replace('/', '~1')}/{method}/responses/{resp.status}"
        validator = Draft202012Validator(
            {"$ref": f"{uri}#{location}/content/application~1json/schema"},
            registry=registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, (path, method, resp.status, errors)
        return body

    gw = airlock.gateway
    first = await fits(
        await gw.post("/v1/approvals", json={**CALL, "run_id": "r"}, headers=AGENT), "/v1/approvals", "post"
    )
    await fits(await gw.post("/v1/approvals", json={**CALL, "run_id": "r"}, headers=AGENT), "/v1/approvals", "post")
    await fits(await gw.post("/v1/approvals", json={"tool": 1}, headers=AGENT), "/v1/approvals", "post")
    listed = await fits(await gw.get("/v1/approvals", headers=APPROVER), "/v1/approvals", "get")
    assert len(listed["run_groups"]) == 1
    await fits(await gw.get("/v1/approvals", headers=AGENT), "/v1/approvals", "get")
    await fits(await gw.get(f"/v1/approvals/{first['id']}", headers=APPROVER), "/v1/approvals/{id}", "get")
    await fits(await gw.get("/v1/approvals/nope", headers=APPROVER), "/v1/approvals/{id}", "get")
    resolve_path = "/v1/approvals/{id}/resolve"
    await fits(await resolve(airlock, first["id"], {"approved": True}), resolve_path, "post")
    await fits(await resolve(airlock, first["id"], {"approved": True}), resolve_path, "post")
    await fits(await resolve(airlock, "nope", {"approved": True}), resolve_path, "post")
    await fits(
        await bulk(airlock, {"run_id": "r", "action": "approve", "ids": []}), "/v1/approvals/bulk-resolve", "post"
    )
    done = await fits(await bulk(airlock, {"run_id": "r", "action": "approve"}), "/v1/approvals/bulk-resolve", "post")
    assert done["resolved"] == 1
    later = await fits(
        await gw.post("/v1/approvals", json={**CALL, "run_id": "r"}, headers=AGENT), "/v1/approvals", "post"
    )
    assert later["status"] == "approved"
    await fits(await bulk(airlock, {"run_id": ""}), "/v1/approvals/bulk-resolve", "post")


async def test_a_stated_resolved_by_is_shown_but_the_audit_names_the_verified_caller(airlock: Airlock) -> None:
    approval = await created(airlock)
    resp = await resolve(airlock, approval["id"], {"approved": True, "resolved_by": "someone-else"})
    assert resp.status == 200, await resp.text()
    code, one = await get(airlock, approval["id"])
    assert code == 200 and one["resolved_by"] == "someone-else"
    entry = next(
        e
        for e in await airlock.mesh.store.audit_entries(limit=1000)
        if e.kind == "approval.resolved" and e.subject == approval["id"]
    )
    assert entry.actor == "bob" and entry.detail["resolved_by"] == "someone-else"
    assert entry.detail["principal"] == "bob"


async def test_a_blocked_call_is_refused_and_no_grant_overrides_the_block(airlock: Airlock) -> None:
    await created(airlock, run_id="ci-9")
    assert (await (await bulk(airlock, {"run_id": "ci-9", "action": "approve"})).json())["resolved"] == 1
    await airlock.add_policy(
        {
            "name": "no_rm",
            "scope_type": "tool",
            "enforcement": "block",
            "evaluator": {"plugin": "command_match", "config": {"patterns": ["rm -rf *"]}},
        }
    )
    status, body = await create(airlock, run_id="ci-9", command="rm -rf /srv")
    assert status == 403 and "blocked by policy no_rm" in body["error"]["message"], body
    status, body = await create(airlock, run_id="ci-9", command="ls /srv")  # the grant still covers the rest
    assert status == 200 and body["status"] == "approved", body
    assert (await listing(airlock))["approvals"] == []  # nothing blocked was queued for a person either
