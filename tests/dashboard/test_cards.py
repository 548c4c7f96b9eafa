"""The queue's cards and History as the server renders them (no browser): a quorum hold's counter and who
approved, the Escalated badge, the Reason textarea, the arguments editor only where the resolve path takes
edits, and History's reason, edits and approvers."""

from __future__ import annotations

import html as markup
import re
from pathlib import Path
from typing import Any

import jinja2
import pytest
from aiohttp.test_utils import TestClient

from gateway.dashboard.views import card_view
from mesh.store import ApprovalRecord
from tests.conftest import Airlock, bearer, make_token, start_airlock
from tests.gateway.conftest import Clock

DECISION_FORM = {
    "type": "Form",
    "props": {
        "title": "Approve bulk_delete_expired?",
        "fields": [
            {
                "id": "decision",
                "type": "action",
                "options": [{"value": "approve", "label": "Approve"}, {"value": "deny", "label": "Deny"}],
            }
        ],
    },
}
ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("gateway", "templates"),
    autoescape=jinja2.select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def record(**changes: Any) -> ApprovalRecord:
    fields: dict[str, Any] = {
        "id": "ap-1",
        "task_id": "task-1",
        "tenant": "default",
        "kind": "approval",
        "status": "pending",
        "policy": "bulk_ops_approval",
        "tool": "bulk_delete_expired",
        "action": {
            "agent": "staging-db",
            "tool": "bulk_delete_expired",
            "arguments": {"items": ["rec-000", "rec-001"], "database": "staging"},
        },
        "form": DECISION_FORM,
        "requested_by": "carol",
        "requester_roles": ["agent"],
        "session_id": None,
        "user_input": "Delete all expired records",
        "channels": [],
        "token_hash": None,
        "fingerprint": None,
        "expires_at": 2_000_000_000.0,
        "created_at": 1_700_000_000.0,
        "updated_at": 1_700_000_000.0,
    }
    fields.update(changes)
    return ApprovalRecord(**fields)


def render(approval: ApprovalRecord, viewer: str | None = "bob") -> str:
    return ENV.get_template("dashboard/card_fragment.html").render(c=card_view(approval, viewer), csrf="")


def approve_button(html: str) -> str:
    found = re.search(r'<button type="submit" name="decision" value="approve"[^>]*>', html)
    assert found, html
    return found.group(0)


def text(html: str) -> str:
    """The page's text: tags dropped, whitespace runs made one space, entities read."""
    return markup.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)))


def test_a_quorum_card_counts_the_approvals_and_names_who_gave_them() -> None:
    given = [{"by": "alice", "at": "2026-01-01T00:00:00.000Z", "surface": "dashboard"}]
    html = render(record(approvals_required=2, approvals=given), viewer="bob")
    assert "1 of 2 approvals: alice" in text(html)
    assert "You approved" not in html
    assert "disabled" not in approve_button(html)

    none_yet = render(record(approvals_required=3), viewer="bob")
    assert "0 of 3 approvals" in text(none_yet)

    single = render(record(), viewer="bob")
    assert 'class="quorum"' not in single and " of 1 approvals" not in text(single)


def test_who_approved_a_quorum_hold_sees_it_waits_and_cannot_approve_again() -> None:
    given = [{"by": "alice", "at": "2026-01-01T00:00:00.000Z", "surface": "dashboard"}]
    html = render(record(approvals_required=3, approvals=given), viewer="alice")
    assert "You approved; waiting for 2 more" in text(html)
    button = approve_button(html)
    assert " disabled" in button and 'aria-describedby="mine-ap-1"' in button
    deny = re.search(r'<button type="submit" name="decision" value="deny"[^>]*>', html)
    assert deny and "disabled" not in deny.group(0)  # a denial stays open to them


def test_an_escalated_hold_has_its_badge_and_a_fresh_one_has_none() -> None:
    html = render(record(escalated_at=1_700_000_600.0))
    assert re.search(r'<span class="badge badge-escalated"[^>]*>Escalated</span>', html)
    assert 'data-live="badges"' in html
    assert "Escalated" not in render(record())


def test_a_decision_card_has_a_counted_reason_box_an_input_request_has_none() -> None:
    html = render(record())
    box = re.search(r'<textarea id="reason-ap-1"[^>]*>', html)
    assert box, html
    assert 'maxlength="1000"' in box.group(0) and 'data-extra="reason"' in box.group(0)
    assert '<label for="reason-ap-1">Reason' in html
    assert "0</span> of 1000 characters" in html

    name_form = {"type": "Form", "props": {"fields": [{"id": "name", "type": "text"}]}}
    asked = record(kind="input", tool=None, form=name_form)
    assert 'data-extra="reason"' not in render(asked)
    # a form with its own field named reason keeps it as its value: no second box of that name
    own = {"type": "Form", "props": {"fields": [*DECISION_FORM["props"]["fields"], {"id": "reason", "type": "text"}]}}
    assert 'data-extra="reason"' not in render(record(form=own))


def test_the_arguments_editor_is_there_only_where_edits_are_taken() -> None:
    html = render(record(allow_edits=True))
    assert '<button type="button" class="btn edit-toggle" aria-expanded="false" aria-controls="edit-ap-1">' in html
    editor = re.search(r'<textarea id="args-ap-1"[^>]*>(.*?)</textarea>', html, re.S)
    assert editor, html
    pretty = '{\n  "items": [\n    "rec-000",\n    "rec-001"\n  ],\n  "database": "staging"\n}'
    assert markup.unescape(editor.group(1)) == pretty
    assert '<label for="args-ap-1">' in html and 'id="err-ap-1-arguments" role="alert"' in html

    assert "edit-toggle" not in render(record())  # the policy has no allow_edits
    assert "edit-toggle" not in render(record(allow_edits=True, approvals_required=2))  # a quorum: as asked
    assert "edit-toggle" not in render(record(allow_edits=True, tool=None, action={"text": "hi"}))  # no tool call
    asked = record(kind="input", allow_edits=True, form={"type": "Form", "props": {"fields": [{"id": "x"}]}})
    assert "edit-toggle" not in render(asked)


def test_the_editor_escapes_what_the_agent_sent_and_shows_no_form_values() -> None:
    action = {"tool": "bulk_delete_expired", "arguments": {"note": "</textarea><script>alert(1)</script>"}}
    form = {
        "type": "Form",
        "props": {
            "fields": [*DECISION_FORM["props"]["fields"], {"id": "otp", "type": "password", "default": "s3cret"}]
        },
    }
    html = render(record(allow_edits=True, action=action, form=form, values={"otp": "s3cret"}))
    assert "<script>alert" not in html and "&lt;/textarea&gt;&lt;script&gt;" in html
    assert "s3cret" not in html


# ------------------------------------------------------------------------------------------ over HTTP


async def sign_in(client: TestClient, sub: str) -> None:
    page = await client.get("/dashboard/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert csrf
    resp = await client.post(
        "/dashboard/login",
        data={"token": make_token(sub, "approver"), "csrf_token": csrf.group(1)},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()


async def fragment(airlock: Airlock, approval: str) -> str:
    resp = await airlock.gateway.get(f"/dashboard/cards/{approval}")
    assert resp.status == 200, await resp.text()
    return await resp.text()


@pytest.fixture
async def quorum_hold(airlock: Airlock) -> str:
    await airlock.add_policy(approvals_required=2)
    task = await airlock.hold(headers=bearer("carol", "agent"))
    return task["metadata"]["airlock"]["approvalId"]


async def test_a_card_fetched_again_shows_the_approvals_to_each_person(airlock: Airlock, quorum_hold: str) -> None:
    resp = await airlock.resolve(quorum_hold, {"decision": "approve"}, bearer("alice", "approver"))
    assert resp.status == 200 and (await resp.json())["new_state"] == "input-required"
    await sign_in(airlock.gateway, "alice")
    html = await fragment(airlock, quorum_hold)
    assert "1 of 2 approvals: alice" in text(html) and "You approved; waiting for 1 more" in text(html)
    assert " disabled" in approve_button(html)
    queue = await (await airlock.gateway.get("/dashboard")).text()
    assert "You approved; waiting for 1 more" in text(queue)

    await sign_in(airlock.gateway, "bob")
    html = await fragment(airlock, quorum_hold)
    assert "1 of 2 approvals: alice" in text(html) and "You approved" not in html
    assert "disabled" not in approve_button(html)


async def test_an_escalated_hold_shows_its_badge_in_the_queue(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock) as airlock:
        channel = {"name": "oncall", "type": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}}
        resp = await airlock.gateway.post("/internal/channels/new", json=channel, headers=bearer())
        assert resp.status == 201, await resp.text()
        await airlock.add_policy(escalate_after="15m", escalate_to=["oncall"], timeout="1h")
        task = await airlock.hold(headers=bearer("carol", "agent"))
        approval = task["metadata"]["airlock"]["approvalId"]
        await sign_in(airlock.gateway, "alice")
        assert "badge-escalated" not in await fragment(airlock, approval)
        clock.advance(16 * 60)
        assert await airlock.mesh.expiry.escalate_due() == 1
        assert ">Escalated</span>" in await fragment(airlock, approval)
        assert ">Escalated</span>" in await (await airlock.gateway.get("/dashboard")).text()


async def test_history_shows_a_reason_an_edit_and_a_quorum_s_approvers(airlock: Airlock) -> None:
    await airlock.add_policy(allow_edits=True)
    denied = (await airlock.hold(headers=bearer("carol", "agent")))["id"]
    edited = (await airlock.hold(headers=bearer("carol", "agent")))["id"]
    resp = await airlock.resolve(denied, {"decision": "deny", "reason": "not <during> the freeze"}, bearer("alice"))
    assert resp.status == 200, await resp.text()
    resolution = {"decision": "approve", "arguments": {"items": ["rec-000"], "database": "staging"}}
    resp = await airlock.resolve(edited, resolution, bearer("alice"))
    assert resp.status == 200, await resp.text()
    resp = await airlock.gateway.post(
        "/internal/policies/update",
        json={"policy_id": "bulk_ops_approval", "approvals_required": 2, "allow_edits": False},
        headers=bearer(),
    )
    assert resp.status == 200, await resp.text()
    quorum = (await airlock.hold(headers=bearer("carol", "agent")))["id"]
    for who in ("alice", "bob"):
        resp = await airlock.resolve(quorum, {"decision": "approve"}, bearer(who, "approver"))
        assert resp.status == 200, await resp.text()

    await sign_in(airlock.gateway, "dave")
    html = await (await airlock.gateway.get("/dashboard/history")).text()

    assert "Reason: not &lt;during&gt; the freeze" in html
    assert '<li class="edited">with edits (items)</li>' in html
    assert '<li class="approvers">Approvers: alice, bob</li>' in html
    # the Who filter finds a quorum's first approver too, not only the one whose approval completed it
    filtered = await (await airlock.gateway.get("/dashboard/history?who=alice&outcome=approved")).text()
    assert filtered.count("<tr data-approval-id=") == 2
    assert "Approvers: alice, bob" in filtered
