"""The one resolve path on its own: services built from a core over a real SQLite file, no HTTP.

The runner is the protocol approvals are handed instead of the turn code; here it only records what it
was asked to run, so each test can say exactly how often an approved action ran.
"""

from __future__ import annotations

import asyncio

import pytest

from a2ui import form_part, make_form
from mesh.approvals.input_requests import InputRequests
from mesh.approvals.resolve import ResolveRequest
from mesh.auth import Principal
from mesh.core.taskstate import new_task, set_state
from mesh.credentials import callback_token
from mesh.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound, Unauthorized
from mesh.wire.models import TaskState
from tests.mesh.approvals.harness import ALICE, BOB, KEY, ResolvePath


async def test_an_approval_is_written_audited_published_and_run_once(path: ResolvePath) -> None:
    approval = await path.hold()
    async with path.core.events.subscribe() as queue:
        outcome = await path.resolver.resolve(
            ResolveRequest(ref=approval.id, resolution={"decision": "approve"}, surface="api", principal=ALICE)
        )
        event = queue.get_nowait()
    assert outcome.decision == "approve" and outcome.new_state == TaskState.WORKING
    assert path.runner.approved == [(approval.id, {"decision": "approve"})]
    stored = await path.core.store.get_approval(approval.id)
    assert stored is not None and stored.status == "approved" and stored.resolved_by == "alice"
    assert stored.surface == "api"
    assert event.kind == "approval.resolved" and event.data["status"] == "approved"
    assert (await path.audit_kinds())[-1] == "approval.resolved"


async def test_the_task_id_finds_its_latest_approval(path: ResolvePath) -> None:
    approval = await path.hold()
    outcome = await path.resolver.resolve(
        ResolveRequest(ref=approval.task_id, resolution={"decision": "deny"}, surface="api", principal=ALICE)
    )
    assert outcome.approval.id == approval.id and outcome.new_state == TaskState.REJECTED
    assert path.runner.approved == []


async def test_racing_resolvers_have_one_winner_and_the_action_runs_once(path: ResolvePath) -> None:
    approval = await path.hold()
    people = [ALICE, BOB] * 10

    async def one(who: Principal) -> str:
        req = ResolveRequest(ref=approval.id, resolution={"decision": "approve"}, surface="api", principal=who)
        try:
            await path.resolver.resolve(req)
        except Conflict:
            return "conflict"
        return "won"

    results = await asyncio.gather(*(one(p) for p in people))
    assert results.count("won") == 1 and results.count("conflict") == len(people) - 1
    assert len(path.runner.approved) == 1
    assert (await path.audit_kinds()).count("approval.resolved") == 1


async def test_a_later_resolution_is_a_conflict(path: ResolvePath) -> None:
    approval = await path.hold()
    first = ResolveRequest(ref=approval.id, resolution={"decision": "deny"}, surface="api", principal=ALICE)
    await path.resolver.resolve(first)
    with pytest.raises(Conflict, match="already resolved: denied"):
        await path.resolver.resolve(
            ResolveRequest(ref=approval.id, resolution={"decision": "approve"}, surface="api", principal=BOB)
        )
    assert path.runner.approved == []


async def test_a_callback_token_resolves_only_its_own_approval(path: ResolvePath) -> None:
    first, second = await path.hold(), await path.hold()
    with pytest.raises(Unauthorized):
        await path.resolver.resolve(
            ResolveRequest(
                ref=first.id,
                resolution={"decision": "approve"},
                surface="callback",
                callback_token=callback_token(KEY, second.id),
            )
        )
    with pytest.raises(Unauthorized):  # an unknown id tells a bare token nothing
        await path.resolver.resolve(
            ResolveRequest(ref="nope", resolution={"decision": "approve"}, surface="callback", callback_token="x")
        )
    outcome = await path.resolver.resolve(
        ResolveRequest(
            ref=first.id,
            resolution={"decision": "approve"},
            surface="callback",
            callback_token=callback_token(KEY, first.id),
        )
    )
    assert outcome.approval.resolved_by == "callback-token" and len(path.runner.approved) == 1


async def test_the_agent_that_caused_a_hold_cannot_resolve_it(path: ResolvePath) -> None:
    agent_approver = Principal(sub="bot", tenant="default", roles=frozenset({"agent", "approver"}))
    approval = await path.hold(agent_approver)
    with pytest.raises(Forbidden):
        await path.resolver.resolve(
            ResolveRequest(ref=approval.id, resolution={"decision": "approve"}, surface="api", principal=agent_approver)
        )
    with pytest.raises(NotFound):  # another tenant does not see it at all
        other = Principal(sub="carol", tenant="other", roles=frozenset({"approver"}))
        await path.resolver.resolve(
            ResolveRequest(ref=approval.id, resolution={"decision": "approve"}, surface="api", principal=other)
        )
    assert path.runner.approved == []


async def test_a_resolution_after_the_deadline_expires_the_hold(path: ResolvePath) -> None:
    approval = await path.hold()
    path.clock[0] += 61
    with pytest.raises(Gone):
        await path.resolver.resolve(
            ResolveRequest(ref=approval.id, resolution={"decision": "approve"}, surface="api", principal=ALICE)
        )
    stored = await path.core.store.get_approval(approval.id)
    assert stored is not None and stored.status == "expired" and path.runner.approved == []
    task = await path.core.store.get_task("default", approval.task_id)
    assert task is not None and task.state == TaskState.REJECTED


async def test_values_are_checked_against_the_form_and_kept_masked(path: ResolvePath) -> None:
    fields = ({"id": "otp", "type": "password", "label": "One-time code", "required": True},)
    approval = await path.hold(fields=fields)
    with pytest.raises(InvalidInput) as missing:
        await path.resolver.resolve(
            ResolveRequest(ref=approval.id, resolution={"decision": "approve"}, surface="api", principal=ALICE)
        )
    assert missing.value.field == "otp"
    resolution = {"decision": "approve", "otp": "123456"}
    await path.resolver.resolve(ResolveRequest(ref=approval.id, resolution=resolution, surface="api", principal=ALICE))
    assert path.runner.approved == [(approval.id, resolution)]  # the action gets the value once, in clear
    stored = await path.core.store.get_approval(approval.id)
    assert stored is not None and stored.values is not None and stored.values["otp"] != "123456"


async def test_an_answer_to_an_agent_s_form_is_handed_to_the_runner(path: ResolvePath) -> None:
    store, now = path.core.store, path.clock[0]
    task = new_task("default", "alice", {"approver"}, now, agent="demo")
    fields = [{"id": "username", "type": "text", "label": "Username", "required": True}]
    form = make_form("Credentials", "Sign in to the staging database", fields)
    message = set_state(task, TaskState.INPUT_REQUIRED, [form_part(form)], now)
    request = InputRequests(path.core.config)
    async with store.transaction() as tx:
        await tx.insert_task(task, [message] if message else [])
        asked = await request.record(tx, task, task.status["message"]["parts"], now)
    assert asked is not None
    await path.resolver.resolve(
        ResolveRequest(ref=asked.id, resolution={"username": "ada"}, surface="a2a", principal=ALICE)
    )
    assert path.runner.answered == [("alice", asked.id, {"username": "ada"})] and path.runner.approved == []


async def test_recovery_reruns_what_was_approved_and_fails_what_had_secrets(path: ResolvePath) -> None:
    plain = await path.hold()
    secret = await path.hold(fields=({"id": "otp", "type": "password", "label": "Code", "required": True},))
    for approval, resolution in ((plain, {"decision": "approve"}), (secret, {"decision": "approve", "otp": "1"})):
        await path.resolver.resolve(
            ResolveRequest(ref=approval.id, resolution=resolution, surface="api", principal=ALICE)
        )
    path.runner.approved.clear()  # as if the server stopped before either action finished
    assert await path.resolver.recover() == 2
    assert path.runner.approved == [(plain.id, {"decision": "approve"})]
    assert path.runner.failed == [(secret.task_id, "interrupted")]
