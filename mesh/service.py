"""The mesh: a message's path from an agent to a decision, and the operations around a task.

``send_message`` routes a message to an agent (or takes a guard's tool call), asks the policy engine,
and either runs the action, rejects it, or holds it — the hold is one transaction writing the task,
the approval and the notification outbox rows. Resolving a hold lives in :mod:`mesh.resolve`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from a2ui import approval_form, form_part, redact
from mesh import jsonrpc as rpc
from mesh import metrics
from mesh.admin import MAX_TIMEOUT_S, PolicyAdmin
from mesh.agents.base import Agent, AgentRegistry, Execution, Reply, TurnContext
from mesh.approvals_api import ApprovalsApi
from mesh.auth import Principal
from mesh.errors import MeshError
from mesh.events import Event, EventBus
from mesh.input_requests import INPUT, record_input_request
from mesh.models import INTERRUPTED_STATES, TERMINAL_STATES, Message, MessageSendParams, TaskState, new_id
from mesh.policy import Action, CompiledPolicies, Decision, Enforcement, Policy, compile_policies
from mesh.push import KIND as PUSH_KIND
from mesh.push import config_from_send, state_hook
from mesh.resolve import ResolvePath, ResolveRequest
from mesh.store import PENDING, ApprovalRecord, Store, TaskRecord, Tx, iso
from mesh.taskstate import allow_parts, set_state, text_parts
from mesh.tokens import callback_token, token_hash

log = logging.getLogger("airlock.mesh")

StateHook = Callable[[Tx, TaskRecord], Awaitable[None]]
"""Runs inside every transaction that changes a task's state (push notifications queue their rows here)."""

GUARD = "guard"
PUSH_QUEUED = frozenset({PUSH_KIND})


@dataclass(slots=True)
class MeshConfig:
    approval_timeout_s: int = 3600
    callback_key: bytes = b""
    gateway_url: str = "http://127.0.0.1:8081"
    agent_timeout_s: float = 30.0  # how long a downstream agent may take to answer
    push_allow_private: bool = False
    max_pending: int = 10_000  # the approvals API answers 503 past this many pending approvals
    # A turn that leaves nobody waiting (allowed, blocked, answered by an agent) is answered only once it is
    # on disk. Off, it is answered once written, and reaches the disk with the next synced write (a hold, a
    # resolution) or SQLite's next checkpoint: a killed process loses none of it, a power loss may lose the
    # last of them. Holds, resolutions and every write a person makes are synced either way.
    sync_turns: bool = True

    def __post_init__(self) -> None:
        if not self.callback_key:
            self.callback_key = secrets.token_bytes(32)


class Mesh(ResolvePath, PolicyAdmin, ApprovalsApi):
    def __init__(
        self,
        store: Store,
        config: MeshConfig,
        agents: AgentRegistry | None = None,
        events: EventBus | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.agents = agents or AgentRegistry()
        self.events = events or EventBus()
        self.clock = clock
        self._compiled: dict[str, CompiledPolicies] = {}
        self._loading: dict[str, asyncio.Future[CompiledPolicies]] = {}
        self._generations: dict[str, int] = {}
        self.state_hooks: list[StateHook] = [state_hook(self)]

    # ---------------------------------------------------------------- policies

    async def policies(self, tenant: str) -> CompiledPolicies:
        """Compiled once per change: plugins are built and sorted when a policy changes, not per call. The
        calls that arrive while the set is being read and compiled wait for that one compile (after a change
        under load, each of them used to compile the whole set again)."""
        compiled = self._compiled.get(tenant)
        if compiled is not None:
            return compiled
        loading = self._loading.get(tenant)
        if loading is None:
            loading = asyncio.ensure_future(self._load_policies(tenant))
            self._loading[tenant] = loading
            loading.add_done_callback(lambda done: self._loaded(tenant, done))
        return await asyncio.shield(loading)

    async def _load_policies(self, tenant: str) -> CompiledPolicies:
        generation = self._generations.get(tenant, 0)
        bodies = await self.store.list_policies(tenant)
        compiled = compile_policies(Policy.model_validate(b) for b in bodies)
        if self._generations.get(tenant, 0) == generation:  # not cached when a change came while it read
            self._compiled[tenant] = compiled
        return compiled

    def _loaded(self, tenant: str, done: asyncio.Future[CompiledPolicies]) -> None:
        if self._loading.get(tenant) is done:
            del self._loading[tenant]
        if not done.cancelled():
            done.exception()  # a failed load is each waiter's error; none is left unretrieved

    def policies_changed(self, tenant: str, *, broadcast: bool = True) -> None:
        self._generations[tenant] = self._generations.get(tenant, 0) + 1
        self._compiled.pop(tenant, None)
        self._loading.pop(tenant, None)  # a load under way read the old set: the next call starts another
        if broadcast:
            self.events.publish(Event(kind="policies.changed", tenant=tenant, subject=""))

    # ---------------------------------------------------------------- A2A operations

    async def send_message(
        self, principal: Principal, params: MessageSendParams, *, task_id: str | None = None
    ) -> dict[str, Any]:
        """``task_id`` names a new task (a stream announces it before the turn runs); follow-ups ignore it."""
        message = params.message
        now = self.clock()
        new = not message.task_id
        if message.task_id:
            task = await self.store.get_task(principal.tenant, message.task_id)
            if task is None:
                raise rpc.task_not_found(message.task_id)
            if message.context_id and message.context_id != task.context_id:
                raise rpc.RpcError(rpc.INVALID_PARAMS, "Invalid params: contextId does not match the task's")
            if task.state in TERMINAL_STATES:
                raise rpc.RpcError(
                    rpc.UNSUPPORTED_OPERATION, f"Task {task.id} is {task.state}; it takes no more messages"
                )
            message.context_id = task.context_id
            pending = await self.store.latest_approval(task.id)
            if pending is not None and pending.status == PENDING:
                answer = form_answer(message)
                if answer is not None and (
                    pending.kind == INPUT or (principal.sub != pending.requested_by and principal.can_resolve)
                ):
                    async with config_from_send(self, task, params, new=False):
                        return await self._answer_over_a2a(principal, pending, answer)
                async with config_from_send(self, task, params, new=False):
                    return await self._note_while_held(task, message, pending.form)
        else:
            task = TaskRecord(
                id=task_id or new_id(),
                tenant=principal.tenant,
                context_id=message.context_id or new_id(),
                state=TaskState.SUBMITTED,
                owner=principal.sub,
                owner_roles=sorted(principal.roles),
                agent=None,
                status={},
                created_at=now,
                updated_at=now,
                no_push_configs=not (params.configuration and params.configuration.push_notification_config),
            )
            message.task_id = task.id
            message.context_id = task.context_id
        async with config_from_send(self, task, params, new=new):
            return await self._turn(principal, task, message, params, now, new=new)

    async def get_task(self, principal: Principal, task_id: str, history_length: int | None) -> dict[str, Any]:
        task = await self.store.get_task(principal.tenant, task_id)
        if task is None:
            raise rpc.task_not_found(task_id)
        if history_length == 0:
            return task.to_wire()
        return task.to_wire(await self.store.get_history(task.id, history_length))

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
        records, total = await self.store.list_tasks(
            principal.tenant, context_id=context_id, state=state, limit=limit, offset=offset
        )
        tasks = []
        for task in records:
            history = None if history_length == 0 else await self.store.get_history(task.id, history_length)
            tasks.append(task.to_wire(history))
        return tasks, total

    async def cancel_task(self, principal: Principal, task_id: str) -> dict[str, Any]:
        task = await self.store.get_task(principal.tenant, task_id)
        if task is None:
            raise rpc.task_not_found(task_id)
        if task.state in TERMINAL_STATES:
            raise rpc.RpcError(rpc.TASK_NOT_CANCELABLE, f"Task {task_id} is {task.state} and cannot be canceled")
        if task.state == TaskState.WORKING:
            raise rpc.RpcError(rpc.TASK_NOT_CANCELABLE, f"Task {task_id} is running an approved action")
        now = self.clock()
        approval = await self.store.latest_approval(task.id)
        async with self.store.transaction() as tx:
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
            was = task.state
            msg = set_state(task, TaskState.CANCELED, text_parts("Task canceled."), now)
            if not await tx.update_task(task, expect_state=was):
                raise rpc.RpcError(rpc.TASK_NOT_CANCELABLE, f"Task {task_id} changed while canceling; try again")
            await self._state_written(tx, task)
            await tx.append_history(task.id, [msg] if msg else [])
            await tx.audit(
                tenant=task.tenant, kind="task.canceled", actor=principal.sub, subject=task.id, detail={}, now=now
            )
        self._publish("task.updated", task)
        await self._agent_canceled(principal, task)
        return task.to_wire()

    async def _agent_canceled(self, principal: Principal, task: TaskRecord) -> None:
        """Tell the task's agent (a downstream agent forwards the cancel); its failure never fails the cancel."""
        agent = self.agents.get(task.agent or "")
        if agent is None:
            return
        ctx = TurnContext(task.id, task.context_id, task.tenant, principal.sub, dict(task.metadata))
        try:
            await agent.cancel(ctx)
        except Exception:
            log.exception("agent %s failed to take the cancel of task %s", agent.name, task.id)

    # ---------------------------------------------------------------- a turn

    def _route(
        self, principal: Principal, message: Message, params: MessageSendParams, task: TaskRecord | None = None
    ) -> Agent | None:
        """The agent a message goes to: named in metadata, else the task's agent when it continues its
        tasks, else none for a guard's tool call, else the default agent."""
        named = (message.metadata or {}).get("agent") or (params.metadata or {}).get("agent")
        if named is not None:
            agent = self.agents.get(str(named))
            if agent is None:
                raise rpc.RpcError(rpc.INVALID_PARAMS, f"Invalid params: no agent named {named!r}")
            return agent
        current = self.agents.get(task.agent) if task is not None and task.agent else None
        if current is not None and current.continues_tasks:
            return current
        if tool_call(message) is not None:
            return None
        if self.agents.default is None:
            raise rpc.RpcError(
                rpc.UNSUPPORTED_OPERATION,
                "No agent is registered to take text messages; send a tool call as a DataPart "
                '{"tool": ..., "arguments": {...}} for a policy decision',
            )
        return self.agents.get(self.agents.default)

    async def _turn(
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
        agent = self._route(principal, message, params, task)
        ctx = TurnContext(
            task_id=task.id,
            context_id=task.context_id,
            tenant=task.tenant,
            sender=principal.sub,
            metadata=dict(task.metadata),
        )
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
        decision = (await self.policies(task.tenant)).evaluate(action)
        user_msg = stored_user_msg if stored_user_msg is not None else message.dump()
        run_id = run_of(message, params)

        if decision.enforcement == Enforcement.REQUIRE_APPROVAL:
            grant = (
                await self.store.active_grant(task.tenant, principal.sub, action.agent or "", run_id, now)
                if run_id
                else None
            )
            if grant is None:
                return await self._hold(principal, task, user_msg, action, decision, now, new=new, run_id=run_id)
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
                reply = await self._execute(agent, Execution(action=action), ctx)
            status_msg = set_state(task, reply.state, reply.parts, now)
            task.artifacts = task.artifacts + reply.artifacts
            task.metadata = {**task.metadata, **reply.metadata}
        durable = self.config.sync_turns or task.state in INTERRUPTED_STATES  # somebody waits on this one
        async with self.store.transaction(durable=durable) as tx:
            asked = await record_input_request(self, tx, task, status_msg["parts"] if status_msg else [], now)
            await write_task(tx, task, [user_msg] + ([status_msg] if status_msg else []), new=new)
            await self._state_written(tx, task)
            await self._audit_decision(tx, task, action, decision, principal, now)
        wire = task.to_wire()  # built once: the events and the answer carry the same task
        self._publish("task.updated", task, wire)
        if asked is not None:
            self._publish("approval.created", task, wire, approval_id=asked.id, request="input")
        return wire

    async def _execute(self, agent: Agent, execution: Execution, ctx: TurnContext) -> Reply:
        """Run an action; an agent's exception becomes a failed turn, never a crashed request."""
        try:
            return await agent.execute(execution, ctx)
        except Exception as exc:
            log.exception("agent %s failed on task %s", agent.name, ctx.task_id)
            return Reply(state=TaskState.FAILED, parts=text_parts(f"{agent.name} failed: {type(exc).__name__}: {exc}"))

    async def _audit_decision(
        self, tx: Tx, task: TaskRecord, action: Action, decision: Decision, principal: Principal, now: float
    ) -> None:
        detail = {
            "enforcement": str(decision.enforcement),
            "policy": decision.policy.name if decision.policy else None,
            "tool": action.tool,
            "agent": action.agent,
            "audited": list(decision.audited),
            "reason": decision.reason,
        }
        await tx.audit(
            tenant=task.tenant, kind="policy.decision", actor=principal.sub, subject=task.id, detail=detail, now=now
        )
        metrics.child(metrics.DECISIONS, str(decision.enforcement)).inc()

    async def _answer_over_a2a(
        self, principal: Principal, pending: ApprovalRecord, answer: dict[str, Any]
    ) -> dict[str, Any]:
        """A DataPart of values sent to a paused task: the same resolve path as every other surface."""
        try:
            outcome = await self.resolve(
                ResolveRequest(ref=pending.id, resolution=answer, surface="a2a", principal=principal)
            )
        except MeshError as exc:
            code = rpc.INVALID_PARAMS if exc.status == 400 else rpc.UNSUPPORTED_OPERATION
            prefix = "Invalid params: " if exc.status == 400 else ""
            raise rpc.RpcError(code, f"{prefix}{exc.message}", {"status": exc.status, "field": exc.field}) from None
        return outcome.task

    async def _note_while_held(self, task: TaskRecord, message: Message, form: dict[str, Any]) -> dict[str, Any]:
        """A message to a held task is kept in its history; it never resolves the hold. Values it gives for
        the hold's form are kept masked where the form says they are sensitive, as an answer's would be."""
        stored = message.dump()
        for part in stored.get("parts", []):
            if part.get("kind") == "data" and isinstance(part.get("data"), dict):
                part["data"] = redact(form, part["data"])
        async with self.store.transaction() as tx:
            await tx.append_history(task.id, [stored])
        return task.to_wire()

    # ---------------------------------------------------------------- holds

    async def _hold(
        self,
        principal: Principal,
        task: TaskRecord,
        user_msg: dict[str, Any],
        action: Action,
        decision: Decision,
        now: float,
        *,
        new: bool,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        policy = decision.policy
        assert policy is not None
        form = held_form(action.tool, decision.form_fields)
        approval_id = new_id()
        # a deadline must stay a representable date; ten years is far beyond any human wait
        timeout = min(decision.timeout_s or self.config.approval_timeout_s, MAX_TIMEOUT_S)
        token = callback_token(self.config.callback_key, approval_id)
        approval = ApprovalRecord(
            id=approval_id,
            task_id=task.id,
            tenant=task.tenant,
            kind="approval",
            status=PENDING,
            policy=policy.name,
            tool=action.tool,
            action=action_to_dict(action),
            form=form,
            requested_by=principal.sub,
            requester_roles=sorted(principal.roles),
            session_id=task.context_id,
            user_input=action.text or "",
            channels=list(decision.channels),
            token_hash=token_hash(token),
            fingerprint=action.fingerprint(),
            expires_at=now + timeout,
            created_at=now,
            updated_at=now,
            run_id=run_id,
        )
        expires = iso(approval.expires_at)
        task.metadata = {
            **task.metadata,
            "airlock": {
                **(task.metadata.get("airlock") or {}),
                "approvalId": approval_id,
                "policy": policy.name,
                "expiresAt": expires,
            },
        }
        status_msg = set_state(task, TaskState.INPUT_REQUIRED, [form_part(form)], now)
        async with self.store.transaction() as tx:
            await write_task(tx, task, [user_msg] + ([status_msg] if status_msg else []), new=new)
            await self._state_written(
                tx,
                task,
                "approval.created",
                approval_id=approval_id,
                policy=policy.name,
                tool=action.tool,
                run_id=run_id,
                expires_at=expires,
            )
            await tx.insert_approval(approval)
            for channel in approval.channels:
                await tx.enqueue(
                    "notify",
                    {
                        "tenant": task.tenant,
                        "channel": channel,
                        "approval_id": approval_id,
                        "event": "approval.requested",
                    },
                    not_before=now,
                )
            await self._audit_decision(tx, task, action, decision, principal, now)
        self._publish("approval.created", task, approval_id=approval_id)
        return task.to_wire()

    # ---------------------------------------------------------------- events

    async def _state_written(self, tx: Tx, task: TaskRecord, kind: str = "task.updated", **data: Any) -> None:
        """Inside the transaction that changed ``task``: run the state hooks (push rows) and append the
        event to the durable log (``/v1/events/stream`` resumes from it), so none is lost to a crash."""
        for hook in self.state_hooks:
            await hook(tx, task)
        await tx.log_event(
            tenant=task.tenant,
            kind=kind,
            subject=task.id,
            data={"task_id": task.id, "state": task.state, **data},
            now=task.updated_at,
        )

    def _publish(self, kind: str, task: TaskRecord, wire: dict[str, Any] | None = None, **data: Any) -> None:
        """After commit: tell subscribers, with the task as stored (history left out; ``wire`` when the
        caller has built it already)."""
        data.setdefault("task", wire if wire is not None else task.to_wire())
        outbox = PUSH_QUEUED if task.pushes_queued else frozenset()
        task.pushes_queued = False
        self.events.publish(
            Event(kind=kind, tenant=task.tenant, subject=task.id, data={"state": task.state, **data}, outbox=outbox)
        )


@functools.lru_cache(maxsize=512)
def _form_json(tool: str | None, fields: bytes) -> bytes:
    return orjson.dumps(approval_form(tool, orjson.loads(fields)))


def held_form(tool: str | None, fields: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The approval form of a hold, built and checked once per tool and set of fields (a policy's fields
    seldom change; building and checking them again was a twentieth of a hold). Each hold gets a copy of its
    own, so nothing one task does to its form reaches another."""
    return orjson.loads(_form_json(tool, orjson.dumps(list(fields))))


async def write_task(tx: Tx, task: TaskRecord, messages: list[dict[str, Any]], *, new: bool) -> None:
    """A turn's write of its task and the messages it adds: a new task with its first messages in one go."""
    if new:
        await tx.insert_task(task, messages)
    else:
        await tx.update_task(task)
        await tx.append_history(task.id, messages)


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


def action_to_dict(action: Action) -> dict[str, Any]:
    return {
        "agent": action.agent,
        "tool": action.tool,
        "arguments": dict(action.arguments),
        "text": action.text,
        "context": dict(action.context),
    }


def action_from_dict(data: dict[str, Any]) -> Action:
    return Action(
        agent=data.get("agent"),
        tool=data.get("tool"),
        arguments=data.get("arguments") or {},
        text=data.get("text") or "",
        context=data.get("context") or {},
    )
