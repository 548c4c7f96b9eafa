"""The evaluator plugins that ship with Airlock."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any

from mesh.policy.action import Action
from mesh.policy.globs import compile_globs, compile_path_globs
from mesh.policy.plugin_base import Plugin, PluginConfigError, config_schema

_NON_EMPTY_STRINGS: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "minItems": 1,
}
_MAX_REASON_TEXT = 200


def _short(text: str) -> str:
    """Keep reasons readable when a command or path is huge."""
    return text if len(text) <= _MAX_REASON_TEXT else text[: _MAX_REASON_TEXT - 3] + "..."


def _strings(config: Mapping[str, Any], key: str) -> list[str]:
    """Read a required non-empty list of non-empty strings (for direct instantiation too)."""
    value = config.get(key)
    if not isinstance(value, list | tuple) or not value:
        raise PluginConfigError(key, "must be a non-empty list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise PluginConfigError(f"{key}.{i}", "must be a non-empty string")
    return list(value)


class BulkOperation(Plugin):
    """Catches calls that touch many records at once, where one mistake is costly."""

    name = "bulk_operation"
    description = "Matches calls whose item count (a list argument or an integer 'count') exceeds a threshold"
    config_schema = config_schema(
        {
            "threshold": {"type": "integer", "minimum": 0},
            "items_keys": _NON_EMPTY_STRINGS,
        },
        required=("threshold",),
    )
    DEFAULT_ITEMS_KEYS = ("items", "ids", "records", "targets", "rows", "files")

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        threshold = self.config.get("threshold")
        if isinstance(threshold, float) and threshold.is_integer():
            threshold = int(threshold)
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 0:
            raise PluginConfigError("threshold", "must be an integer >= 0")
        self.threshold: int = threshold
        keys = self.config.get("items_keys")
        self.items_keys: tuple[str, ...] = (
            tuple(_strings(self.config, "items_keys")) if keys is not None else self.DEFAULT_ITEMS_KEYS
        )

    def item_count(self, action: Action) -> int | None:
        """Length of the first list among the item keys, else an integer ``count`` argument."""
        args = action.arguments
        for key in self.items_keys:
            value = args.get(key)
            if isinstance(value, list | tuple):
                return len(value)
        count = args.get("count")
        if isinstance(count, int) and not isinstance(count, bool):
            return count
        return None

    def matches(self, action: Action) -> bool:
        count = self.item_count(action)
        return count is not None and count > self.threshold

    def reason(self, action: Action) -> str:
        return f"{action.tool or 'action'} touches {self.item_count(action)} items (threshold {self.threshold})"


def each_glob(patterns: tuple[str, ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each pattern with its own compiled glob, built with the plugin: a reason names the one that matched,
    and translating the globs again for every held call would cost a tenth of a hold."""
    return tuple((p, compile_globs([p])) for p in patterns)


def first_match(each: tuple[tuple[str, re.Pattern[str]], ...], text: str) -> str:
    return next((p for p, regex in each if regex.match(text)), "?")


class ToolMatch(Plugin):
    """Selects calls by tool name, e.g. everything under ``db.*``."""

    name = "tool_match"
    description = "Matches calls whose tool name matches one of the glob patterns"
    config_schema = config_schema({"tools": _NON_EMPTY_STRINGS}, required=("tools",))

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.tools: tuple[str, ...] = tuple(_strings(self.config, "tools"))
        self._regex = compile_globs(self.tools)
        self._each = each_glob(self.tools)  # for the reason: which pattern matched

    def matches(self, action: Action) -> bool:
        tool = action.tool
        return bool(tool) and self._regex.match(tool) is not None

    def tool_test(self) -> Callable[[str], bool]:
        return lambda tool: self._regex.match(tool) is not None

    def reason(self, action: Action) -> str:
        tool = action.tool or ""
        return f"tool {tool} matches {first_match(self._each, tool)!r}"


def exec_command(arguments: Mapping[str, Any]) -> str | None:
    """The shell command of an exec-style call: ``command`` (string or argv list) or ``cmd``."""
    for key in ("command", "cmd"):
        value = arguments.get(key)
        if isinstance(value, str):
            command = value
        elif isinstance(value, list | tuple):
            command = " ".join(str(part) for part in value)
        else:
            continue
        if command:
            return command
    return None


class CommandMatch(Plugin):
    """Selects exec calls by their command line, e.g. ``rm -rf *`` or ``^sudo\\b``."""

    name = "command_match"
    description = "Matches exec calls whose command matches one of the globs (or regexes with regex: true)"
    config_schema = config_schema(
        {"patterns": _NON_EMPTY_STRINGS, "regex": {"type": "boolean"}},
        required=("patterns",),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.patterns: tuple[str, ...] = tuple(_strings(self.config, "patterns"))
        use_regex = self.config.get("regex", False)
        if not isinstance(use_regex, bool):
            raise PluginConfigError("regex", "must be a boolean")
        self.regex = use_regex
        if use_regex:
            compiled: list[re.Pattern[str]] = []
            for i, pattern in enumerate(self.patterns):
                try:
                    compiled.append(re.compile(pattern))
                except re.error as exc:
                    raise PluginConfigError(f"patterns.{i}", f"invalid regular expression: {exc}") from exc
            self._regexes: tuple[re.Pattern[str], ...] = tuple(compiled)
        else:
            self._glob = compile_globs(self.patterns)
            self._each = each_glob(self.patterns)

    def _matching_pattern(self, command: str) -> str | None:
        if self.regex:
            for pattern, compiled in zip(self.patterns, self._regexes, strict=True):
                if compiled.search(command):
                    return pattern
            return None
        if self._glob.match(command) is None:
            return None
        return first_match(self._each, command)

    def matches(self, action: Action) -> bool:
        command = exec_command(action.arguments)
        if command is None:
            return False
        if self.regex:
            return any(r.search(command) for r in self._regexes)
        return self._glob.match(command) is not None

    def reason(self, action: Action) -> str:
        command = exec_command(action.arguments) or ""
        return f"command {_short(command)!r} matches {self._matching_pattern(command)!r}"


def path_operation(tool: str | None) -> str | None:
    """The file operation a tool name implies: ``read``/``write``, or a ``_read``/``.write``-style suffix."""
    if not tool:
        return None
    for op in ("read", "write"):
        if tool == op or tool.endswith(("_" + op, "." + op)):
            return op
    return None


def call_paths(arguments: Mapping[str, Any]) -> list[str]:
    """Every file path a call names: ``path``, ``file``, ``paths`` (list), ``files`` (list)."""
    found: list[str] = []
    for key in ("path", "file"):
        value = arguments.get(key)
        if isinstance(value, str) and value:
            found.append(value)
    for key in ("paths", "files"):
        value = arguments.get(key)
        if isinstance(value, list | tuple):
            found.extend(v for v in value if isinstance(v, str) and v)
    return found


def _normalize(path: str) -> str:
    """Collapse ``..`` and ``//`` so ``/srv/../etc/passwd`` is judged as ``/etc/passwd``."""
    return posixpath.normpath(path)


class PathMatch(Plugin):
    """Selects file calls by path, optionally only reads or only writes."""

    name = "path_match"
    description = "Matches calls on file paths matching the globs ('**' crosses directories, '*' does not)"
    config_schema = config_schema(
        {
            "paths": _NON_EMPTY_STRINGS,
            "operations": {
                "type": "array",
                "items": {"enum": ["read", "write"]},
                "minItems": 1,
                "uniqueItems": True,
            },
        },
        required=("paths",),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.paths: tuple[str, ...] = tuple(_strings(self.config, "paths"))
        self._regex = compile_path_globs(_normalize(p) for p in self.paths)
        ops = self.config.get("operations")
        if ops is None:
            self.operations: frozenset[str] | None = None
        else:
            if not isinstance(ops, list | tuple) or not ops or not set(ops) <= {"read", "write"}:
                raise PluginConfigError("operations", "must be a non-empty list of 'read'/'write'")
            self.operations = frozenset(ops)

    def _matching_path(self, action: Action) -> str | None:
        if self.operations is not None and path_operation(action.tool) not in self.operations:
            return None
        for path in call_paths(action.arguments):
            if self._regex.fullmatch(_normalize(path)):
                return path
        return None

    def matches(self, action: Action) -> bool:
        return self._matching_path(action) is not None

    def reason(self, action: Action) -> str:
        path = self._matching_path(action) or ""
        verb = path_operation(action.tool) or action.tool or "access"
        return f"{verb} of {_short(path)!r} matches {', '.join(self.paths)}"


class Always(Plugin):
    """Matches everything in the policy's scope: for blanket rules such as "hold every exec"."""

    name = "always"
    description = "Matches every action in the policy's scope"
    config_schema = config_schema({})

    def matches(self, action: Action) -> bool:
        return True

    def reason(self, action: Action) -> str:
        return f"every {'call to ' + action.tool if action.tool else 'action'} is covered"


class ExactCall(Plugin):
    """One exact call: a tool with exactly this command or this path, no wildcards.

    What an approver's "allow this from now on" (``persist``) writes, so it never widens to other calls.
    """

    name = "exact_call"
    description = "Matches one tool with exactly the given command or path (no wildcards)"
    config_schema = config_schema(
        {
            "tool": {"type": "string", "minLength": 1},
            "command": {"type": "string", "minLength": 1},
            "path": {"type": "string", "minLength": 1},
        },
        required=("tool",),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.tool: str = self.config["tool"]
        self.command: str | None = self.config.get("command")
        self.path: str | None = self.config.get("path")

    def tool_test(self) -> Callable[[str], bool]:
        return self.tool.__eq__

    def matches(self, action: Action) -> bool:
        if action.tool != self.tool:
            return False
        if self.command is not None and exec_command(action.arguments) != self.command:
            return False
        if self.path is not None and call_paths(action.arguments) != [self.path]:
            return False
        return True

    def reason(self, action: Action) -> str:
        target = self.command or self.path
        return f"{self.tool} {target} was allowed by a person" if target else f"{self.tool} was allowed by a person"


BUILTIN_PLUGINS: tuple[type[Plugin], ...] = (BulkOperation, ToolMatch, CommandMatch, PathMatch, Always, ExactCall)
