"""Separation of duties: an agent never resolves a hold it caused; under a policy's ``distinct_approver``
nobody, person or agent, resolves a hold their own message caused."""

from __future__ import annotations

from tests.conftest import GUIDE_POLICY, Airlock, bearer
from tests.gateway.conftest import error_of

ALICE = bearer("alice", "approver", "admin")
BOB = bearer("bob", "approver")
BOT = bearer("bot", "agent")
BOT_APPROVER = bearer("bot", "agent", "approver")


async def test_without_the_field_an_approver_may_resolve_their_own_hold(airlock: Airlock) -> None:
    policy = await airlock.add_policy()
    assert policy["distinct_approver"] is False
    task = await airlock.hold(headers=ALICE)
    assert (await airlock.resolve(task["id"], {"decision": "approve"}, ALICE)).status == 200
    assert await airlock.executions() == 1


async def test_an_agent_never_resolves_its_own_hold(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold(headers=BOT_APPROVER)
    err = await error_of(await airlock.resolve(task["id"], {"decision": "approve"}, BOT_APPROVER), 403)
    assert "cannot resolve it" in err["message"]
    assert (await airlock.resolve(task["id"], {"decision": "approve"}, BOB)).status == 200
    assert await airlock.executions() == 1


async def test_distinct_approver_refuses_the_person_who_caused_the_hold(airlock: Airlock) -> None:
    policy = await airlock.add_policy(distinct_approver=True)
    assert policy["distinct_approver"] is True
    task = await airlock.hold(headers=ALICE)
    for decision in ("approve", "deny"):
        err = await error_of(await airlock.resolve(task["id"], {"decision": decision}, ALICE), 403)
        assert "cannot resolve it" in err["message"]
    assert await airlock.executions() == 0
    # the hold is still pending: another approver decides it, once
    assert (await airlock.resolve(task["id"], {"decision": "approve"}, BOB)).status == 200
    assert await airlock.executions() == 1
    approval = await airlock.mesh.store.latest_approval(task["id"])
    assert approval is not None and approval.second_pair and approval.resolved_by == "bob"


async def test_the_flag_is_kept_on_the_hold_when_the_policy_changes(airlock: Airlock) -> None:
    await airlock.add_policy(distinct_approver=True)
    task = await airlock.hold(headers=ALICE)
    resp = await airlock.gateway.post(
        "/internal/policies/update",
        json={"policy_id": GUIDE_POLICY["name"], "distinct_approver": False},
        headers=ALICE,
    )
    assert resp.status == 200 and (await resp.json())["distinct_approver"] is False
    await error_of(await airlock.resolve(task["id"], {"decision": "approve"}, ALICE), 403)
    # a hold made under the changed policy may be resolved by its sender again
    second = await airlock.hold(text="Delete all expired records from the staging database now", headers=ALICE)
    assert (await airlock.resolve(second["id"], {"decision": "deny"}, ALICE)).status == 200


async def test_distinct_approver_must_be_a_boolean(airlock: Airlock) -> None:
    resp = await airlock.gateway.post(
        "/internal/policies/new", json={**GUIDE_POLICY, "distinct_approver": "yes"}, headers=ALICE
    )
    err = await error_of(resp, 400)
    assert "distinct_approver" in str(err)
