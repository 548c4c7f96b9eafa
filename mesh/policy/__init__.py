"""Policy engine: decides whether an agent's action is allowed, blocked, or held for a person."""

from mesh.policy.action import Action
from mesh.policy.durations import parse_duration
from mesh.policy.engine import CompiledPolicies, Decision, compile_policies
from mesh.policy.model import (
    Enforcement,
    Policy,
    PolicyError,
    ScopeType,
    apply_update,
    parse_enforcement,
    parse_policy,
)
from mesh.policy.plugins import (
    Plugin,
    PluginConfigError,
    available_plugins,
    get_plugin,
    register,
)

__all__ = [
    "Action",
    "CompiledPolicies",
    "Decision",
    "Enforcement",
    "Plugin",
    "PluginConfigError",
    "Policy",
    "PolicyError",
    "ScopeType",
    "apply_update",
    "available_plugins",
    "compile_policies",
    "get_plugin",
    "parse_duration",
    "parse_enforcement",
    "parse_policy",
    "register",
]
