"""The one resolve path: every surface that answers a held task ends here.

Order (the same for every surface): check (exists in the caller's tenant, the caller may resolve it,
the values pass the form's schema) → decide (one conditional write; losing it means someone else won or
time ran out) → in the same transaction the task's new state, history and audit entry → after commit,
publish and run the approved action (only the winner gets this far, so it runs once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from a2ui import ResolutionError, decision_of, redact, sensitive_fields, validate_resolution
from mesh import jsonrpc as rpc
from mesh import metrics
from mesh.agents.base import Execution, Reply, TurnContext
from mesh.auth import Principal
from mesh.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound, Unauthorized
from mesh.input_requests import continue_with_answer, record_input_request
from mesh.models import TaskState, new_id, utc_now
from mesh.store import PENDING, ApprovalRecord, TaskRecord
from mesh.taskstate import allow_parts, set_state, text_parts
from mesh.tokens import token_matches

if TYPE_CHECKING:
    from mesh.service import Mesh

log = logging.getLogger("airlock.resolve")

STATUS_OF_DECISION = {"approve": "approved", "deny": "denied", "submit": "submitted"}


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    """Who resolves what: a principal (JWT) or a callback token, and the surface it came through."""

    ref: str
    resolution: Any
    surface: str
    principal: Principal | None = None
    callback_token: str | None = None
    resolved_by: str | None = None
    preauthorized: bool = False  # the surface verified a credential bound to this approval (a signed link)


@dataclass(frozen=True, slots=True)
class Outcome:
    approval: ApprovalRecord
    decision: str
    task: dict[str, Any]

    @property
    def new_state(self) -> str:
        return self.task["status"]["state"]


async def find_approval(mesh: Mesh, ref: str) -> ApprovalRecord | None:
    """An approval by its own id, or the latest one of a task (the /messages surface uses task ids)."""
    approval = await mesh.store.get_approval(ref)
    return approval if approval is not None else await mesh.store.latest_approval(ref)


def _authorize(approval: ApprovalRecord, req: ResolveRequest) -> str:
    """Check the credential against the approval; return the resolver's name."""
    if req.principal is None:
        if req.preauthorized:
            return req.resolved_by or "signed-link"
        if req.callback_token is None:
            raise Unauthorized("a Bearer token or a callback_token is required")
        if not token_matches(req.callback_token, approval.token_hash):
            raise Unauthorized("the callback token is not valid for this approval")
        return req.resolved_by or "callback-token"
    principal = req.principal
    if principal.tenant != approval.tenant:
        raise NotFound(f"no pending message {req.ref}")
    if approval.kind == "input":
        # an agent asked for values: the person who sent the message answers, or an approver for them
        if not (principal.can_resolve or principal.sub == approval.requested_by):
            raise Forbidden("answering needs the approver or admin role, or to be the one who asked the task")
        return req.resolved_by or principal.sub
    if not principal.can_resolve:
        raise Forbidden("resolving needs the approver or admin role")
    if principal.sub == approval.requested_by and (
        principal.has("agent") or "agent" in approval.requester_roles or approval.second_pair
    ):
        raise Forbidden("the caller that caused this hold cannot resolve it")
    return req.resolved_by or principal.sub


def credential_of(req: ResolveRequest) -> str:
    """Who the audit trail names: the verified identity (a JWT's subject, or the kind of single-use
    credential), never a name the request merely states."""
    if req.principal is not None:
        return req.principal.sub
    return "signed-link" if req.preauthorized else "callback-token"


def _check_open(approval: ApprovalRecord, now: float) -> None:
    if approval.status == "expired" or (approval.status == PENDING and approval.expires_at <= now):
        raise Gone("this approval has expired")
    if approval.status != PENDING:
        raise Conflict(f"already resolved: {approval.status}")


class ResolvePath:
    """Mixed into :class:`mesh.service.Mesh`: resolution and expiry of approvals."""

    async def resolve(self: Mesh, req: ResolveRequest) -> Outcome:  # type: ignore[misc]
        approval = await find_approval(self, req.ref)
        if approval is None:
            if req.principal is None and not req.preauthorized:  # a bare token learns nothing of which ids exist
                raise Unauthorized("the callback token is not valid for this approval")
            raise NotFound(f"no pending message {req.ref}")
        resolver = _authorize(approval, req)
        now = self.clock()
        if approval.status == PENDING and approval.expires_at <= now:
            await self.expire(approval)
        _check_open(approval, now)
        try:
            values = validate_resolution(approval.form, req.resolution)
        except ResolutionError as exc:
            raise InvalidInput(str(exc), field=exc.field) from None
        asked = approval.kind == "input"
        decision = "submit" if asked else decision_of(approval.form, values)
        status = STATUS_OF_DECISION[decision]
        stored_values = redact(approval.form, values)

        task = await self.store.get_task(approval.tenant, approval.task_id)
        if task is None:
            raise NotFound(f"no task {approval.task_id}")
        guard = task.agent == "guard"
        if asked:
            status_msg = set_state(task, TaskState.WORKING, text_parts(f"Input received from {resolver}."), now)
        elif decision == "deny":
            status_msg = set_state(
                task,
                TaskState.REJECTED,
                text_parts(f"Denied by {resolver}."),
                now,
                {"reason": "denied", "policy": approval.policy},
            )
        elif guard:
            parts = allow_parts(approval.tool, policy=approval.policy, approvedBy=resolver, values=stored_values)
            status_msg = set_state(task, TaskState.COMPLETED, parts, now)
        else:
            status_msg = set_state(task, TaskState.WORKING, text_parts(f"Approved by {resolver}; running."), now)
        answer = _resolution_message(task, stored_values, approval, req.surface)
        async with self.store.transaction() as tx:
            won = await tx.decide_approval(
                approval.id, status=status, now=now, resolved_by=resolver, surface=req.surface, values=stored_values
            )
            if won:
                await tx.update_task(task)
                await self._state_written(
                    tx,
                    task,
                    "approval.resolved",
                    approval_id=approval.id,
                    status=status,
                    surface=req.surface,
                    resolved_by=resolver,
                    policy=approval.policy,
                )
                # an answer to a form goes into history as the agent's next turn (masked), not twice
                await tx.append_history(task.id, ([] if asked else [answer]) + ([status_msg] if status_msg else []))
                detail = {"task": task.id, "status": status, "surface": req.surface, "policy": approval.policy}
                if req.principal is not None:
                    detail["principal"] = req.principal.sub
                actor = credential_of(req)
                if resolver != actor:
                    detail["resolved_by"] = resolver  # the name the caller gave: shown, not trusted
                await tx.audit(
                    tenant=task.tenant,
                    kind="approval.resolved",
                    actor=actor,
                    subject=approval.id,
                    detail=detail,
                    now=now,
                )
        if not won:
            latest = await self.store.get_approval(approval.id)
            assert latest is not None
            _check_open(latest, self.clock())
            raise Conflict("already resolved")  # pending and unexpired cannot lose the write
        metrics.child(metrics.RESOLUTIONS, status, req.surface).inc()
        approval.status, approval.resolved_by, approval.resolved_at = status, resolver, now
        approval.surface, approval.values = req.surface, stored_values
        self._publish("approval.resolved", task, approval_id=approval.id, status=status)
        if asked:
            # the next turn runs as the verified caller; a name the request only states is never a principal
            principal = req.principal or Principal(sub=credential_of(req), tenant=approval.tenant, roles=frozenset())
            try:
                wire = await continue_with_answer(self, task, approval, values, principal)
            except Exception as exc:  # the answer is written; a turn that cannot run fails the task, never hangs it
                log.exception("task %s: the turn after the answer to %s failed", task.id, approval.id)
                reason = exc.message if isinstance(exc, rpc.RpcError) else type(exc).__name__
                await self._fail_working(task, f"The answer was recorded, but the agent could not go on: {reason}")
                wire = task.to_wire()
            return Outcome(approval=approval, decision=decision, task=wire)
        if decision == "approve" and not guard:
            await self._run_approved(task, approval, values)
        return Outcome(approval=approval, decision=decision, task=task.to_wire())

    async def _run_approved(
        self: Mesh,
        task: TaskRecord,
        approval: ApprovalRecord,  # type: ignore[misc]
        values: dict[str, Any],
    ) -> None:
        from mesh.service import action_from_dict

        agent = self.agents.get(task.agent or "")
        ctx = TurnContext(
            task_id=task.id,
            context_id=task.context_id,
            tenant=task.tenant,
            sender=approval.requested_by,
            metadata=dict(task.metadata),
        )
        if agent is None:
            reply = Reply(state=TaskState.FAILED, parts=text_parts(f"agent {task.agent!r} is not registered"))
        else:
            execution = Execution(
                action=action_from_dict(approval.action),
                values=values,
                sensitive=sensitive_fields(approval.form),
                key=approval.id,
            )
            reply = await self._execute(agent, execution, ctx)
        now = self.clock()
        status_msg = set_state(task, reply.state, reply.parts, now)
        task.artifacts = task.artifacts + reply.artifacts
        task.metadata = {**task.metadata, **reply.metadata}
        async with self.store.transaction() as tx:
            asked = await record_input_request(self, tx, task, status_msg["parts"] if status_msg else [], now)
            await tx.update_task(task)
            await self._state_written(tx, task)
            await tx.append_history(task.id, [status_msg] if status_msg else [])
        self._publish("task.updated", task)
        if asked is not None:
            self._publish("approval.created", task, approval_id=asked.id, request="input")

    async def _fail_working(self: Mesh, task: TaskRecord, text: str, *, reason: str = "failed") -> None:  # type: ignore[misc]
        """A task left ``working`` by a turn that cannot go on ends ``failed`` (if nothing moved it since)."""
        msg = set_state(task, TaskState.FAILED, text_parts(text), self.clock(), {"reason": reason})
        async with self.store.transaction() as tx:
            if await tx.update_task(task, expect_state=TaskState.WORKING):
                await self._state_written(tx, task)
                await tx.append_history(task.id, [msg] if msg else [])
        self._publish("task.updated", task)

    async def recover(self: Mesh) -> int:  # type: ignore[misc]
        """Run approved actions a stopped server never finished (approved, task still ``working``).

        Called at start. Sensitive values are never stored, so an action whose form had any cannot be
        re-run faithfully: its task fails with a clear message instead.
        """
        count = 0
        for approval in await self.store.approved_unfinished():
            task = await self.store.get_task(approval.tenant, approval.task_id)
            if task is None:
                continue
            if sensitive_fields(approval.form):
                text = (
                    "The server stopped before the approved action ran; its sensitive inputs are not kept. "
                    "Send it again."
                )
                await self._fail_working(task, text, reason="interrupted")
            else:
                await self._run_approved(task, approval, dict(approval.values or {}))
            count += 1
        return count

    async def expire(self: Mesh, approval: ApprovalRecord) -> bool:  # type: ignore[misc]
        """End a pending approval whose time has passed; True when this call did it."""
        now = self.clock()
        task = await self.store.get_task(approval.tenant, approval.task_id)
        async with self.store.transaction() as tx:
            won = await tx.decide_approval(
                approval.id,
                status="expired",
                now=now,
                resolved_by="system",
                surface="expiry",
                values=None,
                reason="expired",
                require_unexpired=False,
            )
            if won and task is not None and approval.expires_at <= now:
                msg = set_state(
                    task,
                    TaskState.REJECTED,
                    text_parts("The approval expired before anyone resolved it."),
                    now,
                    {"reason": "expired", "policy": approval.policy},
                )
                await tx.update_task(task)
                await self._state_written(tx, task, "approval.expired", approval_id=approval.id, policy=approval.policy)
                await tx.append_history(task.id, [msg] if msg else [])
                await tx.audit(
                    tenant=approval.tenant,
                    kind="approval.expired",
                    actor="system",
                    subject=approval.id,
                    detail={"task": task.id},
                    now=now,
                )
        if won:
            metrics.child(metrics.RESOLUTIONS, "expired", "expiry").inc()
            approval.status = "expired"
            if task is not None:
                self._publish("approval.expired", task, approval_id=approval.id)
        return won

    async def expire_due(self: Mesh) -> int:  # type: ignore[misc]
        """Expire every pending approval whose time has passed (the sweeper; also run at start)."""
        count = 0
        for approval in await self.store.due_expiries(self.clock()):
            if await self.expire(approval):
                count += 1
        return count


def _resolution_message(
    task: TaskRecord, values: dict[str, Any], approval: ApprovalRecord, surface: str
) -> dict[str, Any]:
    """The resolution as a user turn in the task's history (sensitive values already masked)."""
    return {
        "kind": "message",
        "role": "user",
        "messageId": new_id(),
        "taskId": task.id,
        "contextId": task.context_id,
        "parts": [{"kind": "data", "data": values}],
        "metadata": {"airlock": {"resolution": approval.id, "surface": surface, "at": utc_now()}},
    }
