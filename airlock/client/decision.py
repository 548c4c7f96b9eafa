"""What Airlock decided about one tool call, read from the A2A task that carried it.

A guard's task ends in one of a few ways, and the mesh states each on the task's status: ``completed``
with a DataPart ``{"decision": "allow", …}`` (allowed at once, or approved by a person, perhaps with edited
``arguments``); ``rejected`` with status-message metadata ``reason`` = ``blocked``, ``denied`` or
``expired``; ``input-required`` while a person has yet to decide. Reading that here, once, keeps the
rest of the client free of wire shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Outcome = Literal["allowed", "approved", "held", "blocked", "denied", "expired", "canceled", "rejected", "failed"]

TERMINAL_STATES = frozenset({"completed", "canceled", "failed", "rejected"})
"""Task states after which nothing changes: the wait is over."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to "may I make this call?".

    ``allowed`` is the one thing a caller must look at. ``arguments`` are the ones to call with: the
    approver's when they edited the call (``edited`` names what changed), else the ones asked. ``reason``
    is the denier's comment, the policy's reason for a block, or what happened otherwise; ``task_id`` is
    the A2A task, to wait on again (:meth:`Guard.wait`) or to find in the dashboard and the audit trail.
    """

    allowed: bool
    arguments: dict[str, Any]
    approved_by: str | None
    reason: str | None
    task_id: str
    outcome: Outcome = "allowed"
    tool: str = ""
    policy: str | None = None
    denied_by: str | None = None
    edited: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        """Still held for a person (only ever the answer of ``check(..., wait=False)`` or a lapsed wait)."""
        return self.outcome == "held"


def _status_message(task: dict[str, Any]) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    message = (task.get("status") or {}).get("message") or {}
    parts = [p for p in message.get("parts") or [] if isinstance(p, dict)]
    text = " ".join(p["text"] for p in parts if isinstance(p.get("text"), str))
    return text, message.get("metadata") or {}, parts


def decision_of(task: dict[str, Any], tool: str, arguments: dict[str, Any]) -> Decision:
    """The decision a task states, for the call (``tool``, ``arguments``) that made it."""
    state = (task.get("status") or {}).get("state")
    text, meta, parts = _status_message(task)
    airlock = (task.get("metadata") or {}).get("airlock") or {}
    policy = meta.get("policy") or airlock.get("policy")
    base: dict[str, Any] = {"arguments": arguments, "task_id": task["id"], "tool": tool, "policy": policy}
    if state == "completed":
        allow: dict[str, Any] = next(
            (p["data"] for p in parts if isinstance(p.get("data"), dict) and p["data"].get("decision") == "allow"),
            {},
        )
        approved_by = allow.get("approvedBy")
        if isinstance(allow.get("arguments"), dict):  # an approver's edit: the call to make is theirs
            base["arguments"] = allow["arguments"]
        return Decision(
            allowed=True,
            approved_by=approved_by,
            reason=None,
            outcome="approved" if approved_by else "allowed",
            edited=tuple((allow.get("edited") or {}).get("changed") or ()),
            values=dict(allow.get("values") or {}),
            **base,
        )
    if state == "input-required":
        return Decision(allowed=False, approved_by=None, reason=text or "held for a person", outcome="held", **base)
    why = meta.get("reason")
    if state == "rejected" and (why == "denied" or text.startswith("Denied by ")):
        reason = meta.get("comment")
        return Decision(
            allowed=False, approved_by=None, reason=reason, outcome="denied", denied_by=meta.get("deniedBy"), **base
        )
    if state == "rejected" and why == "expired":
        return Decision(allowed=False, approved_by=None, reason=text or "expired", outcome="expired", **base)
    if state == "rejected" and (why == "blocked" or text.startswith("Blocked by policy ")):
        reason = text.removeprefix(f"Blocked by policy {policy}: ") if policy else text
        return Decision(allowed=False, approved_by=None, reason=reason or None, outcome="blocked", **base)
    outcome: Outcome = "canceled" if state == "canceled" else "rejected" if state == "rejected" else "failed"
    return Decision(allowed=False, approved_by=None, reason=text or f"the task ended {state}", outcome=outcome, **base)
