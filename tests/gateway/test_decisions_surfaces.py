"""Quorum, reasons and edits on the surfaces that are not the messages API: an A2A answer to the held task,
``/v1/approvals/{id}/resolve`` and what ``GET /v1/approvals/{id}`` shows, and the single-use credentials
(callback token, signed link) that name no one and so cannot count towards a quorum."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mesh.credentials import callback_token, signed_link
from tests.conftest import GUIDE_POLICY, Airlock, bearer, start_airlock, tool_message

DELETE = {"name": "guard_deletes", "scope_type": "tool", "enforcement": "require_approval"}


def answer(task_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": "a",
        "method": "message/send",
        "params": {"message": {"role": "user", "taskId": task_id, "parts": [{"kind": "data", "data": data}]}},
    }


async def guarded(airlock: Airlock, **policy: Any) -> dict[str, Any]:
    await airlock.add_policy(
        {**DELETE, "evaluator": {"plugin": "tool_match", "config": {"tools": ["fs.delete"]}}, **policy}
    )
    reply = await airlock.rpc(tool_message("fs.delete", {"path": "/srv/data"}), bearer("bot", "agent"))
    task = reply["result"]
    assert task["status"]["state"] == "input-required", reply
    return task


async def test_an_a2a_answer_denies_with_a_reason(airlock: Airlock) -> None:
    task = await guarded(airlock)
    reply = await airlock.rpc(answer(task["id"], {"decision": "deny", "reason": "wrong volume"}), bearer("alice"))
    status = reply["result"]["status"]
    assert status["state"] == "rejected"
    assert status["message"]["parts"][0]["text"] == "Denied by alice: wrong volume"
    meta = status["message"]["metadata"]
    assert (meta["reason"], meta["deniedBy"], meta["comment"]) == ("denied", "alice", "wrong volume")


async def test_an_a2a_answer_approves_a_guarded_call_with_edits(airlock: Airlock) -> None:
    task = await guarded(airlock, allow_edits=True)
    edited = {"path": "/srv/data/tmp"}
    reply = await airlock.rpc(answer(task["id"], {"decision": "approve", "arguments": edited}), bearer("alice"))
    result = reply["result"]
    assert result["status"]["state"] == "completed", result
    data = result["status"]["message"]["parts"][0]["data"]
    # the guard's answer carries the arguments the caller must now use, and what changed
    assert data["decision"] == "allow" and data["arguments"] == edited
    assert data["edited"]["changed"] == ["path"]


async def test_an_a2a_answer_with_an_edit_the_policy_does_not_allow_is_refused(airlock: Airlock) -> None:
    task = await guarded(airlock)
    reply = await airlock.rpc(answer(task["id"], {"decision": "approve", "arguments": {"path": "/"}}), bearer("alice"))
    assert reply["error"]["code"] == -32602 and reply["error"]["data"]["field"] == "arguments"
    again = await airlock.rpc({**answer(task["id"], {}), "method": "tasks/get", "params": {"id": task["id"]}})
    assert again["result"]["status"]["state"] == "input-required"


async def test_v1_resolve_takes_a_reason_and_arguments_and_shows_them(airlock: Airlock) -> None:
    task = await guarded(airlock, allow_edits=True)
    approval = task["metadata"]["airlock"]["approvalId"]
    shown = await (await airlock.gateway.get(f"/v1/approvals/{approval}", headers=bearer())).json()
    assert shown["allow_edits"] is True and shown["arguments"] == {"path": "/srv/data"}
    assert (shown["approvals_required"], shown["approvals"], shown["escalated_at"]) == (1, [], None)
    resp = await airlock.gateway.post(
        f"/v1/approvals/{approval}/resolve",
        json={"approved": True, "reason": "tmp only", "arguments": {"path": "/srv/data/tmp"}},
        headers=bearer(),
    )
    assert resp.status == 200, await resp.text()
    shown = await (await airlock.gateway.get(f"/v1/approvals/{approval}", headers=bearer())).json()
    assert (shown["status"], shown["reason"], shown["edited"]) == ("approved", "tmp only", ["path"])

    long = await airlock.gateway.post(
        f"/v1/approvals/{approval}/resolve", json={"approved": False, "reason": "x" * 1001}, headers=bearer()
    )
    assert long.status == 400 and (await long.json())["error"]["field"] == "reason"


async def test_a_quorum_hold_lists_its_approvals_and_refuses_a_second_yes_from_the_same_person(
    airlock: Airlock,
) -> None:
    await airlock.add_policy(GUIDE_POLICY, approvals_required=2)
    task = await airlock.hold(headers=bearer("bot", "agent"))
    assert task["metadata"]["airlock"]["approvals_required"] == 2
    first = await airlock.resolve(task["id"], {"decision": "approve"}, bearer("alice", "approver"))
    assert first.status == 200 and (await first.json())["new_state"] == "input-required"
    again = await airlock.resolve(task["id"], {"decision": "approve"}, bearer("alice", "approver"))
    assert again.status == 409 and (await again.json())["error"]["message"] == "already approved by you"
    listed = await (await airlock.gateway.post("/messages/pending", json={}, headers=bearer())).json()
    row = listed["messages"][0]
    assert row["approvals_required"] == 2 and [a["by"] for a in row["approvals"]] == ["alice"]
    assert row["approvals"][0]["surface"] == "api"
    page = await (await airlock.gateway.get("/v1/approvals", headers=bearer())).json()
    assert [a["by"] for a in page["approvals"][0]["approvals"]] == ["alice"]
    assert await airlock.executions() == 0
    done = await airlock.resolve(task["id"], {"decision": "approve"}, bearer("bob", "approver"))
    assert done.status == 200 and (await done.json())["new_state"] == "completed"
    assert await airlock.executions() == 1


async def test_credentials_that_name_no_one_cannot_count_towards_a_quorum(tmp_path: Path) -> None:
    key = b"s" * 32
    async with start_airlock(tmp_path, signing_key=key) as airlock:
        await airlock.add_policy(GUIDE_POLICY, approvals_required=2)
        task = await airlock.hold(headers=bearer("bot", "agent"))
        approval = task["metadata"]["airlock"]["approvalId"]
        token = callback_token(b"k" * 32, approval)
        by_token = await airlock.gateway.post(
            f"/messages/{task['id']}/resolve",
            json={"resolution": {"decision": "approve"}, "callback_token": token},
        )
        assert by_token.status == 403 and "signed-in" in (await by_token.json())["error"]["message"]
        link = signed_link("", key, approval, "approve", int(time.time()) + 600)
        by_link = await airlock.gateway.post(link, headers={"Accept": "application/json"})
        assert by_link.status == 403, await by_link.text()
        # a deny needs no quorum: the token still says no
        denied = await airlock.gateway.post(
            f"/messages/{task['id']}/resolve",
            json={"resolution": {"decision": "deny"}, "callback_token": token},
        )
        assert denied.status == 200


async def quorum_call(airlock: Airlock, run_id: str) -> dict[str, Any]:
    resp = await airlock.gateway.post(
        "/v1/approvals",
        json={"tool": "exec", "agent": "deploy-bot", "message": "rotate", "command": "logrotate -f", "run_id": run_id},
        headers=bearer("bot", "agent"),
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_one_approval_short_of_a_quorum_persists_no_rule_and_opens_no_grant(airlock: Airlock) -> None:
    await airlock.add_policy(
        {**DELETE, "name": "two_for_exec", "evaluator": {"plugin": "tool_match", "config": {"tools": ["exec"]}}},
        approvals_required=2,
    )
    first = await quorum_call(airlock, "nightly")
    resp = await airlock.gateway.post(
        f"/v1/approvals/{first['id']}/resolve", json={"approved": True, "persist": True}, headers=bearer("alice")
    )
    answer = await resp.json()
    assert resp.status == 200 and (answer["status"], answer["persisted"]) == ("pending", False), answer
    policies = await (await airlock.gateway.get("/internal/policies", headers=bearer())).json()
    assert [p["name"] for p in policies["policies"]] == ["two_for_exec"]  # no exact_call rule was added

    for _ in range(2):
        await quorum_call(airlock, "weekly")
    bulk = await airlock.gateway.post(
        "/v1/approvals/bulk-resolve", json={"run_id": "weekly", "action": "approve"}, headers=bearer("bob")
    )
    assert bulk.status == 200 and (await bulk.json())["resolved"] == 2
    # bob's approvals are one of two each: nothing was let through, so no grant opened for the run, and the
    # run's next call still waits for two people
    later = await quorum_call(airlock, "weekly")
    assert later["status"] == "pending"
