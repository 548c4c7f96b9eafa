"""Evaluation of a tenant's policies against an action, on every agent call.

All per-policy work (plugin construction, glob compilation, sorting, scope
filtering) happens once in :func:`compile_policies`; :meth:`CompiledPolicies.evaluate`
only calls the plugins that can apply to the action.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from a2ui import is_sensitive
from mesh.policy.action import Action
from mesh.policy.globs import compile_globs
from mesh.policy.model import Enforcement, Policy, ScopeType
from mesh.policy.plugin_base import Plugin
from mesh.policy.plugins import get_plugin

log = logging.getLogger(__name__)

# At equal priority the stricter outcome wins, so adding a policy can never make
# an equally ranked rule weaker.
_SEVERITY = {
    Enforcement.BLOCK: 0,
    Enforcement.REQUIRE_APPROVAL: 1,
    Enforcement.ALLOW: 2,
    Enforcement.AUDIT: 3,
}
NO_MATCH_REASON = "no policy matched"
_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class Decision:
    """The outcome for one action; ``policy`` is the decisive policy, None when nothing hit."""

    enforcement: Enforcement
    policy: Policy | None
    reason: str
    form_fields: tuple[dict[str, Any], ...] = ()
    audited: tuple[str, ...] = ()
    timeout_s: int | None = None
    channels: tuple[str, ...] = field(default=())

    @property
    def held(self) -> bool:
        """True when the action must wait for a person."""
        return self.enforcement is Enforcement.REQUIRE_APPROVAL


class _Unavailable(Plugin):
    """Stands in for a stored policy whose plugin cannot be built (uninstalled, bad config).

    It matches everything in scope so a broken block/require_approval/audit policy fails
    closed instead of silently letting actions through; a broken allow policy never matches.
    """

    name = "<unavailable>"
    description = "placeholder for a policy whose plugin could not be loaded"

    def __init__(self, problem: str, *, fail_closed: bool) -> None:
        super().__init__({})
        self.problem = problem
        self.fail_closed = fail_closed

    def matches(self, action: Action) -> bool:
        return self.fail_closed

    def reason(self, action: Action) -> str:
        return self.problem


class _Entry:
    """A policy prepared for evaluation: its plugin instance and precompiled filters."""

    __slots__ = ("agent_regex", "enforcement", "fail_closed", "needs_tool", "plugin", "policy", "tools")

    def __init__(self, policy: Policy, plugin: Plugin) -> None:
        self.policy = policy
        self.plugin = plugin
        self.enforcement = policy.enforcement
        self.needs_tool = policy.scope_type is ScopeType.TOOL
        self.agent_regex: re.Pattern[str] | None = compile_globs(policy.agents) if policy.agents else None
        # An erroring plugin counts as a hit unless that would loosen things (allow).
        self.fail_closed = policy.enforcement is not Enforcement.ALLOW
        self.tools = _tool_test(plugin)

    def applies_to(self, agent: str | None, tool: str | None) -> bool:
        if self.needs_tool and not tool:
            return False
        if self.tools is not None and not (tool and self.tools(tool)):
            return False
        if self.agent_regex is None:
            return True
        return agent is not None and self.agent_regex.match(agent) is not None

    def hit(self, action: Action) -> bool:
        try:
            return bool(self.plugin.matches(action))
        except Exception:
            log.warning(
                "policy %r: plugin %r failed on %s; treating as %s",
                self.policy.name,
                self.plugin.name,
                action.tool,
                "a match" if self.fail_closed else "no match",
                exc_info=True,
            )
            return self.fail_closed


def _tool_test(plugin: Plugin) -> Callable[[str], bool] | None:
    """The plugin's own tool test; a plugin whose test fails is asked about every tool."""
    try:
        return plugin.tool_test()
    except Exception:
        log.warning("plugin %r: tool_test() failed; asking it about every tool", plugin.name, exc_info=True)
        return None


def _build_plugin(policy: Policy) -> tuple[Plugin, str | None]:
    try:
        return get_plugin(policy.plugin)(policy.config), None
    except Exception as exc:
        problem = f"policy {policy.name!r} cannot be evaluated (plugin {policy.plugin!r}: {exc})"
        log.warning("%s", problem)
        return _Unavailable(problem, fail_closed=policy.enforcement is not Enforcement.ALLOW), problem


class CompiledPolicies:
    """A tenant's enabled policies, ready to evaluate; immutable once built.

    The ordering is priority descending, then block > require_approval > allow, then name.
    Per (agent, tool) the applicable decisive and audit entries are computed once and cached
    (a policy about other tools is left out then), so an evaluation is a dictionary lookup plus
    the checks of the plugins that can apply.
    """

    def __init__(self, policies: Iterable[Policy]) -> None:
        entries: list[_Entry] = []
        problems: list[str] = []
        for policy in policies:
            if not policy.enabled:
                continue
            snapshot = policy.model_copy(deep=True)
            plugin, problem = _build_plugin(snapshot)
            if problem is not None:
                problems.append(problem)
            entries.append(_Entry(snapshot, plugin))
        entries.sort(key=lambda e: (-e.policy.priority, _SEVERITY[e.enforcement], e.policy.name))
        self._entries: tuple[_Entry, ...] = tuple(entries)
        self.problems: tuple[str, ...] = tuple(problems)
        self.sensitive_fields: frozenset[str] = _sensitive_ids(e.policy for e in entries)
        self._cache: dict[tuple[str | None, str | None], tuple[tuple[_Entry, ...], tuple[_Entry, ...]]] = {}

    @property
    def policies(self) -> tuple[Policy, ...]:
        """The enabled policies in evaluation order."""
        return tuple(e.policy for e in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _applicable(self, agent: str | None, tool: str | None) -> tuple[tuple[_Entry, ...], tuple[_Entry, ...]]:
        key = (agent, tool or None)
        found = self._cache.get(key)
        if found is None:
            applicable = [e for e in self._entries if e.applies_to(agent, tool)]
            found = (
                tuple(e for e in applicable if e.enforcement is not Enforcement.AUDIT),
                tuple(e for e in applicable if e.enforcement is Enforcement.AUDIT),
            )
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = found
        return found

    def evaluate(self, action: Action) -> Decision:
        """Decide one action: the first decisive hit in order wins, no hit means allow.

        Audit hits are all recorded, whichever policy decides.
        """
        decisive, audits = self._applicable(action.agent, action.tool)
        audited = tuple(e.policy.name for e in audits if e.hit(action))
        for entry in decisive:
            if entry.hit(action):
                return self._decide(entry, action, audited)
        return Decision(Enforcement.ALLOW, None, NO_MATCH_REASON, audited=audited)

    @staticmethod
    def _decide(entry: _Entry, action: Action, audited: tuple[str, ...]) -> Decision:
        policy = entry.policy
        try:
            reason = entry.plugin.reason(action)
        except Exception:
            log.warning("policy %r: reason() failed", policy.name, exc_info=True)
            reason = f"matched policy {policy.name}"
        try:
            form_fields = tuple(entry.plugin.form_fields(action))
        except Exception:
            log.warning("policy %r: form_fields() failed", policy.name, exc_info=True)
            form_fields = ()
        return Decision(
            enforcement=entry.enforcement,
            policy=policy,
            reason=reason,
            form_fields=form_fields,
            audited=audited,
            timeout_s=policy.timeout_s,
            channels=tuple(policy.channels),
        )


def _sensitive_ids(policies: Iterable[Policy]) -> frozenset[str]:
    """The ids of the form fields the policies mark sensitive (a password field always is): an argument of
    that name is masked wherever a call is kept (a decision's action, for dry-runs), whichever policy hit."""
    ids: set[str] = set()
    for policy in policies:
        fields = policy.config.get("fields")
        for one in fields if isinstance(fields, list) else ():
            if isinstance(one, dict) and isinstance(one.get("id"), str) and is_sensitive(one):
                ids.add(one["id"])
    return frozenset(ids)


def compile_policies(policies: Iterable[Policy]) -> CompiledPolicies:
    """Prepare a policy set for repeated evaluation (build once per change, not per call)."""
    return CompiledPolicies(policies)
