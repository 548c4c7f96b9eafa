"""Streaming A2A operations: ``message/stream`` and ``tasks/resubscribe`` as Server-Sent Events.

Both follow a task through the events the mesh publishes after each commit. The first event is always
the Task; then one ``status-update`` per change of status (artifacts first, as ``artifact-update``
events), and the stream ends after a terminal or interrupted state — clients wait for the close, not for
``final``. The work behind ``message/stream`` runs apart from the stream, so a client that goes away
stops only its own stream, never the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from mesh.auth import Principal
from mesh.core.events import CLOSED, Event, EventBus
from mesh.store import Store
from mesh.tasks.service import TaskService
from mesh.wire import jsonrpc as rpc
from mesh.wire.models import (
    INTERRUPTED_STATES,
    TERMINAL_STATES,
    MessageSendParams,
    TaskState,
    new_id,
    utc_now,
)

log = logging.getLogger("airlock.mesh.stream")

TASK_EVENTS = frozenset({"task.updated", "approval.created", "approval.resolved", "approval.expired"})
FINAL_STATES = TERMINAL_STATES | INTERRUPTED_STATES

_running: set[asyncio.Task[dict[str, Any]]] = set()
"""Sends started by streams: held here until they finish, so a closed stream never drops one."""


def _start(work: Coroutine[Any, Any, dict[str, Any]]) -> asyncio.Task[dict[str, Any]]:
    job = asyncio.get_running_loop().create_task(work)
    _running.add(job)
    job.add_done_callback(_finished)
    return job


def _finished(job: asyncio.Task[dict[str, Any]]) -> None:
    _running.discard(job)
    if job.cancelled():
        return
    exc = job.exception()  # retrieved here, so an error nobody streams is still seen once
    if exc is not None and not isinstance(exc, rpc.RpcError):
        log.error("a streamed send failed", exc_info=exc)


class _Follower:
    """What one stream has sent of a task, and the events that bring it up to date."""

    def __init__(self, store: Store, tenant: str, task: dict[str, Any]) -> None:
        self.store = store
        self.tenant = tenant
        self.task_id: str = task["id"]
        self.context_id: str = task["contextId"]
        self.status: dict[str, Any] = task["status"]
        self.artifacts: set[str] = {a.get("artifactId", "") for a in task.get("artifacts") or []}
        self.ended = False

    def concerns(self, event: Event) -> bool:
        return event.kind in TASK_EVENTS and event.subject == self.task_id and event.tenant == self.tenant

    async def task_of(self, event: Event) -> dict[str, Any] | None:
        """The task as the event left it; an event relayed from another replica may carry only its id."""
        task = event.data.get("task")
        if isinstance(task, dict):
            return task
        record = await self.store.get_task(self.tenant, self.task_id)
        return record.to_wire() if record is not None else None

    def updates(self, task: dict[str, Any], *, force_final: bool = False) -> list[dict[str, Any]]:
        """The events that bring a reader from what it has seen to ``task``: new artifacts, then the
        status when it changed. A new interrupted or terminal status is final and ends the stream (a status
        already seen in the first Task is not new, so a held task's stream waits for what comes next)."""
        out: list[dict[str, Any]] = []
        for artifact in task.get("artifacts") or []:
            key = artifact.get("artifactId", "")
            if key in self.artifacts:
                continue
            self.artifacts.add(key)
            out.append(
                {
                    "kind": "artifact-update",
                    "taskId": self.task_id,
                    "contextId": self.context_id,
                    "artifact": artifact,
                    "append": False,
                    "lastChunk": True,
                }
            )
        status = task.get("status") or {}
        state = status.get("state")
        final = force_final or state in FINAL_STATES
        if status != self.status or (force_final and not self.ended):
            self.status = status
            out.append(
                {
                    "kind": "status-update",
                    "taskId": self.task_id,
                    "contextId": self.context_id,
                    "status": status,
                    "final": bool(final),
                }
            )
            self.ended = self.ended or bool(final)
        return out


async def _next_event(queue: asyncio.Queue[Event], job: asyncio.Task[Any] | None) -> Event | None:
    """The next published event, or None once ``job`` has finished and nothing is left to read."""
    if not queue.empty():
        return queue.get_nowait()
    if job is None:
        return await queue.get()
    if job.done():
        return None
    getter = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await getter
    if getter.done() and not getter.cancelled():
        return getter.result()
    return queue.get_nowait() if not queue.empty() else None


def _send_result(job: asyncio.Task[dict[str, Any]]) -> dict[str, Any]:
    """The finished send's task, its RpcError as the stream's error, anything else as an internal one."""
    exc = job.exception()
    if exc is None:
        return job.result()
    if isinstance(exc, rpc.RpcError):
        raise exc
    raise rpc.RpcError(rpc.INTERNAL_ERROR, "Internal error")


async def message_stream(
    tasks: TaskService, store: Store, events: EventBus, principal: Principal, send: MessageSendParams
) -> AsyncIterator[Any]:
    """``message/stream``: the Task first, then its updates until it ends or waits for someone."""
    message = send.message
    async with events.subscribe() as queue:  # before the work starts, so no change is missed
        if message.task_id:
            record = await store.get_task(principal.tenant, message.task_id)
            if record is None:
                raise rpc.task_not_found(message.task_id)
            first = record.to_wire()
            job = _start(tasks.send_message(principal, send))
        else:
            message.context_id = message.context_id or new_id()
            task_id = new_id()
            first = {
                "kind": "task",
                "id": task_id,
                "contextId": message.context_id,
                "status": {"state": TaskState.SUBMITTED.value, "timestamp": utc_now()},
            }
            job = _start(tasks.send_message(principal, send, task_id=task_id))
        follower = _Follower(store, principal.tenant, first)
        yield first
        while not follower.ended:
            event = await _next_event(queue, job)
            if event is CLOSED:  # the server is shutting down; the send goes on, the client resubscribes
                return
            if event is None:  # the send is over: its answer closes the stream if no event did
                for update in follower.updates(_send_result(job), force_final=True):
                    yield update
                return
            if not follower.concerns(event):
                continue
            task = await follower.task_of(event)
            if task is None:
                continue
            for update in follower.updates(task):
                yield update


async def resubscribe(store: Store, events: EventBus, principal: Principal, task_id: str) -> AsyncIterator[Any]:
    """``tasks/resubscribe``: the Task as it is now, then its updates."""
    async with events.subscribe() as queue:  # before the read, so a change in between still arrives
        record = await store.get_task(principal.tenant, task_id)
        if record is None:
            raise rpc.task_not_found(task_id)
        first = record.to_wire()
        follower = _Follower(store, principal.tenant, first)
        yield first
        if record.state in TERMINAL_STATES:
            return
        while not follower.ended:
            event = await _next_event(queue, None)
            if event is CLOSED:
                return
            if event is None or not follower.concerns(event):
                continue
            task = await follower.task_of(event)
            if task is None:
                continue
            for update in follower.updates(task):
                yield update
