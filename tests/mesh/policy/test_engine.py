"""Policy evaluation: ordering, scopes, agent filters, audit hits and failure handling."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mesh.policy import (
    Action,
    CompiledPolicies,
    Decision,
    Enforcement,
    Policy,
    compile_policies,
    parse_policy,
)
from mesh.policy import plugins as plugin_registry


def pol(name: str, enforcement: str = "block", plugin: str = "always", **extra: Any) -> Policy:
    config = extra.pop("config", {})
    payload: dict[str, Any] = {
        "name": name,
        "scope_type": extra.pop("scope_type", "message"),
        "enforcement": enforcement,
        "evaluator": {"plugin": plugin, "config": config},
    }
    payload.update(extra)
    return parse_policy(payload, "acme")


def call(tool: str | None = "exec", agent: str | None = "ops-bot", **arguments: Any) -> Action:
    return Action(agent=agent, tool=tool, arguments=arguments, text="hello")


def decide(policies: list[Policy], action: Action | None = None) -> Decision:
    return compile_policies(policies).evaluate(action or call())


def test_no_policies_allows() -> None:
    decision = decide([])
    assert decision.enforcement is Enforcement.ALLOW
    assert decision.policy is None
    assert not decision.held
    assert decision.audited == () and decision.form_fields == () and decision.channels == ()


def test_no_hit_allows() -> None:
    decision = decide([pol("exec_only", plugin="tool_match", config={"tools": ["exec"]})], call("fs.read"))
    assert decision.enforcement is Enforcement.ALLOW and decision.policy is None


def test_guide_policy_holds_bulk_call_with_reason_timeout_channels_and_fields() -> None:
    fields = [{"name": "ticket", "type": "string"}]
    policy = parse_policy(
        {
            "name": "bulk_ops_approval",
            "scope_type": "tool",
            "enforcement": "require_approval",
            "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 10, "fields": fields}},
            "channels": ["slack"],
            "timeout": "15m",
        },
        "acme",
    )
    compiled = compile_policies([policy])
    decision = compiled.evaluate(call("bulk_delete_expired", ids=list(range(42))))
    assert decision.held
    assert decision.enforcement is Enforcement.REQUIRE_APPROVAL
    assert decision.policy is not None and decision.policy.name == "bulk_ops_approval"
    assert decision.reason == "bulk_delete_expired touches 42 items (threshold 10)"
    assert decision.form_fields == tuple(fields)
    assert decision.timeout_s == 900
    assert decision.channels == ("slack",)
    assert not compiled.evaluate(call("bulk_delete_expired", ids=[1])).held


def test_higher_priority_is_evaluated_first() -> None:
    policies = [pol("low_block", "block", priority=10), pol("high_allow", "allow", priority=200)]
    decision = decide(policies)
    assert decision.enforcement is Enforcement.ALLOW
    assert decision.policy is not None and decision.policy.name == "high_allow"
    policies.append(pol("higher_ask", "ask", priority=300))
    assert decide(policies).held


def test_lower_priority_applies_when_higher_does_not_hit() -> None:
    policies = [
        pol("high_allow_reads", "allow", plugin="tool_match", config={"tools": ["read"]}, priority=200),
        pol("low_block", "block", priority=10),
    ]
    decision = decide(policies, call("exec"))
    assert decision.enforcement is Enforcement.BLOCK
    assert decide(policies, call("read")).enforcement is Enforcement.ALLOW


@pytest.mark.parametrize(
    ("enforcements", "winner"),
    [
        (["allow", "require_approval", "block"], "block"),
        (["allow", "ask"], "require_approval"),
        (["allow", "deny"], "block"),
        (["require_approval", "block"], "block"),
    ],
)
def test_equal_priority_block_beats_approval_beats_allow(enforcements: list[str], winner: str) -> None:
    policies = [pol(f"p{i}", e) for i, e in enumerate(enforcements)]
    assert decide(policies).enforcement == winner
    assert decide(list(reversed(policies))).enforcement == winner


def test_equal_priority_and_enforcement_is_decided_by_name() -> None:
    policies = [pol("b_second", "block", timeout=60), pol("a_first", "block", timeout=30)]
    for order in (policies, list(reversed(policies))):
        decision = decide(order)
        assert decision.policy is not None and decision.policy.name == "a_first"
        assert decision.timeout_s == 30


def test_audit_hits_are_recorded_but_not_decisive() -> None:
    policies = [
        pol("audit_everything", "audit", priority=1000),
        pol("audit_exec", "audit", plugin="tool_match", config={"tools": ["exec"]}, priority=1),
        pol("audit_db", "audit", plugin="tool_match", config={"tools": ["db.*"]}),
    ]
    decision = decide(policies)
    assert decision.enforcement is Enforcement.ALLOW
    assert decision.policy is None
    assert decision.audited == ("audit_everything", "audit_exec")


def test_audit_hits_below_the_decisive_policy_are_still_recorded() -> None:
    decision = decide([pol("block_all", "block", priority=500), pol("audit_low", "audit", priority=1)])
    assert decision.enforcement is Enforcement.BLOCK
    assert decision.audited == ("audit_low",)


def test_tool_scope_ignores_text_only_turns() -> None:
    policies = [pol("tool_block", "block", scope_type="tool")]
    assert decide(policies, call(None)).enforcement is Enforcement.ALLOW
    assert decide(policies, call("")).enforcement is Enforcement.ALLOW
    assert decide(policies, call("exec")).enforcement is Enforcement.BLOCK


def test_message_scope_applies_to_text_only_turns_and_tool_calls() -> None:
    policies = [pol("msg_ask", "ask", scope_type="message")]
    assert decide(policies, call(None)).held
    assert decide(policies, call("exec")).held


def test_agent_scope_applies_only_to_listed_agents() -> None:
    policies = [pol("interns", "ask", scope_type="agent", agents=["intern-*", "temp"])]
    assert decide(policies, call(None, agent="intern-7")).held
    assert decide(policies, call("exec", agent="temp")).held
    assert not decide(policies, call("exec", agent="ops-bot")).held
    assert not decide(policies, call("exec", agent=None)).held


def test_agents_filter_restricts_tool_and_message_scopes() -> None:
    policies = [
        pol("ops_tools", "block", scope_type="tool", agents=["ops-*"]),
        pol("sales_text", "ask", scope_type="message", agents=["sales"]),
    ]
    assert decide(policies, call("exec", agent="ops-bot")).enforcement is Enforcement.BLOCK
    assert decide(policies, call("exec", agent="dev-bot")).enforcement is Enforcement.ALLOW
    assert decide(policies, call(None, agent="sales")).held
    assert not decide(policies, call(None, agent="ops-bot")).held
    assert not decide(policies, call(None, agent=None)).held


def test_agent_filter_cache_does_not_leak_between_agents() -> None:
    compiled = compile_policies([pol("ops", "block", agents=["ops-*"])])
    for _ in range(3):
        assert compiled.evaluate(call(agent="ops-1")).enforcement is Enforcement.BLOCK
        assert compiled.evaluate(call(agent="dev-1")).enforcement is Enforcement.ALLOW


def test_disabled_policies_are_skipped() -> None:
    policies = [pol("off", "block", enabled=False, priority=999), pol("on", "ask")]
    compiled = compile_policies(policies)
    assert len(compiled) == 1
    decision = compiled.evaluate(call())
    assert decision.held and decision.policy is not None and decision.policy.name == "on"
    assert decide([pol("off_audit", "audit", enabled=False)]).audited == ()


def test_compiled_set_is_isolated_from_later_changes_to_policies() -> None:
    policy = pol("exec_block", "block", plugin="tool_match", config={"tools": ["exec"]})
    compiled = compile_policies([policy])
    policy.config["tools"] = ["other"]
    policy.enforcement = Enforcement.ALLOW
    assert compiled.evaluate(call("exec")).enforcement is Enforcement.BLOCK


def test_compile_accepts_any_iterable_and_orders_policies() -> None:
    compiled = compile_policies(
        p for p in [pol("a_allow", "allow"), pol("z_block", "block"), pol("top", "audit", priority=101)]
    )
    assert isinstance(compiled, CompiledPolicies)
    assert [p.name for p in compiled.policies] == ["top", "z_block", "a_allow"]


class _Exploding(plugin_registry.Plugin):
    name = "exploding"
    description = "raises on every call"
    config_schema = plugin_registry.config_schema({})

    def matches(self, action: Action) -> bool:
        raise RuntimeError("boom")


@pytest.fixture
def exploding_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin_registry, "_REGISTRY", dict(plugin_registry._REGISTRY))
    plugin_registry.register(_Exploding)


@pytest.mark.usefixtures("exploding_plugin")
@pytest.mark.parametrize(
    ("enforcement", "expected"),
    [("block", Enforcement.BLOCK), ("ask", Enforcement.REQUIRE_APPROVAL), ("allow", Enforcement.BLOCK)],
)
def test_plugin_errors_fail_closed_for_restrictive_policies(
    enforcement: str, expected: Enforcement, caplog: pytest.LogCaptureFixture
) -> None:
    policies = [pol("flaky", enforcement, plugin="exploding", priority=200), pol("fallback", "block")]
    with caplog.at_level(logging.WARNING, logger="mesh.policy.engine"):
        decision = decide(policies)
    assert decision.enforcement is expected
    assert "boom" in caplog.text


def test_stored_policy_with_missing_plugin_fails_closed() -> None:
    ghost = pol("ghost", "ask").model_copy(update={"plugin": "uninstalled_plugin"})
    allow_ghost = pol("allow_ghost", "allow", priority=500).model_copy(
        update={"plugin": "uninstalled_plugin"}
    )
    compiled = compile_policies([ghost, allow_ghost])
    assert len(compiled.problems) == 2
    decision = compiled.evaluate(call())
    assert decision.held
    assert decision.policy is not None and decision.policy.name == "ghost"
    assert "uninstalled_plugin" in decision.reason


def test_decision_is_immutable() -> None:
    decision = decide([pol("p", "ask")])
    with pytest.raises(AttributeError):
        decision.reason = "changed"  # type: ignore[misc]


class _CountingToolMatch(plugin_registry.Plugin):
    """Matches ``only`` and counts how often it is asked; ``broken_tools`` makes its tool test fail."""

    name = "counting"
    description = "counts its calls"
    config_schema = plugin_registry.config_schema({"only": {"type": "string"}, "broken_tools": {"type": "boolean"}})
    asked: list[str] = []

    def matches(self, action: Action) -> bool:
        _CountingToolMatch.asked.append(self.config["only"])
        return action.tool == self.config["only"]

    def tool_test(self):  # type: ignore[no-untyped-def]
        if self.config.get("broken_tools"):
            raise RuntimeError("no tool test")
        return self.config["only"].__eq__


@pytest.fixture
def counting_plugin(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(plugin_registry, "_REGISTRY", dict(plugin_registry._REGISTRY))
    plugin_registry.register(_CountingToolMatch)
    _CountingToolMatch.asked = []
    return _CountingToolMatch.asked


def test_policies_about_other_tools_are_not_asked(counting_plugin: list[str]) -> None:
    policies = [
        pol(f"p{i}", "block", plugin="counting", scope_type="tool", config={"only": f"t{i}"}) for i in range(50)
    ]
    compiled = compile_policies(policies)
    for _ in range(3):
        assert compiled.evaluate(call("t7")).policy.name == "p7"  # type: ignore[union-attr]
        assert compiled.evaluate(call("other")).enforcement is Enforcement.ALLOW
    assert counting_plugin == ["t7", "t7", "t7"]


def test_a_failing_tool_test_means_the_plugin_is_asked_about_every_tool(
    counting_plugin: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    broken = pol("broken", "block", plugin="counting", scope_type="tool", config={"only": "x", "broken_tools": True})
    with caplog.at_level(logging.WARNING, logger="mesh.policy.engine"):
        compiled = compile_policies([broken])
    assert compiled.evaluate(call("y")).enforcement is Enforcement.ALLOW
    assert compiled.evaluate(call("x")).enforcement is Enforcement.BLOCK
    assert counting_plugin == ["x", "x"] and "no tool test" in caplog.text


def test_tool_match_and_exact_call_skip_other_tools_but_keep_their_globs() -> None:
    compiled = compile_policies(
        [
            pol("db", "block", plugin="tool_match", scope_type="tool", config={"tools": ["db.*"]}),
            pol("rm", "ask", plugin="exact_call", scope_type="tool", config={"tool": "exec", "command": "rm -rf /"}),
        ]
    )
    assert compiled.evaluate(call("db.drop")).enforcement is Enforcement.BLOCK
    assert compiled.evaluate(call("exec", command="rm -rf /")).enforcement is Enforcement.REQUIRE_APPROVAL
    assert compiled.evaluate(call("exec", command="ls")).enforcement is Enforcement.ALLOW
    assert compiled.evaluate(call("fs.read")).enforcement is Enforcement.ALLOW
