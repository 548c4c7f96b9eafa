"""The Policies page tries a flip before saving it: the change is judged against the recorded calls and what
it would have done is shown with Confirm / Cancel (Debian's Chromium, driven by Playwright, against a real
``airlock serve --demo``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GUIDE_POLICY, IN_CI

try:
    from playwright.sync_api import expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip("the playwright Python package is not installed (make install-test)", allow_module_level=True)

from tests.dashboard.conftest import Pages, call, send, sign_in
from tests.e2e.conftest import Server

# the bulk deletes an agent makes while the policy allows them: two of five over its threshold of 10
SIZES = (3, 12, 10, 15, 1)


def enforcement(server: Server) -> str:
    status, body = call(f"{server.gateway_url}/internal/policies", token=server.token("root", "admin"))
    assert status == 200, body
    [policy] = body["policies"]
    return policy["enforcement"]


def test_a_flip_shows_what_it_would_have_held_before_it_is_saved(server: Server, pages: Pages) -> None:
    admin = server.token("root", "admin")
    status, body = call(f"{server.gateway_url}/internal/policies/new", {**GUIDE_POLICY, "enforcement": "allow"}, admin)
    assert status == 201, body
    agent = server.token("carol", "agent")
    for n in SIZES:
        task = send(server, "", agent, {"tool": "bulk_delete", "arguments": {"items": [f"r{i}" for i in range(n)]}})
        assert task["status"]["state"] == "completed", task

    page: Any = pages.new()
    sign_in(page, server, "root", "admin")
    page.get_by_role("link", name="Policies").click()
    policy = page.locator('.policy[data-policy="bulk_ops_approval"]')
    outcome = policy.locator(".policy-outcome")
    expect(policy.locator(".enforcement")).to_have_text("allow")

    policy.get_by_role("button", name="Require approval").click()
    expect(outcome).to_have_text(
        "Changing bulk_ops_approval to require_approval: This would have held 2 of the last 5 calls. Save the change?"
    )
    examples = policy.locator(".dry-run-examples li")
    expect(examples).to_have_count(2)
    expect(examples.first).to_contain_text("bulk_delete by carol: allow → require_approval")
    expect(examples.first).to_contain_text("touches 15 items (threshold 10)")
    expect(policy.get_by_role("button", name="Require approval")).to_be_disabled()
    # shown, not saved
    expect(policy.locator(".enforcement")).to_have_text("allow")
    assert enforcement(server) == "allow"

    policy.get_by_role("button", name="Cancel").click()
    expect(outcome).to_have_text("Not changed.")
    expect(policy.get_by_role("button", name="Confirm")).to_be_hidden()
    assert enforcement(server) == "allow"

    policy.get_by_role("button", name="Require approval").click()
    expect(outcome).to_contain_text("would have held 2 of the last 5 calls")
    policy.get_by_role("button", name="Confirm").click()
    expect(outcome).to_have_text("bulk_ops_approval is now require_approval.")
    expect(policy.locator(".enforcement")).to_have_text("require_approval")
    expect(policy.get_by_role("button", name="Confirm")).to_be_hidden()
    assert enforcement(server) == "require_approval"

    # and back: the held calls are recorded too now, so the dry-run counts what it would let through
    held = send(server, "", agent, {"tool": "bulk_delete", "arguments": {"items": [f"r{i}" for i in range(20)]}})
    assert held["status"]["state"] == "input-required", held
    policy.get_by_role("button", name="Always allow").click()
    expect(outcome).to_contain_text("This would have let through 3 of the last 6 calls.")
