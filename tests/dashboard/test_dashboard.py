"""The dashboard in a real browser (headless Chromium) against a real ``airlock serve --demo`` process."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import GUIDE_TEXT, IN_CI

try:
    from playwright.sync_api import expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip("the playwright Python package is not installed (make install-test)", allow_module_level=True)

from tests.dashboard.conftest import (
    Pages,
    add_guide_policy,
    approval_id,
    call,
    hold,
    send,
    sign_in,
)
from tests.e2e.conftest import Server

CONNECT = "Connect to the production database"


def card(page: Any, approval: str) -> Any:
    return page.locator(f'.card[data-approval-id="{approval}"]')


def login_link(server: Server, sub: str, *roles: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "login-link", "--sub", sub, "--gateway-url", server.gateway_url]
        + [a for r in roles for a in ("--role", r)],
        env={**os.environ, "AIRLOCK_HOME": str(server.home)},
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def test_sign_in_by_the_form_and_by_a_login_link(server: Server, pages: Pages) -> None:
    page = pages.new()
    sign_in(page, server, "alice", "approver")
    expect(page.get_by_text("alice · default")).to_be_visible()
    expect(page.get_by_role("link", name="Policies")).to_have_count(0)  # an approver is no admin
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{server.gateway_url}/dashboard/login")
    page.goto(f"{server.gateway_url}/dashboard")
    expect(page).to_have_url(f"{server.gateway_url}/dashboard/login")

    url = login_link(server, "bob", "admin")
    other = pages.new()
    other.goto(url)
    other.get_by_role("button", name="Sign in").click()
    expect(other).to_have_url(f"{server.gateway_url}/dashboard")
    expect(other.get_by_text("bob · default")).to_be_visible()
    expect(other.get_by_role("link", name="Policies")).to_be_visible()
    # single use: the same link signs nobody in again
    third = pages.new()
    third.goto(url)
    third.get_by_role("button", name="Sign in").click()
    expect(third.get_by_role("alert")).to_contain_text("used already")
    third.goto(f"{server.gateway_url}/dashboard")
    expect(third).to_have_url(f"{server.gateway_url}/dashboard/login")


def test_approve_a_held_message_from_its_card_and_see_the_result_and_history(server: Server, pages: Pages) -> None:
    add_guide_policy(server)
    task = hold(server)
    approval = approval_id(task)
    page = pages.new()
    sign_in(page, server, "alice", "approver")
    held = card(page, approval)
    expect(held).to_be_visible()
    expect(held).to_contain_text("bulk_delete_expired")
    expect(held).to_contain_text("staging-db")
    expect(held).to_contain_text("bulk_ops_approval")
    expect(held).to_contain_text(GUIDE_TEXT)
    expect(held).to_contain_text("carol")
    expect(held.locator("time.countdown")).to_have_text(re.compile(r"^(\d+h )?\d+m \d+s$"))
    expect(held.get_by_role("button", name="Deny")).to_be_visible()
    held.get_by_role("button", name="Approve").click()
    expect(held.locator(".outcome")).to_contain_text("Approved. Deleted 42 expired records")
    expect(held).to_have_class(re.compile(r"\bleaving\b"))  # on its way out of the queue, once read
    expect(page.locator("#pending-count")).to_have_text("0")

    page.get_by_role("link", name="History").click()
    row = page.locator(f'tr[data-approval-id="{approval}"]')
    expect(row).to_contain_text("approved")
    expect(row).to_contain_text("alice")
    expect(row).to_contain_text("dashboard")
    page.get_by_label("Outcome").select_option("denied")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(f'tr[data-approval-id="{approval}"]')).to_have_count(0)


def test_the_credentials_form_checks_values_and_never_shows_the_password(server: Server, pages: Pages) -> None:
    password = secrets.token_urlsafe(24)
    task = send(server, CONNECT, server.token("carol", "approver"))
    assert task["status"]["state"] == "input-required", task
    approval = approval_id(task)
    page = pages.new()
    sign_in(page, server, "alice", "approver")
    form = card(page, approval)
    expect(form.get_by_label("Password")).to_have_attribute("type", "password")
    expect(form.get_by_role("button", name="Submit")).to_be_visible()
    expect(form.get_by_role("button", name="Approve")).to_have_count(0)
    # the browser's own checks: a required field left empty is never sent
    form.get_by_role("button", name="Submit").click()
    expect(form.locator(".outcome")).to_have_text("")
    # a value the browser accepts but the form does not: the server's 400 shows beside its field
    form.get_by_label("Username").fill("john@localhost")
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Submit").click()
    error = form.locator('.field[data-field="username"] .field-error')
    expect(error).to_contain_text("username")
    expect(form.get_by_label("Username")).to_have_attribute("aria-invalid", "true")
    form.get_by_label("Username").fill("john@example.com")
    form.get_by_label("Remember me").check()
    form.get_by_role("button", name="Submit").click()
    expect(form.locator(".outcome")).to_contain_text(
        "Connected to the production database as john@example.com; will remember you."
    )
    assert password not in page.content()
    assert page.locator('input[type="password"]').count() == 0 or all(
        v == "" for v in page.locator('input[type="password"]').evaluate_all("els => els.map(e => e.value)")
    )


def test_a_new_hold_appears_and_one_resolved_elsewhere_leaves_without_reload(server: Server, pages: Pages) -> None:
    add_guide_policy(server)
    page = pages.new()
    sign_in(page, server, "alice", "approver")
    expect(page.locator("#live")).to_have_text("Live")
    expect(page.locator(".card")).to_have_count(0)
    approval = approval_id(hold(server))
    arrived = card(page, approval)
    expect(arrived).to_be_visible()
    expect(page.locator("#pending-count")).to_have_text("1")
    status, body = call(
        f"{server.gateway_url}/v1/approvals/{approval}/resolve", {"approved": True}, server.token("bob", "approver")
    )
    assert status == 200, body
    expect(arrived.locator(".outcome")).to_have_text("Approved by bob via api.")
    expect(arrived).to_have_count(0)


def test_two_pages_racing_on_one_card(server: Server, pages: Pages) -> None:
    add_guide_policy(server)
    approval = approval_id(hold(server))
    first, second = pages.new(), pages.new()
    sign_in(first, server, "alice", "approver")
    # the second page hears nothing live, so it still shows the card when it clicks
    second.route("**/v1/events/stream", lambda route: route.abort())
    sign_in(second, server, "bob", "approver")
    expect(card(second, approval)).to_be_visible()
    card(first, approval).get_by_role("button", name="Approve").click()
    expect(card(first, approval).locator(".outcome")).to_contain_text("Approved.")
    card(second, approval).get_by_role("button", name="Approve").click()
    expect(card(second, approval).locator(".outcome")).to_have_text("Already resolved by alice (approved).")
    assert "error" not in card(second, approval).inner_text().lower()


def test_an_admin_flips_a_policy_to_allow_and_the_message_runs_without_a_hold(server: Server, pages: Pages) -> None:
    add_guide_policy(server)
    page = pages.new()
    sign_in(page, server, "root", "admin")
    page.get_by_role("link", name="Policies").click()
    policy = page.locator('.policy[data-policy="bulk_ops_approval"]')
    expect(policy.locator(".enforcement")).to_have_text("require_approval")
    policy.get_by_role("button", name="Always allow").click()
    policy.get_by_role("button", name="Confirm").click()  # after the dry-run (tests/dashboard/test_dry_run.py)
    expect(policy.locator(".enforcement")).to_have_text("allow")
    task = send(server, GUIDE_TEXT, server.token("carol", "agent"))
    assert task["status"]["state"] == "completed", task
    policy.get_by_role("button", name="Require approval").click()
    policy.get_by_role("button", name="Confirm").click()
    expect(policy.locator(".enforcement")).to_have_text("require_approval")
    # the records are gone now, so the same bulk call is named with its ids: held again
    items = [f"rec-{i:03d}" for i in range(12)]
    again = send(
        server, "", server.token("carol", "agent"), {"tool": "bulk_delete_expired", "arguments": {"items": items}}
    )
    assert again["status"]["state"] == "input-required", again


def test_a_request_without_a_session_or_with_a_bad_csrf_token_is_refused(server: Server, pages: Pages) -> None:
    add_guide_policy(server)
    approval = approval_id(hold(server))
    stranger = pages.new()
    resp = stranger.request.post(
        f"{server.gateway_url}/messages/{approval}/resolve", data={"resolution": {"decision": "approve"}}
    )
    assert resp.status == 401
    page = pages.new()
    sign_in(page, server, "alice", "approver")
    url = f"{server.gateway_url}/messages/{approval}/resolve"
    for headers in ({}, {"X-CSRF-Token": "0" * 64}):
        resp = page.request.post(url, data={"resolution": {"decision": "approve"}}, headers=headers)
        assert resp.status == 403, resp.text()
    # the page's own token is accepted: it is the page's calls that carry it
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    resp = page.request.post(url, data={"resolution": {"decision": "deny"}}, headers={"X-CSRF-Token": csrf or ""})
    assert resp.status == 200, resp.text()


def test_readable_on_a_phone_and_usable_by_keyboard(server: Server, pages: Pages) -> None:
    add_guide_policy(server)
    approval = approval_id(hold(server))
    page = pages.new(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    sign_in(page, server, "alice", "approver")
    held = card(page, approval)
    expect(held).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the page scrolls sideways on a phone ({width}px)"
    held.get_by_role("button", name="Deny").focus()
    page.keyboard.press("Enter")
    expect(held.locator(".outcome")).to_contain_text("Denied.")


def test_bulk_approve_a_run_group(server: Server, pages: Pages) -> None:
    agent = server.token("runner", "agent")
    ids = []
    for n in range(2):
        body = {"tool": "exec", "agent": "coder", "message": f"step {n}", "command": f"make step{n}", "run_id": "run-7"}
        status, answer = call(f"{server.gateway_url}/v1/approvals", body, agent)
        assert status == 201, answer
        ids.append(answer["id"])
    page = pages.new()
    sign_in(page, server, "alice", "approver")
    group = page.locator('.group[data-run-id="run-7"]')
    expect(group).to_contain_text("2 pending")
    for approval in ids:
        expect(card(page, approval)).to_contain_text("run-7")
    group.get_by_role("button", name="Approve all in run").click()
    expect(group.locator(".bulk-outcome")).to_have_text("Approved 2 in this run.")
    for approval in ids:
        expect(card(page, approval)).to_have_count(0)
        status, answer = call(f"{server.gateway_url}/v1/approvals/{approval}", token=server.token("alice", "approver"))
        assert answer["status"] == "approved", answer
