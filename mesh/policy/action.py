"""The unit a policy judges: one agent turn, with or without a tool call."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _jsonable(value: object) -> object:
    """Fallback for canonical JSON: mappings and sets get a stable shape, the rest its repr."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return repr(value)


@dataclass(frozen=True, slots=True)
class Action:
    """What an agent is about to do.

    ``tool`` is None for a text-only turn. ``context`` carries request metadata
    (tenant, task id, ...) that plugins may consult but that does not change what
    the call *is*, so it is left out of :meth:`fingerprint`.
    """

    agent: str | None
    tool: str | None
    arguments: Mapping[str, Any]
    text: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Identify "the identical call" so an approval can be matched to a retry of it.

        SHA-256 of canonical JSON (sorted keys, no whitespace) of agent, tool and arguments.
        """
        canonical = json.dumps(
            {"agent": self.agent, "tool": self.tool, "arguments": self.arguments},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=_jsonable,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The action as an approval keeps it, to run it once approved."""
        return {
            "agent": self.agent,
            "tool": self.tool,
            "arguments": dict(self.arguments),
            "text": self.text,
            "context": dict(self.context),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Action:
        return cls(
            agent=data.get("agent"),
            tool=data.get("tool"),
            arguments=data.get("arguments") or {},
            text=data.get("text") or "",
            context=data.get("context") or {},
        )
