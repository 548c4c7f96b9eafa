"""A turn: route → plan → decide → run, block or hold.

The message goes to an agent (or, for a guard's tool call, to none), the agent plans the action, the
policy engine decides, and the action runs, is rejected, or is held for a person (:mod:`mesh.approvals`).
The turn code is also the :class:`~mesh.approvals.runner.Runner` approvals are handed: it runs an
approved action and gives an answered form to its agent as the next turn.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from a2ui import sensitive_fields
from mesh.agents.base import Agent, Execution, Reply, TurnContext
from mesh.approvals.holds import Holds
from mesh.approvals.input_requests import InputRequests, answer_message
from mesh.auth import Principal
from mesh.core.decisions import answered_fields
from mesh.core.kernel import Core
from mesh.core.taskstate import GUARD, allow_parts, set_state, text_parts, write_task
from mesh.errors import QueueFull
from mesh.policy import Action, Enforcement
from mesh.store import ApprovalRecord, TaskRecord
from mesh.tasks.calls import run_of, tool_call
from mesh.wire import jsonrpc as rpc
from mesh.wire.models import INTERRUPTED_STATES, Message, MessageSendParams, TaskState

log = logging.getLogger("airlock.mesh")


def context_of(task: TaskRecord, sender: str) -> TurnContext:
    return TurnContext(
        task_id=task.id, context_id=task.context_id, tenant=task.tenant, sender=sender, metadata=dict(task.metadata)
    )


def queue_full(exc: QueueFull) -> rpc.RpcError:
    """A hold refused because the tenant's queue is full, as an A2A error: nothing was written, the caller
    may try again once approvers have worked the queue down."""
    return rpc.RpcError(
        rpc.QUEUE_FULL,
        f"Approval queue full: {exc.message}; the call was not held, try again later",
        {"status": 503, "code": "queue_full", "maxPending": exc.limit},
    )


class Turn:
    def __init__(self, core: Core, holds: Holds, input_requests: InputRequests) -> None:
        self._store = core.store
        self._config = core.config
        self._clock = core.clock
        self._agents = core.agents
        self._policies = core.policies
        self._changes = core.changes
        self._holds = holds
        self._input_requests = input_requests

    def route(self, message: Message, params: MessageSendParams, task: TaskRecord | None = None) -> Agent | None:
        """The agent a message goes to: named in metadata, else the task's agent when it continues its
        tasks, else none for a guard's tool call, else the default agent."""
        named = (message.metadata or {}).get("agent") or (params.metadata or {}).get("agent")
        if named is not None:
            agent = self._agents.get(str(named))
            if agent is None:
                raise rpc.RpcError(rpc.INVALID_PARAMS, f"Invalid params: no agent named {named!r}")
            return agent
        current = self._agents.get(task.agent) if task is not None and task.agent else None
        if current is not None and current.continues_tasks:
            return current
        if tool_call(message) is not None:
            return None
        if self._agents.default is None:
            raise rpc.RpcError(
                rpc.UNSUPPORTED_OPERATION,
                "No agent is registered to take text messages; send a tool call as a DataPart "
                '{"tool": ..., "arguments": {...}} for a policy decision',
            )
        return self._agents.get(self._agents.default)

    async def run(
        self,
        principal: Principal,
        task: TaskRecord,
        message: Message,
        params: MessageSendParams,
        now: float,
        *,
        new: bool,
        stored_user_msg: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One turn of a task. ``stored_user_msg`` is what history keeps of the message when it must
        differ from what the agent gets (an answer to a form, sensitive values masked)."""
        agent = self.route(message, params, task)
        ctx = context_of(task, principal.sub)
        reply: Reply | None = None
        if agent is None:
            call = tool_call(message)
            assert call is not None
            action = Action(
                agent=str((message.metadata or {}).get("agent") or principal.sub),
                tool=call[0],
                arguments=call[1],
                text=message.text(),
                context={"contextId": task.context_id, "sender": principal.sub},
            )
            task.agent = GUARD
        else:
            tool_call(message)  # a malformed tool call is the caller's error, whoever it goes to
            try:
                plan = await agent.plan(message, ctx)
            except ValueError as exc:
                raise rpc.RpcError(rpc.INVALID_PARAMS, f"Invalid params: {agent.name}: {exc}") from None
            task.agent = agent.name
            reply = plan.reply
            action = plan.action or Action(
                agent=agent.name,
                tool=None,
                arguments={},
                text=message.text(),
                context={"contextId": task.context_id, "sender": principal.sub},
            )
        policies = await self._policies.get(task.tenant)
        decision = policies.evaluate(action)
        # what the decision's kept action masks: any argument a form of the tenant's marks sensitive, and the
        # values an answered form marked so (an agent may pass them on in its next call)
        sensitive = policies.sensitive_fields | answered_fields(message.metadata)
        user_msg = stored_user_msg if stored_user_msg is not None else message.dump()
        run_id = run_of(message, params)

        if decision.enforcement == Enforcement.REQUIRE_APPROVAL:
            grant = (
                await self._store.active_grant(task.tenant, principal.sub, action.agent or "", run_id, now)
                if run_id
                else None
            )
            if grant is None:
                try:
                    return await self._holds.hold(
                        principal, task, user_msg, action, decision, now, new=new, run_id=run_id, sensitive=sensitive
                    )
                except QueueFull as exc:
                    raise queue_full(exc) from None
            # a person bulk-approved this run: the hold is approved at creation, and the audit trail says so
            decision = replace(
                decision, enforcement=Enforcement.ALLOW, reason=f"run grant {grant.run_id} by {grant.granted_by}"
            )

        if decision.enforcement == Enforcement.BLOCK:
            name = decision.policy.name if decision.policy else "policy"
            text = f"Blocked by policy {name}: {decision.reason}"
            status_msg = set_state(
                task, TaskState.REJECTED, text_parts(text), now, {"reason": "blocked", "policy": name}
            )
        elif agent is None:
            policy_name = decision.policy.name if decision.policy else None
            status_msg = set_state(task, TaskState.COMPLETED, allow_parts(action.tool, policy=policy_name), now)
        else:
            if reply is None:
                reply = await self.execute(agent, Execution(action=action), ctx)
            status_msg = set_state(task, reply.state, reply.parts, now)
            task.artifacts = task.artifacts + reply.artifacts
            task.metadata = {**task.metadata, **reply.metadata}
        durable = self._config.sync_turns or task.state in INTERRUPTED_STATES  # somebody waits on this one
        async with self._store.transaction(durable=durable) as tx:
            asked = await self._input_requests.record(tx, task, status_msg["parts"] if status_msg else [], now)
            await write_task(tx, task, [user_msg] + ([status_msg] if status_msg else []), new=new)
            await self._changes.record(tx, task)
            await self._changes.decided(tx, task, action, decision, principal.sub, now, sensitive=sensitive)
        wire = task.to_wire()  # built once: the events and the answer carry the same task
        self._changes.publish("task.updated", task, wire)
        if asked is not None:
            self._changes.publish("approval.created", task, wire, approval_id=asked.id, request="input")
        return wire

    async def execute(self, agent: Agent, execution: Execution, ctx: TurnContext) -> Reply:
        """Run an action; an agent's exception becomes a failed turn, never a crashed request."""
        try:
            return await agent.execute(execution, ctx)
        except Exception as exc:
            log.exception("agent %s failed on task %s", agent.name, ctx.task_id)
            return Reply(state=TaskState.FAILED, parts=text_parts(f"{agent.name} failed: {type(exc).__name__}: {exc}"))

    # ---------------------------------------------------------------- the Runner approvals are handed

    async def run_approved(self, task: TaskRecord, approval: ApprovalRecord, values: dict[str, Any]) -> None:
        agent = self._agents.get(task.agent or "")
        if agent is None:
            reply = Reply(state=TaskState.FAILED, parts=text_parts(f"agent {task.agent!r} is not registered"))
        else:
            execution = Execution(
                action=Action.from_dict(approval.edited_action or approval.action),
                values=values,
                sensitive=sensitive_fields(approval.form),
                key=approval.id,
            )
            reply = await self.execute(agent, execution, context_of(task, approval.requested_by))
        now = self._clock()
        status_msg = set_state(task, reply.state, reply.parts, now)
        task.artifacts = task.artifacts + reply.artifacts
        task.metadata = {**task.metadata, **reply.metadata}
        async with self._store.transaction() as tx:
            asked = await self._input_requests.record(tx, task, status_msg["parts"] if status_msg else [], now)
            await tx.update_task(task)
            await self._changes.record(tx, task)
            await tx.append_history(task.id, [status_msg] if status_msg else [])
        self._changes.publish("task.updated", task)
        if asked is not None:
            self._changes.publish("approval.created", task, approval_id=asked.id, request="input")

    async def answer_turn(
        self, principal: Principal, task: TaskRecord, approval: ApprovalRecord, values: dict[str, Any]
    ) -> dict[str, Any]:
        message, stored = answer_message(task, approval, values)
        params = MessageSendParams(message=message)
        try:
            return await self.run(principal, task, message, params, self._clock(), new=False, stored_user_msg=stored)
        except Exception as exc:  # the answer is written; a turn that cannot run fails the task, never hangs it
            log.exception("task %s: the turn after the answer to %s failed", task.id, approval.id)
            reason = exc.message if isinstance(exc, rpc.RpcError) else type(exc).__name__
            await self.fail(task, f"The answer was recorded, but the agent could not go on: {reason}", reason="failed")
            return task.to_wire()

    async def fail(self, task: TaskRecord, text: str, *, reason: str) -> None:
        """A task left ``working`` by a turn that cannot go on ends ``failed`` (if nothing moved it since)."""
        msg = set_state(task, TaskState.FAILED, text_parts(text), self._clock(), {"reason": reason})
        async with self._store.transaction() as tx:
            if await tx.update_task(task, expect_state=TaskState.WORKING):
                await self._changes.record(tx, task)
                await tx.append_history(task.id, [msg] if msg else [])
        self._changes.publish("task.updated", task)
