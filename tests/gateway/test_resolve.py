"""``POST /messages/{id}/resolve`` with a Bearer JWT: every status the spec names, and what runs."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from tests.conftest import Airlock, bearer, guide_message, start_airlock
from tests.gateway.conftest import Clock, auth, error_of, pending, token


async def remaining_records(airlock: Airlock) -> int:
    assert airlock.demo._db is not None
    cur = await airlock.demo._db.execute("SELECT COUNT(*) FROM records")
    return (await cur.fetchone())[0]


async def task_state(airlock: Airlock, task_id: str) -> dict:
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task_id}})
    return reply["result"]


async def test_approve_completes_with_the_agents_artifact_and_runs_once(airlock: Airlock) -> None:
    await airlock.add_policy()
    before = await remaining_records(airlock)
    task = await airlock.hold()
    assert await airlock.executions() == 0
    resp = await airlock.resolve(task["id"], {"decision": "approve"})
    assert resp.status == 200
    body = await resp.json()
    assert body["ok"] is True
    assert body["message_id"] == task["id"]
    assert body["new_state"] == "completed"
    assert body["task"]["id"] == task["id"]
    assert body["task"]["status"]["state"] == "completed"
    [artifact] = body["task"]["artifacts"]
    assert {"kind": "data", "data": {"deleted": 42}} in artifact["parts"]
    assert await airlock.executions() == 1
    assert await remaining_records(airlock) == before - 42
    stored = await task_state(airlock, task["id"])
    assert stored["status"]["state"] == "completed"
    assert stored["artifacts"] == body["task"]["artifacts"]
    assert await airlock.executions() == 1


async def test_deny_rejects_and_nothing_runs(airlock: Airlock) -> None:
    await airlock.add_policy()
    before = await remaining_records(airlock)
    task = await airlock.hold()
    resp = await airlock.resolve(task["id"], {"decision": "deny"})
    assert resp.status == 200
    body = await resp.json()
    assert body["ok"] is True and body["message_id"] == task["id"]
    assert body["new_state"] == "rejected"
    assert body["task"]["status"]["state"] == "rejected"
    assert not body["task"].get("artifacts")
    assert await airlock.executions() == 0
    assert await remaining_records(airlock) == before
    assert (await task_state(airlock, task["id"]))["status"]["state"] == "rejected"
    again = await airlock.resolve(task["id"], {"decision": "approve"})
    await error_of(again, 409)
    assert await airlock.executions() == 0
    assert await remaining_records(airlock) == before


async def test_already_resolved_is_409_and_runs_nothing_more(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    assert (await airlock.resolve(task["id"], {"decision": "approve"})).status == 200
    for decision in ("approve", "deny"):
        err = await error_of(await airlock.resolve(task["id"], {"decision": decision}), 409)
        assert err["code"] == "conflict"
    assert await airlock.executions() == 1


@pytest.mark.parametrize("roles", [("approver",), ("admin",), ("approver", "admin")])
async def test_approver_or_admin_role_may_resolve(airlock: Airlock, roles: tuple[str, ...]) -> None:
    await airlock.add_policy()
    task = await airlock.hold(headers=auth(token("requester", "agent")))
    resp = await airlock.resolve(task["id"], {"decision": "approve"}, headers=auth(token("dana", *roles)))
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(
    ("resolution", "field"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"decision": "APPROVE"}, "decision"),
        ({"decision": 1}, "decision"),
        ({"decision": True}, "decision"),
        ({"decision": None}, "decision"),
        ({}, "decision"),
        ({"decision": "approve", "extra": 1}, "extra"),
        ({"note": "x"}, "note"),
    ],
)
async def test_resolution_failing_the_form_is_400_naming_the_field(
    airlock: Airlock, resolution: dict, field: str
) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    await error_of(await airlock.resolve(task["id"], resolution), 400, field=field)
    assert await airlock.executions() == 0
    status, body = await pending(airlock, bearer())
    assert status == 200
    assert body["total"] == 1, "a refused resolution leaves the hold pending"


@pytest.mark.parametrize("resolution", ["approve", ["approve"], None, 1])
async def test_resolution_that_is_not_an_object_is_400(airlock: Airlock, resolution: object) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resp = await airlock.gateway.post(
        f"/messages/{task['id']}/resolve", json={"resolution": resolution}, headers=bearer()
    )
    await error_of(resp, 400)
    assert await airlock.executions() == 0


async def test_missing_resolution_is_400(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resp = await airlock.gateway.post(f"/messages/{task['id']}/resolve", json={}, headers=bearer())
    await error_of(resp, 400, field="resolution")


async def test_no_credential_is_401(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resp = await airlock.gateway.post(f"/messages/{task['id']}/resolve", json={"resolution": {"decision": "approve"}})
    await error_of(resp, 401)
    assert await airlock.executions() == 0


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer a.b.c",
        "Token abc",
        f"Bearer {token('alice', 'approver', ttl_s=-120)}",
        f"Bearer {token('alice', 'approver', secret=b'another-secret-0123456789abcdef0123')}",
    ],
    ids=["garbage", "three-dots", "wrong-scheme", "expired", "other-secret"],
)
async def test_bad_token_is_401(airlock: Airlock, header: str) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resp = await airlock.resolve(task["id"], {"decision": "approve"}, headers={"Authorization": header})
    await error_of(resp, 401)
    assert await airlock.executions() == 0


async def test_token_without_a_resolving_role_is_403(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resp = await airlock.resolve(task["id"], {"decision": "approve"}, headers=auth(token("bot", "agent")))
    await error_of(resp, 403)
    # a role the server does not know grants nothing: the token itself is refused
    resp = await airlock.resolve(task["id"], {"decision": "approve"}, headers=auth(token("nobody", "viewer")))
    await error_of(resp, 401)
    assert await airlock.executions() == 0


async def test_agent_that_asked_cannot_resolve_its_own_hold(airlock: Airlock) -> None:
    await airlock.add_policy()
    both = auth(token("bot-1", "agent", "approver"))
    task = await airlock.hold(headers=both)
    await error_of(await airlock.resolve(task["id"], {"decision": "approve"}, headers=both), 403)
    # the same identity with a fresh token without the agent role is still the one that asked
    await error_of(
        await airlock.resolve(task["id"], {"decision": "approve"}, headers=auth(token("bot-1", "approver"))), 403
    )
    assert await airlock.executions() == 0
    resp = await airlock.resolve(task["id"], {"decision": "approve"}, headers=auth(token("human", "approver")))
    assert resp.status == 200
    assert await airlock.executions() == 1


async def test_person_who_sent_the_message_may_resolve_it(airlock: Airlock) -> None:
    await airlock.add_policy()
    person = auth(token("alice", "approver"))
    task = await airlock.hold(headers=person)
    resp = await airlock.resolve(task["id"], {"decision": "approve"}, headers=person)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["new_state"] == "completed"


async def test_guide_flow_with_one_token(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resp = await airlock.resolve(task["id"], {"decision": "approve"})
    assert resp.status == 200


async def test_unknown_id_is_404(airlock: Airlock) -> None:
    await airlock.add_policy()
    await airlock.hold()
    err = await error_of(await airlock.resolve("no-such-task", {"decision": "approve"}), 404)
    assert err["code"] == "not_found"
    assert await airlock.executions() == 0


async def test_task_that_never_held_is_404(airlock: Airlock) -> None:
    reply = await airlock.rpc(guide_message("hello there"))
    task_id = reply["result"]["id"]
    await error_of(await airlock.resolve(task_id, {"decision": "approve"}), 404)


async def test_another_tenants_hold_is_404_and_invisible(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    other = bearer("bob", "approver", "admin", tenant="tenant-b")
    status, body = await pending(airlock, other)
    assert status == 200 and body["messages"] == [] and body["total"] == 0
    await error_of(await airlock.resolve(task["id"], {"decision": "approve"}, headers=other), 404)
    await error_of(await airlock.resolve(task["id"], {"decision": "deny"}, headers=other), 404)
    assert await airlock.executions() == 0
    status, body = await pending(airlock, bearer())
    assert body["total"] == 1, "the owner's hold is untouched"
    assert (await airlock.resolve(task["id"], {"decision": "approve"})).status == 200


async def test_resolve_by_approval_id_from_the_task_metadata(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    approval_id = task["metadata"]["airlock"]["approvalId"]
    resp = await airlock.resolve(approval_id, {"decision": "deny"})
    assert resp.status == 200
    assert (await resp.json())["message_id"] == task["id"]


async def test_expired_hold_is_410(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, timeout_s=1, clock=clock) as airlock:
        await airlock.add_policy()
        task = await airlock.hold()
        clock.advance(2)
        err = await error_of(await airlock.resolve(task["id"], {"decision": "approve"}), 410)
        assert err["code"] == "gone"
        assert await airlock.executions() == 0
        assert (await task_state(airlock, task["id"]))["status"]["state"] == "rejected"
        await error_of(await airlock.resolve(task["id"], {"decision": "approve"}), 410)
        status, body = await pending(airlock, bearer())
        assert status == 200 and body["messages"] == [] and body["total"] == 0
        assert await airlock.executions() == 0


async def test_not_yet_expired_hold_resolves(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, timeout_s=10, clock=clock) as airlock:
        await airlock.add_policy()
        task = await airlock.hold()
        clock.advance(9)
        resp = await airlock.resolve(task["id"], {"decision": "approve"})
        assert resp.status == 200


async def test_policy_timeout_expires_the_hold(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock) as airlock:
        await airlock.add_policy(timeout="1s")
        task = await airlock.hold()
        status, body = await pending(airlock, bearer())
        assert body["total"] == 1
        clock.advance(1.5)
        status, body = await pending(airlock, bearer())
        assert status == 200
        assert body["total"] == 0
        await error_of(await airlock.resolve(task["id"], {"decision": "deny"}), 410)
        assert await airlock.executions() == 0


async def test_expired_then_swept_is_still_410(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, timeout_s=1, clock=clock) as airlock:
        await airlock.add_policy()
        task = await airlock.hold()
        clock.advance(5)
        assert await airlock.mesh.expiry.expire_due() == 1
        await error_of(await airlock.resolve(task["id"], {"decision": "approve"}), 410)


async def test_restart_keeps_the_hold_resolvable(tmp_path: Path) -> None:
    async with start_airlock(tmp_path) as first:
        await first.add_policy()
        task = await first.hold()
    async with start_airlock(tmp_path) as second:
        resp = await second.resolve(task["id"], {"decision": "approve"})
        assert resp.status == 200
        assert await second.executions() == 1
    async with aiosqlite.connect(tmp_path / "staging.db") as db:
        cur = await db.execute("SELECT COUNT(*) FROM executions")
        assert (await cur.fetchone())[0] == 1


async def test_canceled_task_cannot_be_resolved(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/cancel", "params": {"id": task["id"]}})
    assert reply["result"]["status"]["state"] == "canceled"
    await error_of(await airlock.resolve(task["id"], {"decision": "approve"}), 409)
    assert await airlock.executions() == 0
    status, body = await pending(airlock, bearer())
    assert status == 200
    assert body["total"] == 0


async def test_a_message_to_a_held_task_does_not_resolve_it(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    reply = await airlock.rpc(guide_message("approve", taskId=task["id"]))
    assert reply["result"]["status"]["state"] == "input-required"
    assert await airlock.executions() == 0
    assert (await airlock.resolve(task["id"], {"decision": "approve"})).status == 200
    assert await airlock.executions() == 1


async def test_without_auth_the_local_operator_lists_and_resolves(tmp_path: Path) -> None:
    async with start_airlock(tmp_path, auth=False) as airlock:
        await airlock.add_policy()
        task = await airlock.hold(headers={})
        resp = await airlock.gateway.post("/messages/pending", json={})
        assert resp.status == 200
        assert [m["message_id"] for m in (await resp.json())["messages"]] == [task["id"]]
        resp = await airlock.gateway.post(
            f"/messages/{task['id']}/resolve", json={"resolution": {"decision": "approve"}}
        )
        assert resp.status == 200, await resp.text()
        assert await airlock.executions() == 1
