"""Policies as stored per tenant, and validation of the REST bodies that create and edit them.

Validation is strict and points at the offending field (``PolicyError.field``) so the
API can tell an operator exactly what to fix; a policy that silently never matches is
worse than one that is refused.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from jsonschema.exceptions import ValidationError, best_match
from pydantic import BaseModel, Field, field_validator

from mesh.policy.durations import parse_duration
from mesh.policy.plugins import PluginConfigError, config_validator, get_plugin


class Enforcement(StrEnum):
    """What happens to an action a policy hits."""

    ALLOW = "allow"
    BLOCK = "block"
    REQUIRE_APPROVAL = "require_approval"
    AUDIT = "audit"


class ScopeType(StrEnum):
    """Which actions a policy looks at before its plugin is consulted."""

    TOOL = "tool"
    MESSAGE = "message"
    AGENT = "agent"


_ENFORCEMENT_ALIASES = {"deny": Enforcement.BLOCK, "ask": Enforcement.REQUIRE_APPROVAL}


class PolicyError(ValueError):
    """An invalid policy body; ``field`` is the dotted path of the culprit (e.g. ``evaluator.plugin``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_enforcement(value: object) -> Enforcement:
    """Accept the canonical names and the aliases ``deny`` (block) and ``ask`` (require_approval)."""
    if isinstance(value, Enforcement):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _ENFORCEMENT_ALIASES:
            return _ENFORCEMENT_ALIASES[text]
        try:
            return Enforcement(text)
        except ValueError:
            pass
    choices = ", ".join([*(e.value for e in Enforcement), *_ENFORCEMENT_ALIASES])
    raise PolicyError("enforcement", f"must be one of {choices}; got {value!r}")


class Policy(BaseModel):
    """One tenant's policy, in the form the engine and the store share."""

    tenant: str
    name: str
    description: str = ""
    scope_type: ScopeType
    enforcement: Enforcement
    plugin: str
    config: dict[str, Any] = Field(default_factory=dict)
    priority: int = 100
    channels: list[str] = Field(default_factory=list)
    enabled: bool = True
    agents: list[str] = Field(default_factory=list)
    timeout_s: int | None = None
    # separation of duties: nobody, person or agent, resolves a hold their own message caused (an agent
    # never resolves its own hold whatever this says)
    distinct_approver: bool = False
    # a quorum: this many approvals from distinct signed-in people, none of them the requester
    approvals_required: int = 1
    # escalation: a hold still pending this long after it was made is sent, once, to these channels
    escalate_after_s: int | None = None
    escalate_to: list[str] = Field(default_factory=list)
    # an approver may change the call's arguments when approving (the edited call is checked again)
    allow_edits: bool = False
    created_at: str | None = None
    updated_at: str | None = None

    @field_validator("enforcement", mode="before")
    @classmethod
    def _enforcement_alias(cls, value: object) -> Enforcement:
        """Rows written with an alias still load."""
        return parse_enforcement(value)

    def to_public(self) -> dict[str, Any]:
        """The REST representation (the create body's shape plus identity and timestamps)."""
        return {
            "policy_id": self.name,
            "name": self.name,
            "description": self.description,
            "scope_type": self.scope_type.value,
            "enforcement": self.enforcement.value,
            "evaluator": {"plugin": self.plugin, "config": copy.deepcopy(self.config)},
            "priority": self.priority,
            "channels": list(self.channels),
            "enabled": self.enabled,
            "agents": list(self.agents),
            "timeout": self.timeout_s,
            "distinct_approver": self.distinct_approver,
            "approvals_required": self.approvals_required,
            "escalate_after": self.escalate_after_s,
            "escalate_to": list(self.escalate_to),
            "allow_edits": self.allow_edits,
            "tenant_id": self.tenant,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


NAME_MAX_LENGTH = 100
PRIORITY_MIN = -(2**31)
PRIORITY_MAX = 2**31 - 1
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")
_CREATE_KEYS = frozenset(
    {
        "name",
        "description",
        "scope_type",
        "enforcement",
        "evaluator",
        "priority",
        "channels",
        "enabled",
        "agents",
        "timeout",
        "distinct_approver",
        "approvals_required",
        "escalate_after",
        "escalate_to",
        "allow_edits",
    }
)
APPROVALS_REQUIRED_MAX = 10
_REQUIRED_KEYS = ("name", "scope_type", "enforcement", "evaluator")
_EVALUATOR_KEYS = frozenset({"plugin", "config"})


def _check_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError("name", "must be a non-empty string")
    if len(value) > NAME_MAX_LENGTH:
        raise PolicyError("name", f"must be at most {NAME_MAX_LENGTH} characters")
    if not _NAME_RE.fullmatch(value):
        raise PolicyError("name", "may only contain letters, digits and _ . : -")
    return value


def _check_scope(value: object) -> ScopeType:
    try:
        return ScopeType(value)
    except ValueError:
        choices = ", ".join(s.value for s in ScopeType)
        raise PolicyError("scope_type", f"must be one of {choices}; got {value!r}") from None


def _check_string_list(field: str, value: object) -> list[str]:
    if not isinstance(value, list):
        raise PolicyError(field, "must be a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{field}.{i}", "must be a non-empty string")
    return list(value)


def _check_priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError("priority", "must be an integer")
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise PolicyError("priority", f"must be between {PRIORITY_MIN} and {PRIORITY_MAX}")
    return value


def _check_timeout(value: object) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PolicyError("timeout", str(exc)) from None


def _check_quorum(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= APPROVALS_REQUIRED_MAX:
        raise PolicyError("approvals_required", f"must be an integer from 1 to {APPROVALS_REQUIRED_MAX}")
    return value


def _check_escalation(body: Mapping[str, Any], timeout_s: int | None) -> tuple[int | None, list[str]]:
    """``escalate_after`` and ``escalate_to`` come together; escalating at or after the hold's own timeout
    would be no warning at all."""
    after, to = body.get("escalate_after"), body.get("escalate_to")
    channels = _check_string_list("escalate_to", [] if to is None else to)
    if after is None:
        if channels:
            raise PolicyError("escalate_after", "is required with escalate_to")
        return None, []
    try:
        after_s = parse_duration(after)
    except ValueError as exc:
        raise PolicyError("escalate_after", str(exc)) from None
    if not channels:
        raise PolicyError("escalate_to", "must name at least one channel with escalate_after")
    if timeout_s is not None and after_s >= timeout_s:
        raise PolicyError("escalate_after", "must be shorter than the policy's timeout")
    return after_s, channels


def _check_flag(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise PolicyError(key, "must be true or false")
    return value


def _schema_error_field(error: ValidationError) -> str:
    """Dotted config path of a schema error, naming the property for required/unknown keys."""
    path = [str(p) for p in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        missing = [k for k in error.validator_value if k not in instance]
        path += missing[:1]
    elif error.validator == "additionalProperties" and isinstance(instance, Mapping):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        extra = sorted(k for k in instance if k not in known)
        path += extra[:1]
    return ".".join(["evaluator", "config", *path])


def _check_evaluator(value: object) -> tuple[str, dict[str, Any]]:
    """Resolve the plugin, validate its config against the plugin schema, and try building it."""
    if not isinstance(value, Mapping):
        raise PolicyError("evaluator", "must be an object with 'plugin' and 'config'")
    unknown = sorted(set(value) - _EVALUATOR_KEYS)
    if unknown:
        raise PolicyError(f"evaluator.{unknown[0]}", f"unknown key(s): {', '.join(map(str, unknown))}")
    plugin_name = value.get("plugin")
    if not isinstance(plugin_name, str) or not plugin_name:
        raise PolicyError("evaluator.plugin", "must be a plugin name")
    try:
        plugin_cls = get_plugin(plugin_name)
    except KeyError:
        raise PolicyError("evaluator.plugin", f"unknown plugin {plugin_name!r}") from None
    config = value.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise PolicyError("evaluator.config", "must be an object")
    config = copy.deepcopy(dict(config))
    error = best_match(config_validator(plugin_cls).iter_errors(config))
    if error is not None:
        raise PolicyError(_schema_error_field(error), error.message)
    try:
        plugin_cls(config)
    except PluginConfigError as exc:
        field = f"evaluator.config.{exc.key}" if exc.key else "evaluator.config"
        raise PolicyError(field, exc.message) from None
    except Exception as exc:
        raise PolicyError("evaluator.config", f"rejected by plugin {plugin_name!r}: {exc}") from None
    return plugin_name, config


def parse_policy(body: object, tenant: str) -> Policy:
    """Validate a create body and return the policy (timestamps are left for the store to set)."""
    if not isinstance(body, Mapping):
        raise PolicyError("body", "must be a JSON object")
    unknown = sorted(str(k) for k in body if k not in _CREATE_KEYS)
    if unknown:
        raise PolicyError(unknown[0], f"unknown field(s): {', '.join(unknown)}")
    for key in _REQUIRED_KEYS:
        if key not in body:
            raise PolicyError(key, "is required")
    name = _check_name(body["name"])
    description = body.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise PolicyError("description", "must be a string")
    scope_type = _check_scope(body["scope_type"])
    enforcement = parse_enforcement(body["enforcement"])
    plugin, config = _check_evaluator(body["evaluator"])
    priority = _check_priority(body.get("priority", 100))
    channels = _check_string_list("channels", body.get("channels", []))
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise PolicyError("enabled", "must be true or false")
    agents = _check_string_list("agents", body.get("agents", []))
    if scope_type is ScopeType.AGENT and not agents:
        raise PolicyError("agents", "must list at least one agent for scope_type 'agent'")
    timeout_s = _check_timeout(body.get("timeout"))
    distinct_approver = _check_flag(body, "distinct_approver")
    approvals_required = _check_quorum(body.get("approvals_required", 1))
    escalate_after_s, escalate_to = _check_escalation(body, timeout_s)
    allow_edits = _check_flag(body, "allow_edits")
    return Policy(
        tenant=tenant,
        name=name,
        description=description,
        scope_type=scope_type,
        enforcement=enforcement,
        plugin=plugin,
        config=config,
        priority=priority,
        channels=channels,
        enabled=enabled,
        agents=agents,
        timeout_s=timeout_s,
        distinct_approver=distinct_approver,
        approvals_required=approvals_required,
        escalate_after_s=escalate_after_s,
        escalate_to=escalate_to,
        allow_edits=allow_edits,
    )


def apply_update(policy: Policy, fields: object) -> Policy:
    """Apply a partial update and return a new, fully re-validated policy.

    Any create field but ``name`` may be given. ``evaluator`` may carry just ``config``
    (keeps the plugin) or a new ``plugin`` (its ``config`` then defaults to ``{}``, since
    the old config belongs to the old plugin); a config is replaced, never merged.
    ``timeout: null`` returns to the server default.
    """
    if not isinstance(fields, Mapping):
        raise PolicyError("body", "must be a JSON object")
    if "name" in fields:
        raise PolicyError("name", "cannot be changed; create a new policy instead")
    body = policy.to_public()
    for key in ("policy_id", "tenant_id", "created_at", "updated_at"):
        del body[key]
    updates = dict(fields)
    evaluator = updates.get("evaluator")
    if isinstance(evaluator, Mapping):
        merged: dict[str, Any] = {}
        if "plugin" in evaluator and evaluator["plugin"] != policy.plugin:
            merged["config"] = {}
        else:
            merged = dict(body["evaluator"])
        merged.update(evaluator)
        updates["evaluator"] = merged
    body.update(updates)
    updated = parse_policy(body, policy.tenant)
    return updated.model_copy(update={"created_at": policy.created_at, "updated_at": policy.updated_at})
