"""Built-in evaluator plugins, the plugin registry and entry-point discovery."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mesh.policy import plugins
from mesh.policy.action import Action
from mesh.policy.plugins import (
    Always,
    BulkOperation,
    CommandMatch,
    PathMatch,
    Plugin,
    PluginConfigError,
    ToolMatch,
    available_plugins,
    config_validator,
    get_plugin,
    register,
)


def act(tool: str | None = "exec", agent: str | None = "ops-bot", **arguments: Any) -> Action:
    return Action(agent=agent, tool=tool, arguments=arguments)


def schema_errors(cls: type[Plugin], config: dict[str, Any]) -> list[str]:
    return [e.message for e in config_validator(cls).iter_errors(config)]


# --- Action -------------------------------------------------------------------------


def test_fingerprint_identifies_identical_call_regardless_of_key_order_text_and_context() -> None:
    a = Action("bot", "db.delete", {"ids": [1, 2], "table": "t"}, text="hi", context={"task": "1"})
    b = Action("bot", "db.delete", {"table": "t", "ids": [1, 2]}, text="other", context={"task": "2"})
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64


@pytest.mark.parametrize(
    "other",
    [
        Action("bot2", "db.delete", {"ids": [1, 2], "table": "t"}),
        Action("bot", "db.drop", {"ids": [1, 2], "table": "t"}),
        Action("bot", "db.delete", {"ids": [1, 3], "table": "t"}),
        Action("bot", None, {"ids": [1, 2], "table": "t"}),
    ],
)
def test_fingerprint_differs_when_agent_tool_or_arguments_differ(other: Action) -> None:
    assert Action("bot", "db.delete", {"ids": [1, 2], "table": "t"}).fingerprint() != other.fingerprint()


# --- bulk_operation -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["items", "ids", "records", "targets", "rows", "files"])
def test_bulk_operation_counts_default_list_keys(key: str) -> None:
    plugin = BulkOperation({"threshold": 10})
    assert plugin.matches(act("bulk_delete_expired", **{key: list(range(11))}))
    assert not plugin.matches(act("bulk_delete_expired", **{key: list(range(10))}))


def test_bulk_operation_uses_count_argument_and_reason() -> None:
    plugin = BulkOperation({"threshold": 10})
    action = act("bulk_delete_expired", count=42)
    assert plugin.matches(action)
    assert plugin.reason(action) == "bulk_delete_expired touches 42 items (threshold 10)"
    assert not plugin.matches(act("bulk_delete_expired", count=10))
    assert not plugin.matches(act("bulk_delete_expired", count=True))
    assert not plugin.matches(act("bulk_delete_expired", count="42"))


def test_bulk_operation_first_list_wins_and_no_items_means_no_match() -> None:
    plugin = BulkOperation({"threshold": 1})
    assert not plugin.matches(act("x", items=[1], ids=[1, 2, 3]))
    assert not plugin.matches(act("x", name="a"))
    assert not plugin.matches(act("x", items="not-a-list"))


def test_bulk_operation_items_keys_replace_defaults() -> None:
    plugin = BulkOperation({"threshold": 2, "items_keys": ["users"]})
    assert plugin.matches(act("x", users=[1, 2, 3]))
    assert not plugin.matches(act("x", items=[1, 2, 3]))


def test_bulk_operation_threshold_zero_matches_any_item() -> None:
    plugin = BulkOperation({"threshold": 0})
    assert plugin.matches(act("x", ids=[1]))
    assert not plugin.matches(act("x", ids=[]))


@pytest.mark.parametrize(
    "config",
    [{}, {"threshold": -1}, {"threshold": "10"}, {"threshold": 1.5}, {"threshold": 1, "items_keys": []}],
)
def test_bulk_operation_config_errors(config: dict[str, Any]) -> None:
    assert schema_errors(BulkOperation, config)


def test_bulk_operation_direct_construction_rejects_bad_threshold() -> None:
    with pytest.raises(PluginConfigError) as exc:
        BulkOperation({"threshold": -3})
    assert exc.value.key == "threshold"


# --- tool_match ---------------------------------------------------------------------


def test_tool_match_globs() -> None:
    plugin = ToolMatch({"tools": ["db.*", "exec"]})
    assert plugin.matches(act("db.delete"))
    assert plugin.matches(act("exec"))
    assert not plugin.matches(act("exec_shell"))
    assert not plugin.matches(act("DB.delete"))
    assert not plugin.matches(act("fs.read"))
    assert plugin.reason(act("db.delete")) == "tool db.delete matches 'db.*'"


def test_tool_match_never_matches_missing_tool() -> None:
    assert not ToolMatch({"tools": ["*"]}).matches(act(None))


@pytest.mark.parametrize("config", [{}, {"tools": []}, {"tools": [""]}, {"tools": "db.*"}, {"tools": [1]}])
def test_tool_match_config_errors(config: dict[str, Any]) -> None:
    assert schema_errors(ToolMatch, config)


# --- command_match ------------------------------------------------------------------


def test_command_match_glob_over_whole_command() -> None:
    plugin = CommandMatch({"patterns": ["rm -rf *", "sudo *"]})
    assert plugin.matches(act(command="rm -rf /tmp/x"))
    assert plugin.matches(act(command=["sudo", "reboot"]))
    assert plugin.matches(act(cmd="sudo ls"))
    assert not plugin.matches(act(command="echo rm -rf /"))
    assert not plugin.matches(act(command="ls"))
    assert "rm -rf *" in plugin.reason(act(command="rm -rf /tmp/x"))


def test_command_match_regex_search() -> None:
    plugin = CommandMatch({"patterns": [r"\bDROP\s+TABLE\b"], "regex": True})
    assert plugin.matches(act(command="psql -c 'DROP TABLE users'"))
    assert not plugin.matches(act(command="psql -c 'SELECT 1'"))


def test_command_match_without_command_never_matches() -> None:
    plugin = CommandMatch({"patterns": ["*"]})
    assert not plugin.matches(act(path="/x"))
    assert not plugin.matches(act(command=""))
    assert not plugin.matches(act(None))


def test_command_match_invalid_regex_is_config_error() -> None:
    with pytest.raises(PluginConfigError) as exc:
        CommandMatch({"patterns": ["ok", "(unclosed"], "regex": True})
    assert exc.value.key == "patterns.1"
    CommandMatch({"patterns": ["(unclosed"]})  # a glob, so fine


@pytest.mark.parametrize(
    "config", [{}, {"patterns": []}, {"patterns": ["x"], "regex": "yes"}, {"patterns": ["x"], "other": 1}]
)
def test_command_match_config_errors(config: dict[str, Any]) -> None:
    assert schema_errors(CommandMatch, config)


# --- path_match ---------------------------------------------------------------------


def test_path_match_double_star_crosses_directories_single_star_does_not() -> None:
    deep = PathMatch({"paths": ["/etc/**"]})
    shallow = PathMatch({"paths": ["/etc/*"]})
    assert deep.matches(act("read", path="/etc/ssh/sshd_config"))
    assert shallow.matches(act("read", path="/etc/passwd"))
    assert not shallow.matches(act("read", path="/etc/ssh/sshd_config"))
    assert not deep.matches(act("read", path="/var/etc/x"))


def test_path_match_double_star_slash_matches_zero_directories() -> None:
    plugin = PathMatch({"paths": ["**/.env"]})
    assert plugin.matches(act("read", path=".env"))
    assert plugin.matches(act("read", path="app/config/.env"))
    assert not plugin.matches(act("read", path="app/.envrc"))


def test_path_match_reads_all_path_arguments() -> None:
    plugin = PathMatch({"paths": ["/secrets/*"]})
    assert plugin.matches(act("fs.read", file="/secrets/a"))
    assert plugin.matches(act("fs.read", paths=["/ok", "/secrets/a"]))
    assert plugin.matches(act("fs.read", files=["/secrets/b"]))
    assert not plugin.matches(act("fs.read", paths=["/ok"]))
    assert not plugin.matches(act("fs.read", command="cat /secrets/a"))


def test_path_match_normalizes_dot_dot() -> None:
    plugin = PathMatch({"paths": ["/etc/**"]})
    assert plugin.matches(act("read", path="/srv/app/../../etc/shadow"))
    assert not PathMatch({"paths": ["/srv/**"]}).matches(act("read", path="/srv/../etc/shadow"))


@pytest.mark.parametrize(
    ("tool", "expected"),
    [("write", True), ("fs_write", True), ("fs.write", True), ("read", False), ("fs.read", False),
     ("exec", False), (None, False), ("rewrite", False)],
)  # fmt: skip
def test_path_match_operations_filter_by_tool_name(tool: str | None, expected: bool) -> None:
    plugin = PathMatch({"paths": ["/data/**"], "operations": ["write"]})
    assert plugin.matches(act(tool, path="/data/x")) is expected


@pytest.mark.parametrize(
    "config",
    [{}, {"paths": []}, {"paths": ["/x"], "operations": ["delete"]}, {"paths": ["/x"], "operations": []}],
)
def test_path_match_config_errors(config: dict[str, Any]) -> None:
    assert schema_errors(PathMatch, config)


# --- always and the shared config shape -----------------------------------------------


def test_always_matches_everything() -> None:
    plugin = Always({})
    assert plugin.matches(act(None))
    assert plugin.matches(act("anything", x=1))
    assert schema_errors(Always, {"unexpected": 1})


def test_every_plugin_schema_allows_form_fields_and_passes_them_through() -> None:
    fields = [{"name": "ticket", "type": "string", "required": True}]
    for cls, config in [
        (BulkOperation, {"threshold": 1}),
        (ToolMatch, {"tools": ["x"]}),
        (CommandMatch, {"patterns": ["x"]}),
        (PathMatch, {"paths": ["x"]}),
        (Always, {}),
    ]:
        full = {**config, "fields": fields}
        assert schema_errors(cls, full) == [], cls.name
        assert schema_errors(cls, {**config, "fields": ["not-an-object"]}), cls.name
        plugin = cls(full)
        got = plugin.form_fields(act())
        assert got == fields
        got[0]["name"] = "mutated"
        assert plugin.form_fields(act()) == fields
        assert cls(config).form_fields(act()) == []


# --- registry -----------------------------------------------------------------------


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "_REGISTRY", dict(plugins._REGISTRY))
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)


def test_builtins_are_registered() -> None:
    assert {"bulk_operation", "tool_match", "command_match", "path_match", "always"} <= set(
        available_plugins()
    )
    assert get_plugin("tool_match") is ToolMatch


def test_get_plugin_unknown_raises_key_error() -> None:
    with pytest.raises(KeyError):
        get_plugin("no_such_plugin")


@pytest.mark.usefixtures("isolated_registry")
def test_register_decorator_and_conflicts() -> None:
    @register
    class Weekend(Plugin):
        name = "weekend"
        description = "test"
        config_schema = plugins.config_schema({})

        def matches(self, action: Action) -> bool:
            return True

    assert get_plugin("weekend") is Weekend
    assert register(Weekend) is Weekend

    class Other(Weekend):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register(Other)

    class Abstract(Plugin):
        name = "abstract"
        description = "no matches()"

    with pytest.raises(TypeError):
        register(Abstract)


PLUGIN_MODULE = """
from mesh.policy.plugins import Plugin, config_schema


class FridayPlugin(Plugin):
    name = "friday"
    description = "matches when the context says it is Friday"
    config_schema = config_schema({})

    def matches(self, action):
        return action.context.get("weekday") == "friday"


class BuiltinImpostor(FridayPlugin):
    name = "always"


NOT_A_PLUGIN = 42
"""


@pytest.mark.usefixtures("isolated_registry")
def test_entry_point_plugins_load_and_broken_ones_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "airlock_friday_plugin.py").write_text(PLUGIN_MODULE)
    dist_info = tmp_path / "airlock_friday-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: airlock-friday\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [airlock.plugins]
            friday = airlock_friday_plugin:FridayPlugin
            missing_module = airlock_no_such_module:Plugin
            missing_attr = airlock_friday_plugin:Nope
            not_a_plugin = airlock_friday_plugin:NOT_A_PLUGIN
            impostor = airlock_friday_plugin:BuiltinImpostor
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "airlock_friday_plugin", raising=False)
    assert "friday" in {ep.name for ep in importlib.metadata.entry_points(group="airlock.plugins")}

    with caplog.at_level(logging.WARNING, logger="mesh.policy.plugins"):
        found = available_plugins()

    friday = found["friday"]
    assert friday.__name__ == "FridayPlugin"
    assert friday({}).matches(Action("a", None, {}, context={"weekday": "friday"}))
    assert found["always"] is Always
    skipped = " ".join(r.getMessage() for r in caplog.records)
    for name in ("missing_module", "missing_attr", "not_a_plugin", "impostor"):
        assert repr(name) in skipped
    assert "'friday'" not in skipped


@pytest.mark.usefixtures("isolated_registry")
def test_entry_points_listing_failure_is_not_fatal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(**_: Any) -> Any:
        raise RuntimeError("broken metadata")

    monkeypatch.setattr(importlib.metadata, "entry_points", explode)
    with caplog.at_level(logging.WARNING, logger="mesh.policy.plugins"):
        assert "always" in available_plugins()
    assert "could not list" in caplog.text


def test_a_reason_names_the_pattern_that_matched_without_translating_globs_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mesh.policy import builtin_plugins

    tools = builtin_plugins.ToolMatch({"tools": ["db.read", "db.*", "fs.*"]})
    commands = builtin_plugins.CommandMatch({"patterns": ["ls *", "rm -rf *"]})

    def translated_again(*_args: object) -> None:
        raise AssertionError("a glob was translated while deciding")

    monkeypatch.setattr(builtin_plugins, "compile_globs", translated_again)
    assert tools.reason(Action(agent="a", tool="db.drop", arguments={})) == "tool db.drop matches 'db.*'"
    assert "matches 'rm -rf *'" in commands.reason(Action(agent="a", tool="exec", arguments={"command": "rm -rf /"}))
