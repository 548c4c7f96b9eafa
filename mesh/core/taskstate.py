"""Small builders for task records and status objects, shared by the send and resolve paths."""

from __future__ import annotations

from typing import Any

from a2ui import EXTENSION_URI, FormError, find_form, is_surface_part, surface_id_for, surface_part, validate_form
from mesh.store import TaskRecord, Tx
from mesh.wire.models import TERMINAL_STATES, TaskState, new_id, utc_now


def status(
    state: str,
    parts: list[dict[str, Any]] | None,
    task: TaskRecord,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A wire TaskStatus; its message (when given parts) is from the agent side of the task. A held status
    of a task that activated the A2UI extension also carries its form as an A2UI surface (after the parts,
    which stay as they are), so every reader of the status sees it: a get, a stream, a push."""
    out: dict[str, Any] = {"state": state, "timestamp": utc_now()}
    if parts:
        message_id = new_id()
        if state == TaskState.INPUT_REQUIRED and a2ui_active(task):
            parts = with_surface(parts, message_id)
        message: dict[str, Any] = {
            "kind": "message",
            "role": "agent",
            "messageId": message_id,
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


def a2ui_active(task: TaskRecord) -> bool:
    """Whether a request of this task activated the A2UI extension: kept in ``metadata.airlock.extensions``,
    so a held status written later (after an approval, by another replica) still carries the surface."""
    airlock = task.metadata.get("airlock")
    extensions = airlock.get("extensions") if isinstance(airlock, dict) else None
    return isinstance(extensions, list) and EXTENSION_URI in extensions


def activate_a2ui(task: TaskRecord) -> None:
    """Remember on the task that its client reads A2UI surfaces (written with the task's next write)."""
    if a2ui_active(task):
        return
    airlock = dict(task.metadata.get("airlock") or {})
    existing = airlock.get("extensions")
    airlock["extensions"] = [*(existing if isinstance(existing, list) else []), EXTENSION_URI]
    task.metadata = {**task.metadata, "airlock": airlock}


def with_surface(parts: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    """``parts`` and, when they carry a well-formed Form and no surface yet, the Form as an A2UI surface.
    An agent's malformed Form gets none: its hold has no input request to answer either."""
    form = find_form(parts)
    if form is None or any(is_surface_part(part) for part in parts):
        return parts
    try:
        form = validate_form(form)
    except FormError:
        return parts
    return [*parts, surface_part(form, surface_id_for(message_id))]


def text_parts(text: str) -> list[dict[str, Any]]:
    return [{"kind": "text", "text": text}]


def allow_parts(tool: str | None, **extra: Any) -> list[dict[str, Any]]:
    """A guard's answer when its tool call may go ahead (allowed, or approved by a person)."""
    return [{"kind": "data", "data": {"decision": "allow", "tool": tool, **extra}}]


def new_task(
    tenant: str,
    owner: str,
    roles: frozenset[str] | set[str],
    now: float,
    *,
    task_id: str | None = None,
    context_id: str | None = None,
    agent: str | None = None,
    no_push_configs: bool = False,
) -> TaskRecord:
    """A task as its first turn finds it: ``submitted``, owned by the caller who sent it."""
    return TaskRecord(
        id=task_id or new_id(),
        tenant=tenant,
        context_id=context_id or new_id(),
        state=TaskState.SUBMITTED,
        owner=owner,
        owner_roles=sorted(roles),
        agent=agent,
        status={},
        created_at=now,
        updated_at=now,
        no_push_configs=no_push_configs,
    )


async def write_task(tx: Tx, task: TaskRecord, messages: list[dict[str, Any]], *, new: bool) -> None:
    """A turn's write of its task and the messages it adds: a new task with its first messages in one go."""
    if new:  # a task that ended in its first turn takes no more messages: its history is written with it
        await tx.insert_task(task, messages, final=task.state in TERMINAL_STATES)
    else:
        await tx.update_task(task)
        await tx.append_history(task.id, messages)


GUARD = "guard"
"""The agent recorded on a guard's tasks: the caller runs its own tool, the mesh only decides."""
