"""The task operations A2A clients call: send a message (a new task, a follow-up, or an answer to a held
one), get, list and cancel. A turn itself is :mod:`mesh.tasks.turn`."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from a2ui import (
    DECISION_FIELD,
    EXTENSION_URI,
    capabilities_activate,
    find_action,
    redact,
    redact_action_part,
    redact_data_model,
)
from mesh.approvals.announce import announce
from mesh.approvals.records import INPUT
from mesh.approvals.resolve import Resolver, ResolveRequest
from mesh.auth import Principal
from mesh.core.kernel import Core
from mesh.core.taskstate import activate_a2ui, new_task, set_state, text_parts
from mesh.delivery.channels.base import RESOLVED
from mesh.delivery.push import PushConfigs
from mesh.errors import MeshError
from mesh.store import PENDING, ApprovalRecord, TaskRecord
from mesh.tasks.calls import form_answer
from mesh.tasks.turn import Turn, context_of
from mesh.wire import jsonrpc as rpc
from mesh.wire.models import TERMINAL_STATES, Message, MessageSendParams, TaskState

log = logging.getLogger("airlock.mesh")

REQUESTED_EXTENSIONS: ContextVar[frozenset[str]] = ContextVar("requested_extensions", default=frozenset())
"""The A2A extensions the current request's transport activates (the ``A2A-Extensions`` header): set by the
HTTP face for the request, read here, because an extension is asked for beside the method's params, not in
them. A stream's send runs in a task started from the request, so it sees the same value."""


def a2ui_requested(params: MessageSendParams) -> bool:
    """Whether this send activates the A2UI extension: by the header, or by the capabilities in metadata."""
    return (
        EXTENSION_URI in REQUESTED_EXTENSIONS.get()
        or capabilities_activate(params.message.metadata)
        or capabilities_activate(params.metadata)
    )


class TaskService:
    def __init__(self, core: Core, turn: Turn, resolver: Resolver, pushes: PushConfigs) -> None:
        self._store = core.store
        self._clock = core.clock
        self._agents = core.agents
        self._changes = core.changes
        self._turn = turn
        self._resolver = resolver
        self._pushes = pushes

    async def send_message(
        self, principal: Principal, params: MessageSendParams, *, task_id: str | None = None
    ) -> dict[str, Any]:
        """``task_id`` names a new task (a stream announces it before the turn runs); follow-ups ignore it."""
        message = params.message
        now = self._clock()
        new = not message.task_id
        if message.task_id:
            task = await self._store.get_task(principal.tenant, message.task_id)
            if task is None:
                raise rpc.task_not_found(message.task_id)
            if message.context_id and message.context_id != task.context_id:
                raise rpc.RpcError(rpc.INVALID_PARAMS, "Invalid params: contextId does not match the task's")
            if task.state in TERMINAL_STATES:
                raise rpc.RpcError(
                    rpc.UNSUPPORTED_OPERATION, f"Task {task.id} is {task.state}; it takes no more messages"
                )
            message.context_id = task.context_id
            pending = await self._store.latest_approval(task.id)
            if pending is not None and pending.status == PENDING:
                answer = form_answer(message, pending.form, task.status)
                async with self._pushes.from_send(task, params, new=False):
                    # a decision is always an attempt to resolve, so one the caller may not make is refused
                    # as the gateway refuses it, never kept in the history as if it had been made
                    if answer is not None and pending.kind != INPUT and principal.sub == pending.requested_by:
                        if DECISION_FIELD in answer:  # the agent's own channel never confirms its own call
                            raise rpc.RpcError(
                                rpc.UNSUPPORTED_OPERATION,
                                "the caller that caused this hold cannot resolve it; an approver resolves it",
                                {"status": 403, "field": DECISION_FIELD},
                            )
                    elif answer is not None and (
                        pending.kind == INPUT or DECISION_FIELD in answer or principal.can_resolve
                    ):
                        return await self._answer(principal, pending, answer)
                    return await self._note_while_held(task, message, pending.form)
            if a2ui_requested(params):
                activate_a2ui(task)  # written by the turn below
        else:
            task = new_task(
                principal.tenant,
                principal.sub,
                principal.roles,
                now,
                task_id=task_id,
                context_id=message.context_id,
                no_push_configs=not (params.configuration and params.configuration.push_notification_config),
            )
            if a2ui_requested(params):
                activate_a2ui(task)
            message.task_id = task.id
            message.context_id = task.context_id
        async with self._pushes.from_send(task, params, new=new):
            return await self._turn.run(principal, task, message, params, now, new=new)

    async def get_task(self, principal: Principal, task_id: str, history_length: int | None) -> dict[str, Any]:
        task = await self._store.get_task(principal.tenant, task_id)
        if task is None:
            raise rpc.task_not_found(task_id)
        if history_length == 0:
            return task.to_wire()
        return task.to_wire(await self._store.get_history(task.id, history_length))

    async def list_tasks(
        self,
        principal: Principal,
        *,
        context_id: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
        history_length: int | None = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """The tenant's tasks, newest first, and how many match; history as in :meth:`get_task`."""
        records, total = await self._store.list_tasks(
            principal.tenant, context_id=context_id, state=state, limit=limit, offset=offset
        )
        tasks = []
        for task in records:
            history = None if history_length == 0 else await self._store.get_history(task.id, history_length)
            tasks.append(task.to_wire(history))
        return tasks, total

    async def history(self, task_id: str, last: int) -> list[dict[str, Any]]:
        return await self._store.get_history(task_id, last)

    async def cancel_task(self, principal: Principal, task_id: str) -> dict[str, Any]:
        task = await self._store.get_task(principal.tenant, task_id)
        if task is None:
            raise rpc.task_not_found(task_id)
        if task.state in TERMINAL_STATES:
            raise rpc.RpcError(rpc.TASK_NOT_CANCELABLE, f"Task {task_id} is {task.state} and cannot be canceled")
        if task.state == TaskState.WORKING:
            raise rpc.RpcError(rpc.TASK_NOT_CANCELABLE, f"Task {task_id} is running an approved action")
        now = self._clock()
        approval = await self._store.latest_approval(task.id)
        async with self._store.transaction() as tx:
            if approval is not None and approval.status == PENDING:
                won = await tx.decide_approval(
                    approval.id,
                    status="canceled",
                    now=now,
                    resolved_by=principal.sub,
                    surface="a2a",
                    values=None,
                    reason="task canceled",
                    require_unexpired=False,
                )
                if not won:
                    raise rpc.RpcError(rpc.TASK_NOT_CANCELABLE, f"Task {task_id} was resolved first")
                approval.status, approval.resolved_by, approval.resolved_at = "canceled", principal.sub, now
                approval.surface = "a2a"
                await announce(tx, approval, RESOLVED, now)
            was = task.state
            msg = set_state(task, TaskState.CANCELED, text_parts("Task canceled."), now)
            if not await tx.update_task(task, expect_state=was):
                raise rpc.RpcError(rpc.TASK_NOT_CANCELABLE, f"Task {task_id} changed while canceling; try again")
            await self._changes.record(tx, task)
            await tx.append_history(task.id, [msg] if msg else [])
            await tx.audit(
                tenant=task.tenant, kind="task.canceled", actor=principal.sub, subject=task.id, detail={}, now=now
            )
        self._changes.publish("task.updated", task)
        await self._agent_canceled(principal, task)
        return task.to_wire()

    async def _agent_canceled(self, principal: Principal, task: TaskRecord) -> None:
        """Tell the task's agent (a downstream agent forwards the cancel); its failure never fails the cancel."""
        agent = self._agents.get(task.agent or "")
        if agent is None:
            return
        try:
            await agent.cancel(context_of(task, principal.sub))
        except Exception:
            log.exception("agent %s failed to take the cancel of task %s", agent.name, task.id)

    async def _answer(self, principal: Principal, pending: ApprovalRecord, answer: dict[str, Any]) -> dict[str, Any]:
        """A DataPart of values sent to a paused task: the same resolve path as every other surface."""
        try:
            outcome = await self._resolver.resolve(
                ResolveRequest(ref=pending.id, resolution=answer, surface="a2a", principal=principal)
            )
        except MeshError as exc:
            code = rpc.INVALID_PARAMS if exc.status == 400 else rpc.UNSUPPORTED_OPERATION
            prefix = "Invalid params: " if exc.status == 400 else ""
            raise rpc.RpcError(code, f"{prefix}{exc.message}", {"status": exc.status, "field": exc.field}) from None
        return outcome.task

    async def _note_while_held(self, task: TaskRecord, message: Message, form: dict[str, Any]) -> dict[str, Any]:
        """A message to a held task is kept in its history; it never resolves the hold. Values it gives for
        the hold's form are kept masked where the form says they are sensitive, as an answer's would be:
        in a DataPart of values, in an A2UI action event's context and in the A2UI data model it carries."""
        stored = message.dump()
        parts = stored.get("parts", [])
        for index, part in enumerate(parts):
            if part.get("kind") != "data":
                continue
            if find_action([part]) is not None:
                parts[index] = redact_action_part(form, part)
            elif isinstance(part.get("data"), dict):
                part["data"] = redact(form, part["data"])
        if "metadata" in stored:
            stored["metadata"] = redact_data_model(form, stored["metadata"])
        async with self._store.transaction() as tx:
            await tx.append_history(task.id, [stored])
        return task.to_wire()
