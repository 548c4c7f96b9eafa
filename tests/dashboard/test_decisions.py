"""Decisions beyond yes and no in a real browser (headless Chromium) against ``airlock serve --demo``: a denial
with its reason, an approval with edited arguments (checked in the page, then by the policies), and a hold
that needs two approvers, kept current on its card."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from tests.conftest import GUIDE_POLICY, GUIDE_TEXT, IN_CI

try:
    from playwright.sync_api import expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip("the playwright Python package is not installed (make install-test)", allow_module_level=True)

from tests.dashboard.conftest import Pages, approval_id, call, hold, send, sign_in
from tests.e2e.conftest import Server

REASON = "not during the audit freeze"


def card(page: Any, approval: str) -> Any:
    return page.locator(f'.card[data-approval-id="{approval}"]')


def add_policy(server: Server, body: dict[str, Any]) -> None:
    status, answer = call(f"{server.gateway_url}/internal/policies/new", body, server.token("root", "admin"))
    assert status == 201, answer


def task_of(server: Server, task_id: str, token: str) -> dict[str, Any]:
    rpc = {"jsonrpc": "2.0", "id": "2", "method": "tasks/get", "params": {"id": task_id}}
    status, reply = call(f"{server.mesh_url}/", rpc, token)
    assert status == 200 and "result" in reply, reply
    return reply["result"]


def resolve_posts(page: Any) -> list[str]:
    """The resolve calls the page makes, recorded as they leave it."""
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.method == "POST" and r.url.endswith("/resolve") else None)
    return sent


def send_and_hold(server: Server, agent: str) -> dict[str, Any]:
    task = send(server, GUIDE_TEXT, agent)
    assert task["status"]["state"] == "input-required", task
    return task


def test_deny_with_a_reason_tells_the_agent_why(server: Server, pages: Pages) -> None:
    add_policy(server, GUIDE_POLICY)
    agent = server.token("carol", "agent")
    task = send_and_hold(server, agent)
    approval = approval_id(task)
    page = pages.new()
    sign_in(page, server, "alice", "approver")
    held = card(page, approval)
    reason = held.get_by_label("Reason")
    expect(reason).to_have_attribute("maxlength", "1000")
    reason.fill(REASON)
    expect(held.locator(".count")).to_have_text(f"{len(REASON)} of 1000 characters")
    held.get_by_role("button", name="Deny").click()
    expect(held.locator(".outcome")).to_have_text(f"Denied: {REASON}")

    denied = task_of(server, task["id"], agent)
    assert denied["status"]["state"] == "rejected", denied["status"]
    assert denied["status"]["message"]["parts"][0]["text"] == f"Denied by alice: {REASON}"
    page.get_by_role("link", name="History").click()
    expect(page.locator(f'tr[data-approval-id="{approval}"] .reason')).to_have_text(f"Reason: {REASON}")


def test_approve_with_edited_arguments_checked_in_the_page_and_by_the_policies(server: Server, pages: Pages) -> None:
    add_policy(server, {**GUIDE_POLICY, "allow_edits": True})
    # a second policy that blocks any call naming tables: an edit that adds some is refused by the server
    add_policy(
        server,
        {
            "name": "no_tables",
            "scope_type": "tool",
            "enforcement": "block",
            "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 0, "items_keys": ["tables"]}},
        },
    )
    approval = approval_id(hold(server))
    page = pages.new()
    sent = resolve_posts(page)
    sign_in(page, server, "alice", "approver")
    held = card(page, approval)
    editor = held.get_by_label("Arguments (a JSON object)")
    expect(editor).to_be_hidden()
    held.get_by_role("button", name="Edit arguments").click()
    expect(editor).to_be_visible()
    expect(editor).to_be_focused()
    assert json.loads(editor.input_value())["database"] == "staging"
    assert len(json.loads(editor.input_value())["items"]) == 42
    error = held.locator('.field[data-field="arguments"] .field-error')

    # checked in the page: not JSON, or not an object, is shown under the editor and nothing is sent
    editor.fill('{"items": ["rec-000",]')
    held.get_by_role("button", name="Approve with edits").click()
    expect(error).to_contain_text("Not valid JSON")
    expect(editor).to_have_attribute("aria-invalid", "true")
    editor.fill('["rec-000"]')
    held.get_by_role("button", name="Approve with edits").click()
    expect(error).to_have_text("The arguments must be a JSON object ({…}).")
    assert sent == []

    # judged by the server: a call the edit makes blocked is a 400 shown under the editor; the card stays
    editor.fill(json.dumps({"items": ["rec-000"], "database": "staging", "tables": ["users"]}))
    held.get_by_role("button", name="Approve with edits").click()
    expect(error).to_contain_text("blocked by policy no_tables")
    expect(held.locator(".outcome")).to_have_text("")
    expect(held.get_by_role("button", name="Approve with edits")).to_be_enabled()
    assert len(sent) == 1

    edited = {"items": ["rec-000", "rec-001", "rec-002"], "database": "staging"}
    editor.fill(json.dumps(edited))
    held.get_by_role("button", name="Approve with edits").click()
    expect(held.locator(".outcome")).to_contain_text("Approved with edits. Deleted 3 expired records")
    with sqlite3.connect(server.home / "airlock.db") as db:
        row = db.execute("SELECT status, edited_action FROM approvals WHERE id = ?", (approval,)).fetchone()
    assert row[0] == "approved" and json.loads(row[1])["arguments"] == edited
    page.get_by_role("link", name="History").click()
    expect(page.locator(f'tr[data-approval-id="{approval}"] .edited')).to_have_text("with edits (items)")


def test_a_hold_that_needs_two_approvers_on_its_card(server: Server, pages: Pages) -> None:
    status, answer = call(
        f"{server.gateway_url}/internal/channels/new",
        {"name": "oncall", "type": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}},
        server.token("root", "admin"),
    )
    assert status == 201, answer
    add_policy(
        server,
        {**GUIDE_POLICY, "approvals_required": 2, "escalate_after": "2s", "escalate_to": ["oncall"], "timeout": "10m"},
    )
    approval = approval_id(hold(server))
    page = pages.new()
    sign_in(page, server, "alice", "approver")
    # a second person's page, told of the hold's progress and escalation by the server's event stream
    watcher = pages.new()
    sign_in(watcher, server, "dave", "approver")
    watched = card(watcher, approval)
    expect(watched.locator(".quorum-count")).to_have_text("0 of 2 approvals")

    held = card(page, approval)
    expect(held.locator(".quorum-count")).to_have_text("0 of 2 approvals")
    approve = held.get_by_role("button", name="Approve")
    approve.click()
    expect(held.locator(".quorum-count")).to_have_text("1 of 2 approvals: alice")
    expect(held.locator(".quorum-mine")).to_have_text("You approved; waiting for 1 more")
    expect(approve).to_be_disabled()
    expect(held.get_by_role("button", name="Deny")).to_be_enabled()
    expect(watched.locator(".quorum-count")).to_have_text("1 of 2 approvals: alice")
    expect(watched.locator(".quorum-mine")).to_have_count(0)
    expect(watched.get_by_role("button", name="Approve")).to_be_enabled()
    expect(watched.locator(".badge-escalated")).to_have_text("Escalated")  # once the server escalated it

    # a second click (the button forced on) is refused by the server; its message is shown, not a race
    approve.evaluate("b => { b.disabled = false; }")
    approve.click()
    expect(held.locator(".form-error")).to_have_text("already approved by you")
    expect(approve).to_be_disabled()

    status, answer = call(
        f"{server.gateway_url}/messages/{approval}/resolve",
        {"resolution": {"decision": "approve"}},
        server.token("bob", "approver"),
    )
    assert status == 200 and answer["new_state"] == "completed", answer
    expect(held.locator(".outcome")).to_have_text("Approved by bob via api.")
    expect(held).to_have_count(0)
    given = task_of(server, answer["message_id"], server.token("root", "admin"))["metadata"]["airlock"]["approvals"]
    assert [g["by"] for g in given] == ["alice", "bob"]
