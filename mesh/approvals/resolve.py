"""The one resolve path: every surface that answers a held task ends here.

Order (the same for every surface): check (exists in the caller's tenant, the caller may resolve it,
the values pass the form's schema) → decide (one conditional write; losing it means someone else won or
time ran out) → in the same transaction the task's new state, history and audit entry → after commit,
publish and run the approved action (only the winner gets this far, so it runs once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from a2ui import ResolutionError, decision_of, redact, sensitive_fields, validate_resolution
from mesh import metrics
from mesh.approvals.announce import announce
from mesh.approvals.expiry import Expiry
from mesh.approvals.records import INPUT
from mesh.approvals.runner import Runner
from mesh.auth import Principal
from mesh.core.changes import TaskChanges
from mesh.core.kernel import Clock
from mesh.core.taskstate import allow_parts, set_state, text_parts
from mesh.credentials import token_matches
from mesh.delivery.channels.base import RESOLVED
from mesh.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound, Unauthorized
from mesh.store import PENDING, ApprovalRecord, Store, TaskRecord
from mesh.wire.models import TaskState, new_id, utc_now

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


async def find_approval(store: Store, ref: str) -> ApprovalRecord | None:
    """An approval by its own id, or the latest one of a task (the /messages surface uses task ids)."""
    approval = await store.get_approval(ref)
    return approval if approval is not None else await store.latest_approval(ref)


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
    if approval.kind == INPUT:
        # an agent asked for values: the person who sent the message answers, or an approver for them
        if not (principal.can_resolve or principal.sub == approval.requested_by):
            raise Forbidden("answering needs the approver or admin role, or to be the one who asked the task")
        return req.resolved_by or principal.sub
    if not principal.can_resolve:
        raise Forbidden("resolving needs the approver or admin role")
    # separation of duties: an automated caller never resolves a hold it caused; under a policy's
    # distinct_approver (kept on the hold as second_pair) nobody does
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


class Resolver:
    """The one resolve path. ``runner`` runs what an approval lets go ahead (the turn code implements it)."""

    def __init__(self, store: Store, clock: Clock, changes: TaskChanges, expiry: Expiry, runner: Runner) -> None:
        self._store = store
        self._clock = clock
        self._changes = changes
        self._expiry = expiry
        self._runner = runner

    async def resolve(self, req: ResolveRequest) -> Outcome:
        approval = await find_approval(self._store, req.ref)
        if approval is None:
            if req.principal is None and not req.preauthorized:  # a bare token learns nothing of which ids exist
                raise Unauthorized("the callback token is not valid for this approval")
            raise NotFound(f"no pending message {req.ref}")
        resolver = _authorize(approval, req)
        now = self._clock()
        if approval.status == PENDING and approval.expires_at <= now:
            await self._expiry.expire(approval)
        _check_open(approval, now)
        try:
            values = validate_resolution(approval.form, req.resolution)
        except ResolutionError as exc:
            raise InvalidInput(str(exc), field=exc.field) from None
        asked = approval.kind == INPUT
        decision = "submit" if asked else decision_of(approval.form, values)
        status = STATUS_OF_DECISION[decision]
        stored_values = redact(approval.form, values)

        task = await self._store.get_task(approval.tenant, approval.task_id)
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
        async with self._store.transaction() as tx:
            won = await tx.decide_approval(
                approval.id, status=status, now=now, resolved_by=resolver, surface=req.surface, values=stored_values
            )
            if won:
                await tx.update_task(task)
                await self._changes.record(
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
                await announce(tx, approval, RESOLVED, now)
        if not won:
            latest = await self._store.get_approval(approval.id)
            assert latest is not None
            _check_open(latest, self._clock())
            raise Conflict("already resolved")  # pending and unexpired cannot lose the write
        metrics.child(metrics.RESOLUTIONS, status, req.surface).inc()
        approval.status, approval.resolved_by, approval.resolved_at = status, resolver, now
        approval.surface, approval.values = req.surface, stored_values
        self._changes.publish("approval.resolved", task, approval_id=approval.id, status=status)
        if asked:
            # the next turn runs as the verified caller; a name the request only states is never a principal
            principal = req.principal or Principal(sub=credential_of(req), tenant=approval.tenant, roles=frozenset())
            wire = await self._runner.answer_turn(principal, task, approval, values)
            return Outcome(approval=approval, decision=decision, task=wire)
        if decision == "approve" and not guard:
            await self._runner.run_approved(task, approval, values)
        return Outcome(approval=approval, decision=decision, task=task.to_wire())

    async def recover(self) -> int:
        """Run approved actions a stopped server never finished (approved, task still ``working``).

        Called at start. Sensitive values are never stored, so an action whose form had any cannot be
        re-run faithfully: its task fails with a clear message instead.
        """
        count = 0
        for approval in await self._store.approved_unfinished():
            task = await self._store.get_task(approval.tenant, approval.task_id)
            if task is None:
                continue
            if sensitive_fields(approval.form):
                text = (
                    "The server stopped before the approved action ran; its sensitive inputs are not kept. "
                    "Send it again."
                )
                await self._runner.fail(task, text, reason="interrupted")
            else:
                await self._runner.run_approved(task, approval, dict(approval.values or {}))
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
