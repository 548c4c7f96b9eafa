"""What a message says beside its text: a guard's tool call, an answer to a form, the run it belongs to."""

from __future__ import annotations

from typing import Any

from a2ui import ActionError, answer_of, find_action, surface_id_for
from mesh.wire import jsonrpc as rpc
from mesh.wire.models import Message, MessageSendParams


def tool_call(message: Message) -> tuple[str, dict[str, Any]] | None:
    """The tool call a guard states as a DataPart ``{"tool": NAME, "arguments": {...}}``."""
    for part in message.data_parts():
        tool = part.data.get("tool")
        if isinstance(tool, str) and tool:
            arguments = part.data.get("arguments") or {}
            if not isinstance(arguments, dict):
                raise rpc.RpcError(rpc.INVALID_PARAMS, "Invalid params: a tool call's arguments must be an object")
            return tool, arguments
    return None


def shown_surface(status: dict[str, Any]) -> str:
    """The id of the A2UI surface a held status shows (derived from its message, whether or not the
    status carries the surface: an event naming it can only come from a client that was shown it)."""
    message = status.get("message")
    message_id = message.get("messageId") if isinstance(message, dict) else None
    return surface_id_for(message_id if isinstance(message_id, str) else "")


def form_answer(message: Message, form: dict[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
    """Values answering a paused task's form (shown in ``status``): an A2UI ``action`` event read against the
    form, else the first DataPart that is not a tool call. An action from another surface is the caller's
    error, never a silent non-answer."""
    parts = [{"kind": "data", "data": part.data, "metadata": part.metadata} for part in message.data_parts()]
    found = find_action(parts)
    if found is not None:
        try:
            return answer_of(form, found[1], message.metadata, shown_surface(status))
        except ActionError as exc:
            raise rpc.RpcError(rpc.INVALID_PARAMS, f"Invalid params: {exc}", {"status": 400}) from None
    for part in message.data_parts():
        if "tool" not in part.data:
            return dict(part.data)
    return None


def run_of(message: Message, params: MessageSendParams) -> str | None:
    """The run a message belongs to (``metadata.run_id`` on the message or the request), for run grants."""
    for metadata in (message.metadata, params.metadata):
        value = (metadata or {}).get("run_id")
        if isinstance(value, str) and value:
            return value
    return None
