"""Policy bodies: parsing, validation errors (with their field), updates and durations."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mesh.policy import (
    Enforcement,
    Policy,
    PolicyError,
    ScopeType,
    apply_update,
    parse_duration,
    parse_enforcement,
    parse_policy,
)

GUIDE_BODY: dict[str, Any] = {
    "name": "bulk_ops_approval",
    "description": "Require human approval for bulk operations exceeding 10 items",
    "scope_type": "tool",
    "enforcement": "require_approval",
    "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 10}},
}


def body(**overrides: Any) -> dict[str, Any]:
    result = copy.deepcopy(GUIDE_BODY)
    result.update(overrides)
    return result


def error_field(payload: object) -> str:
    with pytest.raises(PolicyError) as exc:
        parse_policy(payload, "acme")
    assert exc.value.field in str(exc.value)
    return exc.value.field


# --- parsing ------------------------------------------------------------------------


def test_guide_body_parses_with_defaults() -> None:
    policy = parse_policy(GUIDE_BODY, "acme")
    assert policy.tenant == "acme"
    assert policy.name == "bulk_ops_approval"
    assert policy.scope_type is ScopeType.TOOL
    assert policy.enforcement is Enforcement.REQUIRE_APPROVAL
    assert policy.plugin == "bulk_operation"
    assert policy.config == {"threshold": 10}
    assert (policy.priority, policy.channels, policy.enabled, policy.agents) == (100, [], True, [])
    assert policy.timeout_s is None and policy.distinct_approver is False
    assert policy.created_at is None and policy.updated_at is None


def test_to_public_shape() -> None:
    policy = parse_policy(
        body(
            priority=5,
            channels=["slack"],
            agents=["ops-*"],
            timeout="15m",
            distinct_approver=True,
            approvals_required=2,
            escalate_after="5m",
            escalate_to=["pager"],
            allow_edits=True,
        ),
        "acme",
    )
    assert policy.to_public() == {
        "policy_id": "bulk_ops_approval",
        "name": "bulk_ops_approval",
        "description": GUIDE_BODY["description"],
        "scope_type": "tool",
        "enforcement": "require_approval",
        "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 10}},
        "priority": 5,
        "channels": ["slack"],
        "enabled": True,
        "agents": ["ops-*"],
        "timeout": 900,
        "distinct_approver": True,
        "approvals_required": 2,
        "escalate_after": 300,
        "escalate_to": ["pager"],
        "allow_edits": True,
        "tenant_id": "acme",
        "created_at": None,
        "updated_at": None,
    }


def test_parse_does_not_alias_the_callers_config() -> None:
    payload = body()
    policy = parse_policy(payload, "acme")
    payload["evaluator"]["config"]["threshold"] = 99
    assert policy.config == {"threshold": 10}


@pytest.mark.parametrize(
    ("given", "stored"),
    [("deny", Enforcement.BLOCK), ("ask", Enforcement.REQUIRE_APPROVAL), ("block", Enforcement.BLOCK),
     ("allow", Enforcement.ALLOW), ("audit", Enforcement.AUDIT), ("  Deny ", Enforcement.BLOCK)],
)  # fmt: skip
def test_enforcement_aliases(given: str, stored: Enforcement) -> None:
    assert parse_enforcement(given) is stored
    policy = parse_policy(body(enforcement=given), "acme")
    assert policy.enforcement is stored
    assert policy.to_public()["enforcement"] == stored.value


def test_policy_model_accepts_alias_from_storage() -> None:
    row = parse_policy(GUIDE_BODY, "acme").model_dump()
    row["enforcement"] = "deny"
    assert Policy(**row).enforcement is Enforcement.BLOCK


def test_optional_fields_parse() -> None:
    policy = parse_policy(
        body(priority=-5, channels=["slack", "email"], enabled=False, agents=["ops-*"], timeout=90), "t"
    )
    assert policy.priority == -5
    assert policy.channels == ["slack", "email"]
    assert policy.enabled is False
    assert policy.agents == ["ops-*"]
    assert policy.timeout_s == 90


def test_agent_scope_with_agents_and_form_fields_parse() -> None:
    fields = [{"name": "ticket", "type": "string"}]
    policy = parse_policy(
        body(
            scope_type="agent",
            agents=["intern-*"],
            evaluator={"plugin": "always", "config": {"fields": fields}},
        ),
        "t",
    )
    assert policy.scope_type is ScopeType.AGENT
    assert policy.config == {"fields": fields}


def test_evaluator_config_may_be_omitted_for_plugins_without_required_keys() -> None:
    assert parse_policy(body(evaluator={"plugin": "always"}), "t").config == {}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (["not", "an", "object"], "body"),
        (body(name=""), "name"),
        (body(name="x" * 101), "name"),
        (body(name="has space"), "name"),
        (body(name=7), "name"),
        ({k: v for k, v in GUIDE_BODY.items() if k != "name"}, "name"),
        ({k: v for k, v in GUIDE_BODY.items() if k != "evaluator"}, "evaluator"),
        (body(description=3), "description"),
        (body(scope_type="global"), "scope_type"),
        ({k: v for k, v in GUIDE_BODY.items() if k != "scope_type"}, "scope_type"),
        (body(enforcement="maybe"), "enforcement"),
        (body(enforcement=None), "enforcement"),
        (body(evaluator="bulk_operation"), "evaluator"),
        (body(evaluator={"plugin": "bulk_operation", "config": {"threshold": 1}, "x": 1}), "evaluator.x"),
        (body(evaluator={"plugin": "nope", "config": {}}), "evaluator.plugin"),
        (body(evaluator={"config": {}}), "evaluator.plugin"),
        (body(evaluator={"plugin": "bulk_operation", "config": []}), "evaluator.config"),
        (body(evaluator={"plugin": "bulk_operation", "config": {}}), "evaluator.config.threshold"),
        (body(evaluator={"plugin": "bulk_operation", "config": {"threshold": -1}}),
         "evaluator.config.threshold"),
        (body(evaluator={"plugin": "bulk_operation", "config": {"threshold": 1, "treshold": 2}}),
         "evaluator.config.treshold"),
        (body(evaluator={"plugin": "tool_match", "config": {"tools": ["a", 3]}}), "evaluator.config.tools.1"),
        (body(evaluator={"plugin": "always", "config": {"fields": [1]}}), "evaluator.config.fields.0"),
        (body(evaluator={"plugin": "command_match", "config": {"patterns": ["(x"], "regex": True}}),
         "evaluator.config.patterns.0"),
        (body(priority="high"), "priority"),
        (body(priority=True), "priority"),
        (body(priority=2**40), "priority"),
        (body(channels="slack"), "channels"),
        (body(channels=["slack", ""]), "channels.1"),
        (body(enabled="yes"), "enabled"),
        (body(agents="ops"), "agents"),
        (body(scope_type="agent"), "agents"),
        (body(scope_type="agent", agents=[]), "agents"),
        (body(timeout="soon"), "timeout"),
        (body(timeout=0), "timeout"),
        (body(policy_id="x", tenant_id="y"), "policy_id"),
        (body(colour="red"), "colour"),
    ],
)  # fmt: skip
def test_policy_errors_name_their_field(payload: object, field: str) -> None:
    assert error_field(payload) == field


def test_unknown_keys_are_all_named() -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy(body(zeta=1, alpha=2), "t")
    assert exc.value.field == "alpha"
    assert "alpha" in str(exc.value) and "zeta" in str(exc.value)


# --- updates ------------------------------------------------------------------------


@pytest.fixture
def stored() -> Policy:
    policy = parse_policy(body(channels=["slack"], timeout="1h"), "acme")
    return policy.model_copy(
        update={"created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z"}
    )


def test_update_changes_only_given_fields_and_keeps_identity(stored: Policy) -> None:
    updated = apply_update(stored, {"priority": 500, "enforcement": "deny"})
    assert updated is not stored
    assert updated.priority == 500
    assert updated.enforcement is Enforcement.BLOCK
    assert (updated.name, updated.tenant, updated.plugin, updated.config) == (
        "bulk_ops_approval",
        "acme",
        "bulk_operation",
        {"threshold": 10},
    )
    assert updated.channels == ["slack"] and updated.timeout_s == 3600
    assert updated.created_at == stored.created_at
    assert stored.priority == 100 and stored.enforcement is Enforcement.REQUIRE_APPROVAL


def test_update_config_only_keeps_plugin(stored: Policy) -> None:
    updated = apply_update(stored, {"evaluator": {"config": {"threshold": 50}}})
    assert (updated.plugin, updated.config) == ("bulk_operation", {"threshold": 50})


def test_update_plugin_change_starts_from_empty_config(stored: Policy) -> None:
    updated = apply_update(stored, {"evaluator": {"plugin": "always"}})
    assert (updated.plugin, updated.config) == ("always", {})
    with pytest.raises(PolicyError) as exc:
        apply_update(stored, {"evaluator": {"plugin": "tool_match"}})
    assert exc.value.field == "evaluator.config.tools"


def test_update_timeout_null_resets_to_default(stored: Policy) -> None:
    assert apply_update(stored, {"timeout": None}).timeout_s is None


def test_empty_update_is_a_no_op(stored: Policy) -> None:
    assert apply_update(stored, {}) == stored


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "renamed"}, "name"),
        ({"enforcement": "perhaps"}, "enforcement"),
        ({"scope_type": "agent"}, "agents"),
        ({"evaluator": {"config": {"threshold": "many"}}}, "evaluator.config.threshold"),
        ({"evaluator": {"plugin": "missing"}}, "evaluator.plugin"),
        ({"timeout": "-5m"}, "timeout"),
        ({"policy_id": "bulk_ops_approval"}, "policy_id"),
        ({"bogus": True}, "bogus"),
        ("priority=1", "body"),
    ],
)
def test_update_validation_errors(stored: Policy, fields: object, field: str) -> None:
    with pytest.raises(PolicyError) as exc:
        apply_update(stored, fields)
    assert exc.value.field == field


# --- durations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), (45, 45), ("300", 300), (" 2H ", 7200),
     ("1h30m", 5400)],
)  # fmt: skip
def test_parse_duration_accepts(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["", "abc", "10x", "1.5h", "-5m", "0s", "0", 0, -10, True, None, 1.5, "h", "5 m", [], "١٢"]
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"approvals_required": 0}, "approvals_required"),
        ({"approvals_required": 11}, "approvals_required"),
        ({"approvals_required": True}, "approvals_required"),
        ({"approvals_required": "2"}, "approvals_required"),
        ({"escalate_to": ["pager"]}, "escalate_after"),
        ({"escalate_after": "5m"}, "escalate_to"),
        ({"escalate_after": "5m", "escalate_to": []}, "escalate_to"),
        ({"escalate_after": "soon", "escalate_to": ["pager"]}, "escalate_after"),
        ({"escalate_after": "15m", "escalate_to": ["pager"], "timeout": "15m"}, "escalate_after"),
        ({"escalate_after": "5m", "escalate_to": [""]}, "escalate_to.0"),
        ({"allow_edits": "yes"}, "allow_edits"),
    ],
)
def test_decision_fields_are_checked(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyError) as exc:
        parse_policy(body(**fields), "acme")
    assert exc.value.field == field


def test_decision_fields_default_to_one_approver_no_escalation_no_edits() -> None:
    policy = parse_policy(body(), "acme")
    assert (policy.approvals_required, policy.escalate_after_s, policy.escalate_to, policy.allow_edits) == (
        1,
        None,
        [],
        False,
    )
