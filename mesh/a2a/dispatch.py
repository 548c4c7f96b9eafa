"""The one JSON-RPC dispatch table: every A2A method name, v0.3 and its v1.0 twin, to the handler method
that answers it. Built once when the app is made; nothing registers itself at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mesh.a2a.handler import RequestHandler
from mesh.a2a.v1 import V1Handler
from mesh.auth import Principal

Method = Callable[[Principal, dict[str, Any]], Awaitable[Any]]
StreamMethod = Callable[[Principal, dict[str, Any]], AsyncIterator[Any]]


@dataclass(frozen=True, slots=True)
class Dispatch:
    methods: Mapping[str, Method]
    streams: Mapping[str, StreamMethod]
    """Methods answered as Server-Sent Events: one JSON-RPC result per ``data:`` line."""


def dispatch_table(v03: RequestHandler) -> Dispatch:
    v1 = V1Handler(v03)
    methods: dict[str, Method] = {
        "message/send": v03.send_message,
        "tasks/get": v03.get_task,
        "tasks/cancel": v03.cancel_task,
        "tasks/pushNotificationConfig/set": v03.set_push_config,
        "tasks/pushNotificationConfig/get": v03.get_push_config,
        "tasks/pushNotificationConfig/list": v03.list_push_configs,
        "tasks/pushNotificationConfig/delete": v03.delete_push_config,
        "SendMessage": v1.send_message,
        "GetTask": v1.get_task,
        "ListTasks": v1.list_tasks,
        "CancelTask": v1.cancel_task,
        "CreateTaskPushNotificationConfig": v1.create_push_config,
        "GetTaskPushNotificationConfig": v1.get_push_config,
        "ListTaskPushNotificationConfigs": v1.list_push_configs,
        "DeleteTaskPushNotificationConfig": v1.delete_push_config,
        "GetExtendedAgentCard": v1.get_extended_agent_card,
    }
    streams: dict[str, StreamMethod] = {
        "message/stream": v03.stream_message,
        "tasks/resubscribe": v03.resubscribe,
        "SendStreamingMessage": v1.send_streaming_message,
        "SubscribeToTask": v1.subscribe_to_task,
    }
    return Dispatch(methods=methods, streams=streams)
