"""The decisions people make beyond yes and no, on the one resolve path: a quorum of distinct approvers,
a denial with a reason, an approval that edits the call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mesh.approvals.resolve import REASON_MAX, ResolveRequest
from mesh.auth import Principal
from mesh.errors import Conflict, Forbidden, InvalidInput
from mesh.policy import Action
from mesh.store import PENDING, ChannelRecord
from tests.mesh.approvals.harness import ALICE, BOB, ResolvePath

CAROL = Principal(sub="carol", tenant="default", roles=frozenset({"approver"}))


def approve(ref: str, who: Principal | None, **extra: Any) -> ResolveRequest:
    return ResolveRequest(ref=ref, resolution={"decision": "approve", **extra}, surface="api", principal=who)


# -------------------------------------------------------------------------------------------------- quorum


async def test_a_two_person_hold_needs_two_distinct_approvers(path: ResolvePath) -> None:
    approval = await path.hold(approvals_required=2)
    first = await path.resolver.resolve(approve(approval.id, ALICE))
    assert first.approval.status == PENDING and [a["by"] for a in first.approval.approvals] == ["alice"]
    assert path.runner.approved == []
    task = await path.core.store.get_task("default", approval.task_id)
    assert task is not None and task.metadata["airlock"]["approvals_required"] == 2
    assert [a["by"] for a in task.metadata["airlock"]["approvals"]] == ["alice"]

    with pytest.raises(Conflict, match="already approved by you"):
        await path.resolver.resolve(approve(approval.id, ALICE))

    second = await path.resolver.resolve(approve(approval.id, BOB))
    assert second.approval.status == "approved"
    assert [a["by"] for a in second.approval.approvals] == ["alice", "bob"]
    assert len(path.runner.approved) == 1
    stored = await path.core.store.get_approval(approval.id)
    assert stored is not None and [a["by"] for a in stored.approvals] == ["alice", "bob"]
    assert "approval.approved" in await path.audit_kinds()

    with pytest.raises(Conflict):
        await path.resolver.resolve(approve(approval.id, CAROL))


async def test_one_deny_ends_a_quorum_hold(path: ResolvePath) -> None:
    approval = await path.hold(approvals_required=3)
    await path.resolver.resolve(approve(approval.id, ALICE))
    out = await path.resolver.resolve(
        ResolveRequest(ref=approval.id, resolution={"decision": "deny"}, surface="api", principal=BOB)
    )
    assert out.approval.status == "denied"
    with pytest.raises(Conflict):
        await path.resolver.resolve(approve(approval.id, CAROL))
    assert path.runner.approved == []


async def test_a_credential_naming_no_one_cannot_count_towards_a_quorum(path: ResolvePath) -> None:
    approval = await path.hold(approvals_required=2)
    with pytest.raises(Forbidden, match="signed-in"):
        await path.resolver.resolve(
            ResolveRequest(ref=approval.id, resolution={"decision": "approve"}, surface="link", preauthorized=True)
        )
    # denying needs no quorum: a link may still say no
    out = await path.resolver.resolve(
        ResolveRequest(ref=approval.id, resolution={"decision": "deny"}, surface="link", preauthorized=True)
    )
    assert out.approval.status == "denied"


async def test_the_requester_never_counts_towards_a_quorum(path: ResolvePath) -> None:
    approval = await path.hold(principal=ALICE, approvals_required=2)
    with pytest.raises(Forbidden):
        await path.resolver.resolve(approve(approval.id, ALICE))


async def test_a_race_of_many_approvers_records_exactly_the_quorum_and_runs_once(path: ResolvePath) -> None:
    approval = await path.hold(approvals_required=2)
    people = [Principal(sub=f"p{i}", tenant="default", roles=frozenset({"approver"})) for i in range(20)]
    results = await asyncio.gather(
        *(path.resolver.resolve(approve(approval.id, people[i % 20])) for i in range(200)),
        return_exceptions=True,
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(ok) == 2 and all(isinstance(r, Conflict) for r in refused)
    stored = await path.core.store.get_approval(approval.id)
    assert stored is not None and stored.status == "approved" and len(stored.approvals) == 2
    assert len({a["by"] for a in stored.approvals}) == 2
    assert len(path.runner.approved) == 1
    assert (await path.audit_kinds()).count("approval.resolved") == 1


# -------------------------------------------------------------------------------------------------- reasons


async def test_a_denial_carries_its_reason_to_the_task_the_record_and_the_audit(path: ResolvePath) -> None:
    approval = await path.hold()
    out = await path.resolver.resolve(
        ResolveRequest(
            ref=approval.id,
            resolution={"decision": "deny", "reason": "  use the staging table  "},
            surface="api",
            principal=ALICE,
        )
    )
    text = out.task["status"]["message"]["parts"][0]["text"]
    assert text == "Denied by alice: use the staging table"
    stored = await path.core.store.get_approval(approval.id)
    assert stored is not None and stored.reason == "use the staging table"
    assert "reason" not in (stored.values or {})
    entries = [e async for e in path.core.store.iter_audit()]
    assert entries[-1].detail["reason"] == "use the staging table"


async def test_a_reason_is_bounded_and_must_be_text(path: ResolvePath) -> None:
    approval = await path.hold()
    for bad in ("x" * (REASON_MAX + 1), 5, ["no"]):
        with pytest.raises(InvalidInput) as exc:
            await path.resolver.resolve(
                ResolveRequest(
                    ref=approval.id, resolution={"decision": "deny", "reason": bad}, surface="api", principal=ALICE
                )
            )
        assert exc.value.field == "reason"
    assert (await path.core.store.get_approval(approval.id)).status == PENDING  # type: ignore[union-attr]


# -------------------------------------------------------------------------------------------------- edits


async def test_an_approval_with_edits_runs_the_edited_call_and_keeps_both(path: ResolvePath) -> None:
    approval = await path.hold(allow_edits=True)
    out = await path.resolver.resolve(approve(approval.id, ALICE, arguments={"table": "records_2019"}))
    assert out.approval.status == "approved"
    stored = await path.core.store.get_approval(approval.id)
    assert stored is not None
    assert stored.action["arguments"] == {"table": "records"}
    assert stored.edited_action is not None and stored.edited_action["arguments"] == {"table": "records_2019"}
    entries = [e async for e in path.core.store.iter_audit()]
    edit = entries[-1].detail["edit"]
    assert edit["changed"] == ["table"]
    assert edit["original"] == Action.from_dict(stored.action).fingerprint() != edit["edited"]
    assert "records_2019" not in str(edit)
    assert len(path.runner.approved) == 1


@pytest.mark.parametrize(
    ("policy_fields", "resolution", "says"),
    [
        ({}, {"decision": "approve", "arguments": {"table": "x"}}, "does not allow edits"),
        ({"allow_edits": True}, {"decision": "deny", "arguments": {"table": "x"}}, "only an approval"),
        ({"allow_edits": True}, {"decision": "approve", "arguments": "table=x"}, "must be an object"),
        (
            {"allow_edits": True, "approvals_required": 2},
            {"decision": "approve", "arguments": {"table": "x"}},
            "several approvers",
        ),
    ],
)
async def test_edits_are_refused_where_they_do_not_belong(
    path: ResolvePath, policy_fields: dict[str, Any], resolution: dict[str, Any], says: str
) -> None:
    approval = await path.hold(**policy_fields)
    with pytest.raises(InvalidInput, match=says) as exc:
        await path.resolver.resolve(
            ResolveRequest(ref=approval.id, resolution=resolution, surface="api", principal=ALICE)
        )
    assert exc.value.field == "arguments"
    assert (await path.core.store.get_approval(approval.id)).status == PENDING  # type: ignore[union-attr]


async def test_an_edit_a_policy_blocks_is_refused_naming_it_and_the_hold_stays(path: ResolvePath) -> None:
    async with path.core.store.transaction() as tx:
        body = {
            "tenant": "default",
            "name": "no_prod",
            "scope_type": "tool",
            "enforcement": "block",
            "plugin": "keyword_match",
            "config": {"keywords": ["production"]},
        }
        await tx.put_policy("default", "no_prod", body, path.clock[0], create=True)
    path.core.policies.changed("default")
    approval = await path.hold(allow_edits=True)
    with pytest.raises(InvalidInput, match="no_prod") as exc:
        await path.resolver.resolve(approve(approval.id, ALICE, arguments={"table": "production"}))
    assert exc.value.field == "arguments"
    assert (await path.core.store.get_approval(approval.id)).status == PENDING  # type: ignore[union-attr]
    assert path.runner.approved == []


# -------------------------------------------------------------------------------------------------- escalation


async def escalation_rows(path: ResolvePath) -> list[dict[str, Any]]:
    rows = await path.core.store.claim_outbox(path.clock[0] + 1, limit=500)
    return [r.payload for r in rows if r.payload.get("event") == "approval.escalated"]


async def test_a_hold_still_pending_escalates_once_before_it_expires(path: ResolvePath) -> None:
    for name in ("ops", "pager"):
        channel = ChannelRecord("default", name, "webhook", {"url": f"http://127.0.0.1:9/{name}"}, path.clock[0])
        async with path.core.store.transaction() as tx:
            assert await tx.put_channel(channel)
    approval = await path.hold(channels=["ops"], escalate_after_s=30, escalate_to=["pager"])
    assert approval.escalate_at == path.clock[0] + 30
    expiry = path.resolver._expiry  # the same sweeper the server runs
    assert await expiry.escalate_due() == 0
    path.clock[0] += 31
    # two sweepers (two replicas) at once, then again later: one escalation
    assert sum(await asyncio.gather(expiry.escalate_due(), expiry.escalate_due())) == 1
    assert await expiry.escalate_due() == 0
    stored = await path.core.store.get_approval(approval.id)
    assert stored is not None and stored.status == PENDING and stored.escalated_at == path.clock[0]
    assert sorted(p["channel"] for p in await escalation_rows(path)) == ["ops", "pager"]
    assert (await path.audit_kinds()).count("approval.escalated") == 1
    task = await path.core.store.get_task("default", approval.task_id)
    assert task is not None and "escalatedAt" in task.metadata["airlock"]
    # it still fails closed at its deadline
    path.clock[0] += 60
    assert await expiry.expire_due() == 1


async def test_a_resolved_hold_never_escalates(path: ResolvePath) -> None:
    approval = await path.hold(escalate_after_s=30, escalate_to=["pager"])
    await path.resolver.resolve(approve(approval.id, ALICE))
    path.clock[0] += 31
    assert await path.resolver._expiry.escalate_due() == 0


async def test_an_escalated_hold_s_ending_reaches_its_escalation_channels_too(path: ResolvePath) -> None:
    for name in ("ops", "pager"):
        channel = ChannelRecord("default", name, "webhook", {"url": f"http://127.0.0.1:9/{name}"}, path.clock[0])
        async with path.core.store.transaction() as tx:
            assert await tx.put_channel(channel)
    approval = await path.hold(channels=["ops"], escalate_after_s=30, escalate_to=["pager"])
    path.clock[0] += 31
    assert await path.resolver._expiry.escalate_due() == 1
    await path.resolver.resolve(approve(approval.id, ALICE))
    rows = await path.core.store.claim_outbox(path.clock[0] + 1, limit=500)
    resolved = sorted(r.payload["channel"] for r in rows if r.payload.get("event") == "approval.resolved")
    assert resolved == ["ops", "pager"]
