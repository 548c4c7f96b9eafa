"""The A2A v0.3 operations, one method each: parse the params into their wire model, call the service.

The handler is given the services it needs (tasks, push configs) and the store and events a stream
follows; :mod:`mesh.a2a.dispatch` maps method names onto these methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field

from mesh.a2a.streaming import message_stream, resubscribe
from mesh.auth import Principal
from mesh.core.events import EventBus
from mesh.delivery.push import PushConfigs
from mesh.store import Store
from mesh.tasks.service import TaskService
from mesh.wire import jsonrpc as rpc
from mesh.wire.models import MessageSendParams, PushNotificationConfig, TaskIdParams, TaskQueryParams, Wire


class SetPushParams(Wire):
    task_id: str = Field(min_length=1)
    push_notification_config: PushNotificationConfig


class GetPushParams(Wire):
    id: str = Field(min_length=1)
    push_notification_config_id: str | None = None


class DeletePushParams(Wire):
    id: str = Field(min_length=1)
    push_notification_config_id: str = Field(min_length=1)


class RequestHandler:
    def __init__(self, tasks: TaskService, pushes: PushConfigs, store: Store, events: EventBus) -> None:
        self.tasks = tasks
        self.pushes = pushes
        self._store = store
        self._events = events

    async def send_message(self, principal: Principal, params: dict[str, Any]) -> Any:
        return await self.tasks.send_message(principal, rpc.parse_params(MessageSendParams, params))

    async def stream_message(self, principal: Principal, params: dict[str, Any]) -> AsyncIterator[Any]:
        """Params are checked inside the stream: a client that asked for a stream gets its error as one."""
        send = rpc.parse_params(MessageSendParams, params)
        async for event in message_stream(self.tasks, self._store, self._events, principal, send):
            yield event

    async def get_task(self, principal: Principal, params: dict[str, Any]) -> Any:
        query = rpc.parse_params(TaskQueryParams, params)
        return await self.tasks.get_task(principal, query.id, query.history_length)

    async def cancel_task(self, principal: Principal, params: dict[str, Any]) -> Any:
        return await self.tasks.cancel_task(principal, rpc.parse_params(TaskIdParams, params).id)

    async def resubscribe(self, principal: Principal, params: dict[str, Any]) -> AsyncIterator[Any]:
        task_id = rpc.parse_params(TaskIdParams, params).id
        async for event in resubscribe(self._store, self._events, principal, task_id):
            yield event

    async def set_push_config(self, principal: Principal, params: dict[str, Any]) -> Any:
        p = rpc.parse_params(SetPushParams, params)
        return await self.pushes.set_config(principal.tenant, p.task_id, p.push_notification_config)

    async def get_push_config(self, principal: Principal, params: dict[str, Any]) -> Any:
        p = rpc.parse_params(GetPushParams, params)
        return await self.pushes.get_config(principal.tenant, p.id, p.push_notification_config_id)

    async def list_push_configs(self, principal: Principal, params: dict[str, Any]) -> Any:
        return await self.pushes.list_configs(principal.tenant, rpc.parse_params(TaskIdParams, params).id)

    async def delete_push_config(self, principal: Principal, params: dict[str, Any]) -> Any:
        p = rpc.parse_params(DeletePushParams, params)
        await self.pushes.delete_config(principal.tenant, p.id, p.push_notification_config_id)
        return None
