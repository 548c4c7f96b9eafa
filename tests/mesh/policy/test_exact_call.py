"""``exact_call``: the rule an approver's persist writes must match the identical call and nothing wider."""

from __future__ import annotations

import pytest

from mesh.policy import Action, PolicyError, available_plugins, parse_policy


def plugin(**config: str):  # type: ignore[no-untyped-def]
    return available_plugins()["exact_call"](config)


def call(tool: str, **arguments: object) -> Action:
    return Action(agent="a", tool=tool, arguments=arguments)


def test_matches_the_identical_command_only() -> None:
    rule = plugin(tool="exec", command="rm -rf /tmp/build")
    assert rule.matches(call("exec", command="rm -rf /tmp/build"))
    assert rule.matches(call("exec", command=["rm", "-rf", "/tmp/build"]))
    assert not rule.matches(call("exec", command="rm -rf /tmp/build/*"))
    assert not rule.matches(call("exec", command="rm -rf /tmp/*"))
    assert not rule.matches(call("shell", command="rm -rf /tmp/build"))


def test_matches_the_identical_path_only() -> None:
    rule = plugin(tool="write", path="/etc/hosts")
    assert rule.matches(call("write", path="/etc/hosts"))
    assert not rule.matches(call("write", path="/etc/*"))
    assert not rule.matches(call("write", paths=["/etc/hosts", "/etc/passwd"]))
    assert not rule.matches(call("read", path="/etc/hosts"))


def test_glob_characters_are_literal() -> None:
    rule = plugin(tool="exec", command="ls *")
    assert rule.matches(call("exec", command="ls *"))
    assert not rule.matches(call("exec", command="ls secret"))


def test_config_needs_a_tool() -> None:
    body = {
        "name": "x",
        "scope_type": "tool",
        "enforcement": "allow",
        "evaluator": {"plugin": "exact_call", "config": {"command": "ls"}},
    }
    with pytest.raises(PolicyError) as err:
        parse_policy(body, "default")
    assert err.value.field.startswith("evaluator.config")
