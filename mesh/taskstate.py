"""Small builders for task records and status objects, shared by the send and resolve paths."""

from __future__ import annotations

from typing import Any

from mesh.models import new_id, utc_now
from mesh.store import TaskRecord


def status(
    state: str,
    parts: list[dict[str, Any]] | None,
    task: TaskRecord,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A wire TaskStatus; its message (when given parts) is from the agent side of the task."""
    out: dict[str, Any] = {"state": state, "timestamp": utc_now()}
    if parts:
        message: dict[str, Any] = {
            "kind": "message",
            "role": "agent",
            "messageId": new_id(),
            "parts": parts,
            "taskId": task.id,
            "contextId": task.context_id,
        }
        if metadata:
            message["metadata"] = metadata
        out["message"] = message
    return out


def set_state(
    task: TaskRecord,
    state: str,
    parts: list[dict[str, Any]] | None,
    now: float,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Move the task to ``state``; return the status message (for history) when there is one."""
    task.state = state
    task.status = status(state, parts, task, metadata)
    task.updated_at = now
    return task.status.get("message")


def text_parts(text: str) -> list[dict[str, Any]]:
    return [{"kind": "text", "text": text}]


def allow_parts(tool: str | None, **extra: Any) -> list[dict[str, Any]]:
    """A guard's answer when its tool call may go ahead (allowed, or approved by a person)."""
    return [{"kind": "data", "data": {"decision": "allow", "tool": tool, **extra}}]
