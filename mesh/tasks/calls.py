"""What a message says beside its text: a guard's tool call, an answer to a form, the run it belongs to."""

from __future__ import annotations

from typing import Any

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


def form_answer(message: Message) -> dict[str, Any] | None:
    """Values answering a paused task's form: the first DataPart that is not a tool call."""
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
