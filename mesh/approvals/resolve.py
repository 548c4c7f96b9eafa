"""The one resolve path: every surface that answers a held task ends here.

Order (the same for every surface): check (exists in the caller's tenant, the caller may resolve it,
the values pass the form's schema) → decide (one conditional write; losing it means someone else won or
time ran out) → in the same transaction the task's new state, history and audit entry → after commit,
publish and run the approved action (only the winner gets this far, so it runs once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from a2ui import ResolutionError, decision_of, field_ids, redact, sensitive_fields, validate_resolution
from mesh import metrics
from mesh.approvals.announce import announce
from mesh.approvals.expiry import Expiry
from mesh.approvals.records import INPUT
from mesh.approvals.runner import Runner
from mesh.auth import Principal
from mesh.core.changes import TaskChanges
from mesh.core.kernel import Clock
from mesh.core.policies import PolicyCache
from mesh.core.taskstate import allow_parts, set_state, text_parts
from mesh.credentials import token_matches
from mesh.delivery.channels.base import PROGRESS, RESOLVED
from mesh.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound, Unauthorized
from mesh.policy import Action, Enforcement
from mesh.store import PENDING, ApprovalRecord, Store, TaskRecord, iso
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


REASON_MAX = 1000
QUORUM_RETRIES = 64  # each lost compare-and-set means another approval landed; a quorum is at most 10


@dataclass(frozen=True, slots=True)
class Extras:
    """What a resolution may carry beside the form's values: a reason (any decision; shown on a denial) and,
    under a policy's ``allow_edits``, the call's new arguments. A form that has fields with these ids keeps
    them as its own values (masked where sensitive), never read as either."""

    reason: str | None
    arguments: dict[str, Any] | None


def split_extras(form: dict[str, Any], resolution: Any) -> tuple[Any, Extras]:
    if not isinstance(resolution, dict):
        return resolution, Extras(None, None)
    ids = set(field_ids(form))
    values = {k: v for k, v in resolution.items() if k in ids or k not in ("reason", "arguments")}
    reason = None if "reason" in ids else resolution.get("reason")
    if reason is not None:
        if not isinstance(reason, str):
            raise InvalidInput("reason must be a string", field="reason")
        if len(reason) > REASON_MAX:
            raise InvalidInput(f"reason must be at most {REASON_MAX} characters", field="reason")
        reason = reason.strip() or None
    arguments = None if "arguments" in ids else resolution.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise InvalidInput("arguments must be an object (the tool call's new arguments)", field="arguments")
    return values, Extras(reason, arguments)


@dataclass(frozen=True, slots=True)
class Step:
    """A checked resolution on its way to the write: who, what, the values as stored (masked) and as the
    action gets them, the reason, and the edited call."""

    req: ResolveRequest
    resolver: str
    decision: str
    stored: dict[str, Any]
    values: dict[str, Any]
    reason: str | None
    edited: dict[str, Any] | None


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
    """The one resolve path. ``runner`` runs what an approval lets go ahead (the turn code implements it);
    ``policies`` judge an approver's edit of a call before it may run."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        changes: TaskChanges,
        expiry: Expiry,
        runner: Runner,
        policies: PolicyCache,
    ) -> None:
        self._store = store
        self._clock = clock
        self._changes = changes
        self._expiry = expiry
        self._runner = runner
        self._policies = policies

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
        raw, extras = split_extras(approval.form, req.resolution)
        try:
            values = validate_resolution(approval.form, raw)
        except ResolutionError as exc:
            raise InvalidInput(str(exc), field=exc.field) from None
        decision = "submit" if approval.kind == INPUT else decision_of(approval.form, values)
        edited = await self._edited_call(approval, decision, extras.arguments)
        step = Step(req, resolver, decision, redact(approval.form, values), values, extras.reason, edited)
        if decision == "approve" and approval.approvals_required > 1:
            return await self._approve_in_quorum(approval, step)
        outcome = await self._decide(approval, step)
        if outcome is None:
            latest = await self._store.get_approval(approval.id)
            assert latest is not None
            _check_open(latest, self._clock())
            raise Conflict("already resolved")  # pending and unexpired cannot lose the write
        return outcome

    async def _edited_call(
        self, approval: ApprovalRecord, decision: str, arguments: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The call as the approver changed it, after the tenant's policies judged it again (a call an edit
        makes blocked is refused, and the hold stays pending); None when nothing was changed."""
        if arguments is None:
            return None
        if approval.kind == INPUT:
            raise InvalidInput("arguments: an answer to a request for values has no call to edit", field="arguments")
        if decision != "approve":
            raise InvalidInput("arguments: only an approval can change the call", field="arguments")
        if not approval.allow_edits:
            raise InvalidInput("arguments: this hold's policy does not allow edits (allow_edits)", field="arguments")
        if approval.approvals_required > 1:
            raise InvalidInput(
                "arguments: a hold that needs several approvers is approved as it was asked", field="arguments"
            )
        original = Action.from_dict(approval.action)
        if original.tool is None:
            raise InvalidInput("arguments: this hold is not a tool call", field="arguments")
        edited = replace(original, arguments=arguments)
        verdict = (await self._policies.get(approval.tenant)).evaluate(edited)
        if verdict.enforcement == Enforcement.BLOCK:
            name = verdict.policy.name if verdict.policy else "a policy"
            raise InvalidInput(
                f"arguments: the edited call is blocked by policy {name}: {verdict.reason}", field="arguments"
            )
        return edited.to_dict()

    async def _approve_in_quorum(self, approval: ApprovalRecord, step: Step) -> Outcome:
        """One approval of a hold that needs several, from distinct signed-in people. Each is a
        compare-and-set on the approvals given so far; the one that completes the quorum is also the
        decision's conditional write, so the hold is approved, and its action run, exactly once."""
        principal = step.req.principal
        if principal is None:
            raise Forbidden(
                f"this hold needs {approval.approvals_required} approvals from signed-in approvers; "
                "a link or a callback token names no one"
            )
        if principal.sub == approval.requested_by:
            raise Forbidden("the caller that caused this hold cannot approve it")
        for _ in range(QUORUM_RETRIES):
            if approval.approved_by(principal.sub):
                raise Conflict("already approved by you")
            now = self._clock()
            before = approval.approvals
            after = [*before, {"by": principal.sub, "at": iso(now), "surface": step.req.surface}]
            if len(after) >= approval.approvals_required:
                outcome = await self._decide(approval, step, approvals=(before, after))
                if outcome is not None:
                    return outcome
            elif await self._add_approval(approval, step, before, after, now):
                task = await self._store.get_task(approval.tenant, approval.task_id)
                return Outcome(approval=approval, decision=step.decision, task=task.to_wire() if task else {})
            latest = await self._store.get_approval(approval.id)
            assert latest is not None
            _check_open(latest, self._clock())
            approval = latest
        raise Conflict("too many approvals at once; try again")

    async def _add_approval(
        self,
        approval: ApprovalRecord,
        step: Step,
        before: list[dict[str, Any]],
        after: list[dict[str, Any]],
        now: float,
    ) -> bool:
        """Record an approval that does not yet make the quorum; False when another write came first."""
        task = await self._store.get_task(approval.tenant, approval.task_id)
        if task is None:
            raise NotFound(f"no task {approval.task_id}")
        airlock = {**(task.metadata.get("airlock") or {}), "approvals": after}
        task.metadata = {**task.metadata, "airlock": airlock}
        task.updated_at = now
        async with self._store.transaction() as tx:
            if not await tx.add_approval(approval.id, before=before, after=after, now=now):
                return False
            await tx.update_task(task)
            await self._changes.record(
                tx,
                task,
                "approval.progress",
                approval_id=approval.id,
                approvals=len(after),
                approvals_required=approval.approvals_required,
                surface=step.req.surface,
            )
            await tx.audit(
                tenant=task.tenant,
                kind="approval.approved",
                actor=credential_of(step.req),
                subject=approval.id,
                detail={
                    "task": task.id,
                    "surface": step.req.surface,
                    "policy": approval.policy,
                    "approvals": len(after),
                    "approvals_required": approval.approvals_required,
                },
                now=now,
            )
            await announce(tx, approval, PROGRESS, now)
        approval.approvals, approval.updated_at = after, now
        metrics.child(metrics.PARTIAL_APPROVALS, step.req.surface).inc()
        self._changes.publish("approval.progress", task, approval_id=approval.id, approvals=len(after))
        return True

    async def _decide(
        self,
        approval: ApprovalRecord,
        step: Step,
        *,
        approvals: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None,
    ) -> Outcome | None:
        """The decision's one conditional write and everything written with it; None when it lost."""
        req, resolver, decision = step.req, step.resolver, step.decision
        status = STATUS_OF_DECISION[decision]
        asked = approval.kind == INPUT
        now = self._clock()
        task = await self._store.get_task(approval.tenant, approval.task_id)
        if task is None:
            raise NotFound(f"no task {approval.task_id}")
        guard = task.agent == "guard"
        by = ", ".join(a["by"] for a in approvals[1]) if approvals else resolver
        if approvals:
            airlock = {**(task.metadata.get("airlock") or {}), "approvals": approvals[1]}
            task.metadata = {**task.metadata, "airlock": airlock}
        edit = edit_summary(approval.action, step.edited) if step.edited else None
        if asked:
            status_msg = set_state(task, TaskState.WORKING, text_parts(f"Input received from {resolver}."), now)
        elif decision == "deny":
            text = f"Denied by {resolver}: {step.reason}" if step.reason else f"Denied by {resolver}."
            extra = {"reason": "denied", "policy": approval.policy, "deniedBy": resolver}
            if step.reason:
                extra["comment"] = step.reason
            status_msg = set_state(task, TaskState.REJECTED, text_parts(text), now, extra)
        elif guard:
            extra = {"arguments": step.edited["arguments"], "edited": edit} if step.edited and edit else {}
            parts = allow_parts(approval.tool, policy=approval.policy, approvedBy=by, values=step.stored, **extra)
            status_msg = set_state(task, TaskState.COMPLETED, parts, now)
        else:
            edited_note = " with edits" if step.edited else ""
            status_msg = set_state(task, TaskState.WORKING, text_parts(f"Approved by {by}{edited_note}; running."), now)
        answer = _resolution_message(task, step.stored, approval, req.surface, step.reason, edit)
        async with self._store.transaction() as tx:
            won = await tx.decide_approval(
                approval.id,
                status=status,
                now=now,
                resolved_by=resolver,
                surface=req.surface,
                values=step.stored,
                reason=step.reason,
                approvals=approvals,
                edited_action=step.edited,
            )
            if won:
                await tx.update_task(task)
                event: dict[str, Any] = {"reason": step.reason} if step.reason else {}
                if approvals:
                    event["approvals"] = len(approvals[1])
                await self._changes.record(
                    tx,
                    task,
                    "approval.resolved",
                    approval_id=approval.id,
                    status=status,
                    surface=req.surface,
                    resolved_by=resolver,
                    policy=approval.policy,
                    **event,
                )
                # an answer to a form goes into history as the agent's next turn (masked), not twice
                await tx.append_history(task.id, ([] if asked else [answer]) + ([status_msg] if status_msg else []))
                detail: dict[str, Any] = {
                    "task": task.id,
                    "status": status,
                    "surface": req.surface,
                    "policy": approval.policy,
                }
                if req.principal is not None:
                    detail["principal"] = req.principal.sub
                actor = credential_of(req)
                if resolver != actor:
                    detail["resolved_by"] = resolver  # the name the caller gave: shown, not trusted
                if step.reason:
                    detail["reason"] = step.reason
                if approvals:
                    detail["approvals"] = [a["by"] for a in approvals[1]]
                if edit:
                    detail["edit"] = edit
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
            return None
        metrics.child(metrics.RESOLUTIONS, status, req.surface).inc()
        approval.status, approval.resolved_by, approval.resolved_at = status, resolver, now
        approval.surface, approval.values, approval.reason = req.surface, step.stored, step.reason
        approval.edited_action = step.edited
        if approvals:
            approval.approvals = approvals[1]
        self._changes.publish("approval.resolved", task, approval_id=approval.id, status=status)
        if asked:
            # the next turn runs as the verified caller; a name the request only states is never a principal
            principal = req.principal or Principal(sub=credential_of(req), tenant=approval.tenant, roles=frozenset())
            wire = await self._runner.answer_turn(principal, task, approval, step.values)
            return Outcome(approval=approval, decision=decision, task=wire)
        if decision == "approve" and not guard:
            await self._runner.run_approved(task, approval, step.values)
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


def edit_summary(original: dict[str, Any], edited: dict[str, Any]) -> dict[str, Any]:
    """What history and the audit trail keep of an edit: both calls' fingerprints and the arguments that
    changed (their names, never their values: an argument may be a secret)."""
    before, after = original.get("arguments") or {}, edited.get("arguments") or {}
    return {
        "original": Action.from_dict(original).fingerprint(),
        "edited": Action.from_dict(edited).fingerprint(),
        "changed": sorted(k for k in before.keys() | after.keys() if before.get(k, _ABSENT) != after.get(k, _ABSENT)),
    }


_ABSENT = object()


def _resolution_message(
    task: TaskRecord,
    values: dict[str, Any],
    approval: ApprovalRecord,
    surface: str,
    reason: str | None = None,
    edit: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The resolution as a user turn in the task's history (sensitive values already masked)."""
    airlock: dict[str, Any] = {"resolution": approval.id, "surface": surface, "at": utc_now()}
    if reason:
        airlock["reason"] = reason
    if edit:
        airlock["edit"] = edit
    return {
        "kind": "message",
        "role": "user",
        "messageId": new_id(),
        "taskId": task.id,
        "contextId": task.context_id,
        "parts": [{"kind": "data", "data": values}],
        "metadata": {"airlock": airlock},
    }
