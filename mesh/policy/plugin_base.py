"""The contract every evaluator plugin (built-in or third-party) implements."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from mesh.policy.action import Action

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Extra approval-form fields a person fills in when deciding a hold. Their shape is
# owned by the form layer; here they only need to be a list of objects.
FIELDS_SCHEMA: dict[str, Any] = {"type": "array", "items": {"type": "object"}}


def config_schema(properties: Mapping[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Build a closed object schema for a plugin config that also accepts ``fields``.

    Closed (``additionalProperties: false``) so a typo such as ``treshold`` is rejected
    when the policy is created instead of silently never matching.
    """
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": {**properties, "fields": FIELDS_SCHEMA},
        "required": list(required),
        "additionalProperties": False,
    }


class PluginConfigError(ValueError):
    """A config the JSON schema cannot express as invalid (e.g. a regex that does not compile).

    ``key`` is the dotted path inside the config, so the API can point at it.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


class Plugin(ABC):
    """Decides whether an action is one a policy is about.

    Instances are built once per policy when the policy set is compiled, so
    ``__init__`` should do all the parsing (globs to regexes etc.) and
    :meth:`matches` should be cheap: it runs on every agent call.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    config_schema: ClassVar[dict[str, Any]] = config_schema({})

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = dict(config or {})
        fields = self.config.get("fields", [])
        if not isinstance(fields, list) or not all(isinstance(f, Mapping) for f in fields):
            raise PluginConfigError("fields", "must be a list of objects")
        self._fields: list[dict[str, Any]] = [dict(f) for f in fields]

    @abstractmethod
    def matches(self, action: Action) -> bool:
        """True when the policy this plugin evaluates for applies to ``action``."""

    def tool_test(self) -> Callable[[str], bool] | None:
        """A test every tool this plugin can match passes, or None when it may match any tool. The engine
        uses it to leave out, once per tool, the policies that cannot apply (with many policies most of
        them are about other tools)."""
        return None

    def form_fields(self, action: Action) -> list[dict[str, Any]]:
        """Extra fields for the approval form; copies, so a caller cannot alter the policy."""
        return copy.deepcopy(self._fields)

    def reason(self, action: Action) -> str:
        """Human-readable explanation shown to the person deciding; override for specifics."""
        return f"{self.name} matched"
