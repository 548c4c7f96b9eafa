"""Webhook channels: admin routes, the outbox worker's POST to a real receiver, and callback tokens."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from mesh.approvals.resolve import ResolveRequest
from mesh.auth import Principal
from tests.conftest import GUIDE_POLICY, Airlock, bearer, guide_message, start_airlock
from tests.gateway.conftest import STRUCTURED_FIELDS, Clock, Receiver, db_bytes, error_of, pending, wait_for

ADMIN = bearer("root", "admin")
PAYLOAD_KEYS = {
    "event",
    "message_id",
    "tenant_id",
    "policy",
    "tool",
    "form",
    "expires_at",
    "resolve_url",
    "callback_token",
}


async def new_channel(airlock: Airlock, body: dict, headers: dict[str, str] | None = None):
    return await airlock.gateway.post("/internal/channels/new", json=body, headers=headers or ADMIN)


async def with_webhook(airlock: Airlock, receiver: Receiver, name: str = "ops-hook") -> None:
    resp = await new_channel(airlock, {"name": name, "type": "webhook", "config": {"url": receiver.url}})
    assert resp.status == 201, await resp.text()
    await airlock.add_policy(channels=[name])


async def callback_resolve(
    airlock: Airlock,
    task_id: str,
    callback: object,
    resolution: dict | None = None,
    headers: dict[str, str] | None = None,
):
    return await airlock.gateway.post(
        f"/messages/{task_id}/resolve",
        json={"callback_token": callback, "resolution": resolution or {"decision": "approve"}},
        headers=headers,
    )


async def test_create_channel(airlock: Airlock, receiver: Receiver) -> None:
    resp = await new_channel(airlock, {"name": "ops-hook", "type": "webhook", "config": {"url": receiver.url}})
    assert resp.status == 201
    body = await resp.json()
    assert body["name"] == "ops-hook" and body["type"] == "webhook"
    assert body["config"]["url"] == receiver.url and body["config"]["secret"].startswith("whsec_")
    listed = await airlock.gateway.get("/internal/channels", headers=ADMIN)
    assert listed.status == 200
    assert [c["name"] for c in (await listed.json())["channels"]] == ["ops-hook"]


async def test_duplicate_channel_is_409(airlock: Airlock, receiver: Receiver) -> None:
    body = {"name": "ops-hook", "type": "webhook", "config": {"url": receiver.url}}
    assert (await new_channel(airlock, body)).status == 201
    await error_of(await new_channel(airlock, body), 409)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "c", "type": "webhook", "config": {"url": "ftp://example.com/x"}}, "config.url"),
        ({"name": "c", "type": "webhook", "config": {"url": "not a url"}}, "config.url"),
        ({"name": "c", "type": "webhook", "config": {"url": "http://"}}, "config.url"),
        ({"name": "c", "type": "webhook", "config": {"url": "http://:8080/x"}}, "config.url"),
        ({"name": "c", "type": "webhook", "config": {"url": "http://[::1/x"}}, "config.url"),
        ({"name": "c", "type": "webhook", "config": {}}, "config.url"),
        ({"name": "c", "type": "webhook", "config": {"url": 42}}, "config.url"),
        ({"name": "c", "type": "webhook"}, "config"),  # the document requires config: the model names it
        ({"name": "c", "type": "webhook", "config": "http://x"}, "config"),
        ({"name": "c", "type": "carrier-pigeon", "config": {"url": "http://example.com"}}, "type"),
        ({"name": "c", "type": ["webhook"], "config": {"url": "http://example.com"}}, "type"),
        ({"name": "c", "config": {"url": "http://example.com"}}, "type"),
        ({"name": "", "type": "webhook", "config": {"url": "http://example.com"}}, "name"),
        ({"type": "webhook", "config": {"url": "http://example.com"}}, "name"),
        ({"name": "c", "type": "webhook", "config": {"url": "http://example.com"}, "extra": 1}, "extra"),
    ],
)
async def test_bad_channel_is_400_naming_the_field(airlock: Airlock, body: dict, field: str) -> None:
    await error_of(await new_channel(airlock, body), 400, field=field)


async def test_channel_routes_need_admin(airlock: Airlock, receiver: Receiver) -> None:
    headers = bearer("mallory", "approver")
    body = {"name": "c", "type": "webhook", "config": {"url": receiver.url}}
    await error_of(await new_channel(airlock, body, headers), 403)
    await error_of(await airlock.gateway.get("/internal/channels", headers=headers), 403)
    await error_of(await airlock.gateway.post("/internal/channels/delete", json={"name": "c"}, headers=headers), 403)


async def test_delete_channel(airlock: Airlock, receiver: Receiver) -> None:
    body = {"name": "c", "type": "webhook", "config": {"url": receiver.url}}
    assert (await new_channel(airlock, body)).status == 201
    resp = await airlock.gateway.post("/internal/channels/delete", json={"name": "c"}, headers=ADMIN)
    assert resp.status == 200 and (await resp.json())["name"] == "c"
    await error_of(await airlock.gateway.post("/internal/channels/delete", json={"name": "c"}, headers=ADMIN), 404)


async def test_policy_with_unknown_channel_is_400(airlock: Airlock) -> None:
    resp = await airlock.gateway.post(
        "/internal/policies/new", json={**GUIDE_POLICY, "channels": ["ghost"]}, headers=ADMIN
    )
    await error_of(resp, 400, field="channels")


async def test_hold_posts_the_notification(airlock: Airlock, receiver: Receiver) -> None:
    await with_webhook(airlock, receiver)
    task = await airlock.hold()
    [note] = await receiver.wait(1)
    assert PAYLOAD_KEYS <= set(note)
    assert note["event"] == "approval.requested"
    assert note["message_id"] == task["id"]
    assert note["tenant_id"] == "default"
    assert note["policy"] == "bulk_ops_approval"
    assert note["tool"] == "bulk_delete_expired"
    assert note["form"]["type"] == "Form"
    assert note["form"]["props"]["fields"][0]["id"] == "decision"
    assert datetime.fromisoformat(note["expires_at"].replace("Z", "+00:00"))
    assert note["resolve_url"] == f"{airlock.mesh.config.gateway_url}/messages/{task['id']}/resolve"
    token = note["callback_token"]
    assert isinstance(token, str) and len(token) >= 43
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    await asyncio.sleep(0.3)
    assert len(receiver.bodies) == 1, "one hold, one notification"


async def test_resolve_with_callback_token_then_conflict(airlock: Airlock, receiver: Receiver) -> None:
    await with_webhook(airlock, receiver)
    task = await airlock.hold()
    [note] = await receiver.wait(1)
    resp = await callback_resolve(airlock, task["id"], note["callback_token"])
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["ok"] is True and body["message_id"] == task["id"] and body["new_state"] == "completed"
    assert await airlock.executions() == 1
    err = await error_of(await callback_resolve(airlock, task["id"], note["callback_token"]), 409)
    assert err["code"] == "conflict"
    assert await airlock.executions() == 1


async def test_resolve_url_from_the_notification_works(airlock: Airlock, receiver: Receiver) -> None:
    await with_webhook(airlock, receiver)
    task = await airlock.hold()
    [note] = await receiver.wait(1)
    path = note["resolve_url"].removeprefix(airlock.mesh.config.gateway_url)
    resp = await airlock.gateway.post(
        path, json={"callback_token": note["callback_token"], "resolution": {"decision": "deny"}}
    )
    assert resp.status == 200
    assert (await resp.json())["new_state"] == "rejected"
    assert await airlock.executions() == 0
    assert task["id"] in path


async def test_callback_resolution_is_checked_against_the_form(airlock: Airlock, receiver: Receiver) -> None:
    await with_webhook(airlock, receiver)
    task = await airlock.hold()
    [note] = await receiver.wait(1)
    resp = await callback_resolve(airlock, task["id"], note["callback_token"], {"decision": "yolo"})
    await error_of(resp, 400, field="decision")
    assert (await callback_resolve(airlock, task["id"], note["callback_token"])).status == 200


@pytest.mark.parametrize(
    "forged",
    ["forged", "A" * 43, "", "x" * 2000],
)
async def test_forged_token_is_401(airlock: Airlock, receiver: Receiver, forged: str) -> None:
    await with_webhook(airlock, receiver)
    task = await airlock.hold()
    [note] = await receiver.wait(1)
    await error_of(await callback_resolve(airlock, task["id"], forged), 401)
    flipped = note["callback_token"][:-1] + ("A" if note["callback_token"][-1] != "A" else "B")
    await error_of(await callback_resolve(airlock, task["id"], flipped), 401)
    assert await airlock.executions() == 0
    status, body = await pending(airlock, bearer())
    assert status == 200
    assert body["total"] == 1


async def test_token_for_one_task_does_not_resolve_another(airlock: Airlock, receiver: Receiver) -> None:
    await with_webhook(airlock, receiver)
    task_a = await airlock.hold()
    task_b = await airlock.hold()
    notes = await receiver.wait(2)
    token_of = {n["message_id"]: n["callback_token"] for n in notes}
    assert set(token_of) == {task_a["id"], task_b["id"]}
    assert token_of[task_a["id"]] != token_of[task_b["id"]]
    await error_of(await callback_resolve(airlock, task_b["id"], token_of[task_a["id"]]), 401)
    assert await airlock.executions() == 0
    assert (await callback_resolve(airlock, task_b["id"], token_of[task_b["id"]], {"decision": "deny"})).status == 200
    assert (await callback_resolve(airlock, task_a["id"], token_of[task_a["id"]], {"decision": "deny"})).status == 200


async def test_callback_token_is_not_stored_in_clear(airlock: Airlock, receiver: Receiver) -> None:
    await with_webhook(airlock, receiver)
    task = await airlock.hold()
    [note] = await receiver.wait(1)
    token = note["callback_token"]
    assert token.encode() not in db_bytes(airlock.home)
    assert (await callback_resolve(airlock, task["id"], token)).status == 200
    assert token.encode() not in db_bytes(airlock.home)


async def test_callback_token_on_unknown_task_is_refused(airlock: Airlock, receiver: Receiver) -> None:
    await with_webhook(airlock, receiver)
    await airlock.hold()
    [note] = await receiver.wait(1)
    resp = await callback_resolve(airlock, "no-such-task", note["callback_token"])
    await error_of(resp, 401)


async def test_callback_token_after_expiry_is_410(tmp_path: Path, receiver: Receiver) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock) as airlock:
        await with_webhook(airlock, receiver)
        task = await airlock.hold()
        [note] = await receiver.wait(1)
        clock.advance(7200)
        await error_of(await callback_resolve(airlock, task["id"], note["callback_token"]), 410)
        assert await airlock.executions() == 0


async def test_bearer_and_callback_token_together_uses_the_bearer(airlock: Airlock, receiver: Receiver) -> None:
    await with_webhook(airlock, receiver)
    task = await airlock.hold()
    [note] = await receiver.wait(1)
    resp = await callback_resolve(
        airlock, task["id"], note["callback_token"], headers=bearer("bob", "approver", "admin", tenant="tenant-b")
    )
    await error_of(resp, 404)
    resp = await callback_resolve(airlock, task["id"], note["callback_token"], headers={"Authorization": "Bearer x"})
    await error_of(resp, 401)
    assert await airlock.executions() == 0


async def test_policy_without_channels_sends_nothing(airlock: Airlock, receiver: Receiver, control: Receiver) -> None:
    resp = await new_channel(airlock, {"name": "ops-hook", "type": "webhook", "config": {"url": receiver.url}})
    assert resp.status == 201
    resp = await new_channel(airlock, {"name": "control", "type": "webhook", "config": {"url": control.url}})
    assert resp.status == 201
    await airlock.add_policy()
    await airlock.hold()  # the policy names no channel: nobody is told
    # the positive control: the same policy, now naming only "control", tells it of two later holds. The
    # third hold is written after the control heard of the second, so the outbox run that sends it starts
    # after the run that would have carried any row of the first hold has ended
    resp = await airlock.gateway.post(
        "/internal/policies/update", json={"policy_id": "bulk_ops_approval", "channels": ["control"]}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    second = await airlock.hold()
    await control.wait(1)
    third = await airlock.hold()
    notes = await control.wait(2)
    assert [n["message_id"] for n in notes] == [second["id"], third["id"]]
    assert receiver.bodies == []


async def test_each_hold_of_a_session_notifies(airlock: Airlock, receiver: Receiver) -> None:
    await with_webhook(airlock, receiver)
    first = await airlock.rpc(guide_message(request_id="1", contextId="s-1"))
    second = await airlock.rpc(guide_message(request_id="2", contextId="s-2"))
    notes = await receiver.wait(2)
    assert {n["message_id"] for n in notes} == {first["result"]["id"], second["result"]["id"]}


async def test_failed_delivery_is_retried_with_the_same_token(airlock: Airlock, receiver: Receiver) -> None:
    receiver.fail_first = 1
    await with_webhook(airlock, receiver)
    task = await airlock.hold()
    [note] = await receiver.wait(1, timeout_s=8)
    assert receiver.calls == 2
    assert note["message_id"] == task["id"]
    assert (await callback_resolve(airlock, task["id"], note["callback_token"])).status == 200


async def test_unreachable_receiver_does_not_break_the_hold(airlock: Airlock) -> None:
    resp = await new_channel(airlock, {"name": "dead", "type": "webhook", "config": {"url": "http://127.0.0.1:9/x"}})
    assert resp.status == 201
    await airlock.add_policy(channels=["dead"])
    task = await airlock.hold()
    await asyncio.sleep(0.3)
    status, body = await pending(airlock, bearer())
    assert status == 200 and [m["message_id"] for m in body["messages"]] == [task["id"]]
    assert (await airlock.resolve(task["id"], {"decision": "deny"})).status == 200


async def test_channel_in_use_cannot_be_deleted_and_the_policy_stays_editable(
    airlock: Airlock, receiver: Receiver
) -> None:
    await with_webhook(airlock, receiver)
    resp = await airlock.gateway.post("/internal/channels/delete", json={"name": "ops-hook"}, headers=ADMIN)
    await error_of(resp, 409)
    resp = await airlock.gateway.post(
        "/internal/policies/update", json={"policy_id": "bulk_ops_approval", "enforcement": "allow"}, headers=ADMIN
    )
    assert resp.status == 200, await resp.text()
    resp = await airlock.gateway.post(
        "/internal/policies/update", json={"policy_id": "bulk_ops_approval", "channels": []}, headers=ADMIN
    )
    assert resp.status == 200
    resp = await airlock.gateway.post("/internal/channels/delete", json={"name": "ops-hook"}, headers=ADMIN)
    assert resp.status == 200


# ------------------------------------------------------------------------------------------ decisions

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PASSWORD = "hunter2-Zq81-never-sent"
EDITED_VALUE = "replica-7c1e-value-kept-home"


def verified(receiver: Receiver) -> list[dict]:
    """Every body the receiver accepted, each checked against its Standard Webhooks signature."""
    return [Webhook(SECRET).verify(raw, headers) for raw, headers in receiver.raw]


async def signed_hook(airlock: Airlock, receiver: Receiver, name: str = "ops-hook") -> None:
    config = {"url": receiver.url, "secret": SECRET}
    resp = await new_channel(airlock, {"name": name, "type": "webhook", "config": config})
    assert resp.status == 201, await resp.text()


async def of_type(receiver: Receiver, event: str, count: int = 1) -> list[dict]:
    await wait_for(lambda: len([b for b in receiver.bodies if b["type"] == event]) >= count)
    return [b for b in verified(receiver) if b["type"] == event]


def never_sent(receiver: Receiver, *values: str) -> None:
    for raw, _ in receiver.raw:
        for value in values:
            assert value.encode() not in raw


async def drained(airlock: Airlock) -> None:
    """Every outbox row delivered (or dead): nothing more will reach a receiver."""
    deadline = asyncio.get_running_loop().time() + 10
    while await airlock.mesh.store.list_outbox("default", "pending"):
        assert asyncio.get_running_loop().time() < deadline, "the outbox never drained"
        await asyncio.sleep(0.05)


async def test_a_quorum_hold_tells_its_progress_then_every_approver(airlock: Airlock, receiver: Receiver) -> None:
    await signed_hook(airlock, receiver)
    await airlock.add_policy(
        channels=["ops-hook"],
        approvals_required=2,
        evaluator={"plugin": "bulk_operation", "config": {"threshold": 10, "fields": STRUCTURED_FIELDS}},
    )
    task = await airlock.hold()
    [asked] = await of_type(receiver, "approval.requested")
    assert asked["approvals_required"] == 2 and asked["callback_token"]
    values = {"decision": "approve", "reason": "nightly", "password": PASSWORD}
    assert (await airlock.resolve(task["id"], values, bearer("bob", "approver"))).status == 200

    [progress] = await of_type(receiver, "approval.progress")
    assert progress["message_id"] == task["id"] and progress["status"] == "pending"
    assert progress["approvals_required"] == 2
    assert [(a["by"], a["surface"]) for a in progress["approvals"]] == [("bob", "api")]
    assert progress["approvals"][0]["at"].endswith("Z")
    assert "callback_token" not in progress and "resolve_url" not in progress

    assert (await airlock.resolve(task["id"], values, bearer("carol", "approver"))).status == 200
    [done] = await of_type(receiver, "approval.resolved")
    assert done["decision"] == "approve" and done["approvals_required"] == 2
    assert [a["by"] for a in done["approvals"]] == ["bob", "carol"]
    assert "reason" not in done and "edited" not in done  # the form's own "reason" field is a value, not sent
    await drained(airlock)
    assert [b["type"] for b in verified(receiver)] == ["approval.requested", "approval.progress", "approval.resolved"]
    never_sent(receiver, PASSWORD, "nightly")


async def test_a_denial_carries_its_reason_and_one_approval_names_its_approver(
    airlock: Airlock, receiver: Receiver
) -> None:
    await signed_hook(airlock, receiver)
    await airlock.add_policy(channels=["ops-hook"])
    first = await airlock.hold()
    resp = await airlock.resolve(first["id"], {"decision": "deny", "reason": "not during the freeze"}, bearer("bob"))
    assert resp.status == 200, await resp.text()
    [denied] = await of_type(receiver, "approval.resolved")
    assert (denied["decision"], denied["resolved_by"], denied["reason"]) == ("deny", "bob", "not during the freeze")
    assert denied["approvals"] == [] and denied["approvals_required"] == 1
    assert "approvals_required" not in verified(receiver)[0]  # a request that needs one says nothing of it

    second = await airlock.hold()
    assert (await airlock.resolve(second["id"], {"decision": "approve"}, bearer("carol"))).status == 200
    approved = (await of_type(receiver, "approval.resolved", 2))[1]
    assert [(a["by"], a["surface"]) for a in approved["approvals"]] == [("carol", "api")]
    assert "reason" not in approved


async def test_an_edited_approval_names_the_changed_arguments_never_their_values(
    airlock: Airlock, receiver: Receiver
) -> None:
    await signed_hook(airlock, receiver)
    await airlock.add_policy(channels=["ops-hook"], allow_edits=True)
    task = await airlock.hold()
    approval = await airlock.mesh.store.latest_approval(task["id"])
    assert approval is not None
    arguments = {**approval.action["arguments"], "database": EDITED_VALUE}
    await airlock.mesh.resolver.resolve(
        ResolveRequest(
            ref=approval.id,
            resolution={"decision": "approve", "arguments": arguments},
            surface="api",
            principal=Principal(sub="bob", tenant="default", roles=frozenset({"approver"})),
        )
    )
    [done] = await of_type(receiver, "approval.resolved")
    assert done["edited"] is True and done["changed_arguments"] == ["database"]
    assert done["approvals"][0]["by"] == "bob"
    never_sent(receiver, EDITED_VALUE)


async def test_an_escalation_is_told_once_on_the_holds_channels_and_the_escalation_channels(
    tmp_path: Path, receiver: Receiver, control: Receiver
) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock) as airlock:
        await signed_hook(airlock, receiver, "ops-hook")
        await signed_hook(airlock, control, "oncall-hook")
        await airlock.add_policy(
            channels=["ops-hook"], approvals_required=2, escalate_after="10m", escalate_to=["oncall-hook"]
        )
        task = await airlock.hold()
        await of_type(receiver, "approval.requested")
        assert (await airlock.resolve(task["id"], {"decision": "approve"}, bearer("bob", "approver"))).status == 200
        await of_type(receiver, "approval.progress")
        assert await airlock.mesh.expiry.escalate_due() == 0  # not yet
        clock.advance(601)
        assert await airlock.mesh.expiry.escalate_due() == 1
        assert await airlock.mesh.expiry.escalate_due() == 0  # once
        [told] = await of_type(control, "approval.escalated")
        [own] = await of_type(receiver, "approval.escalated")
        await drained(airlock)
        clock.advance(60)
        assert await airlock.mesh.expiry.escalate_due() == 0
        await drained(airlock)
    for body in (told, own):
        assert body["message_id"] == task["id"] and body["status"] == "pending"
        assert body["escalate_to"] == ["oncall-hook"] and body["escalated_at"].endswith("Z")
        assert [a["by"] for a in body["approvals"]] == ["bob"] and body["approvals_required"] == 2
        assert body["form"]["type"] == "Form"
        assert body["dashboard_url"].endswith(task["metadata"]["airlock"]["approvalId"])
        for credential in ("callback_token", "resolve_url", "approve_url", "deny_url"):
            assert credential not in body
    assert [b["type"] for b in verified(control)] == ["approval.escalated"]
    assert [b["type"] for b in verified(receiver)] == ["approval.requested", "approval.progress", "approval.escalated"]
