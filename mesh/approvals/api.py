"""The approvals API's operations (the ``/v1/approvals`` surface) over the one approval model.

An approval created here is a guard hold like any other: a task in ``input-required`` with its Form,
listed by ``/messages/pending`` too, resolved through the one resolve path. Run grants and persisted
rules are how people say "yes to this again" without approving each call.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from mesh.admin.policies import PolicyAdmin
from mesh.approvals.holds import Holds
from mesh.approvals.records import APPROVAL, new_approval
from mesh.approvals.resolve import Resolver, ResolveRequest, edit_summary
from mesh.auth import Principal
from mesh.core.kernel import Core
from mesh.core.taskstate import GUARD, allow_parts, new_task, set_state
from mesh.errors import Conflict, Forbidden, Gone, InvalidInput
from mesh.policy import Action, Decision, Enforcement, Policy, ScopeType
from mesh.policy.builtin_plugins import call_paths, exec_command
from mesh.store import PENDING, ApprovalRecord, TaskRecord, iso
from mesh.store.base import RunGrant
from mesh.wire.models import TaskState, new_id

API_POLICY = "approvals-api"
PERSIST_PRIORITY = 1_000_000  # above ordinary policies: a person's "always allow this exact call"


def approval_public(approval: ApprovalRecord) -> dict[str, Any]:
    """The approvals API's view of an approval (the same row ``/messages/pending`` lists)."""
    arguments = approval.action.get("arguments") or {}
    paths = call_paths(arguments)
    out: dict[str, Any] = {
        "id": approval.id,
        "task_id": approval.task_id,
        "kind": approval.kind,
        "tool": approval.tool,
        "command": exec_command(arguments),
        "path": paths[0] if paths else None,
        "agent": approval.action.get("agent"),
        "session": approval.session_id,
        "run_id": approval.run_id,
        "message": approval.user_input,
        "policy": approval.policy,
        "status": approval.status,
        "created_at": iso(approval.created_at),
        "expires_at": iso(approval.expires_at),
        **decision_public(approval),
    }
    if approval.allow_edits:
        out["arguments"] = arguments  # what an approver may change
    if approval.status != PENDING:
        out["resolved_at"] = iso(approval.resolved_at)
        out["resolved_by"] = approval.resolved_by
        out["reason"] = approval.reason if approval.status in ("approved", "denied") else None
        out["edited"] = (
            edit_summary(approval.action, approval.edited_action)["changed"] if approval.edited_action else None
        )
    return out


def decision_public(approval: ApprovalRecord) -> dict[str, Any]:
    """What every listing shows of how a hold is being decided: its quorum and the approvals so far, whether
    it escalated, whether an approver may edit the call."""
    return {
        "approvals_required": approval.approvals_required,
        "approvals": list(approval.approvals),
        "escalated_at": iso(approval.escalated_at),
        "allow_edits": approval.allow_edits,
    }


def persist_config(approval: ApprovalRecord) -> dict[str, Any] | None:
    """The ``exact_call`` config that allows exactly this call again (tool plus its one command or path),
    or None when the call has no such exact form (no tool, no command, several paths)."""
    if approval.kind != APPROVAL or not approval.tool:
        return None
    arguments = approval.action.get("arguments") or {}
    command, paths = exec_command(arguments), call_paths(arguments)
    if command is not None:
        return {"tool": approval.tool, "command": command}
    if len(paths) == 1:
        return {"tool": approval.tool, "path": paths[0]}
    return None


def persist_rule_name(approval: ApprovalRecord) -> str:
    return f"auto-allow-{hashlib.sha256((approval.fingerprint or approval.id).encode()).hexdigest()[:16]}"


class ApprovalsApi:
    def __init__(self, core: Core, holds: Holds, resolver: Resolver, policy_admin: PolicyAdmin) -> None:
        self._store = core.store
        self._config = core.config
        self._clock = core.clock
        self._policies = core.policies
        self._changes = core.changes
        self._holds = holds
        self._resolver = resolver
        self._policy_admin = policy_admin

    async def create_approval(
        self,
        principal: Principal,
        *,
        tool: str,
        agent: str,
        message: str,
        command: str | None = None,
        path: str | None = None,
        run_id: str | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        """Queue a tool call for review. Returns (created, answer): created False when a run grant
        approved it on the spot. The request's shape (non-blank strings, their bounds) is checked where it
        is parsed (``gateway.models.approvals.ApprovalCreate``); the policies and grants are checked here."""
        arguments: dict[str, Any] = {}
        if command is not None:
            arguments["command"] = command
        if path is not None:
            arguments["path"] = path
        action = Action(agent=agent, tool=tool, arguments=arguments, text=message, context={"run_id": run_id})
        now = self._clock()
        task = new_task(principal.tenant, principal.sub, principal.roles, now, context_id=run_id, agent=GUARD)
        user_msg = {
            "kind": "message",
            "role": "user",
            "messageId": new_id(),
            "taskId": task.id,
            "contextId": task.context_id,
            "parts": [
                {"kind": "text", "text": message},
                {"kind": "data", "data": {"tool": tool, "arguments": arguments}},
            ],
        }
        policies = await self._policies.get(principal.tenant)
        decision = policies.evaluate(action)
        if decision.enforcement == Enforcement.BLOCK:  # a block is final: no grant and no person overrides it
            name = decision.policy.name if decision.policy else "policy"
            raise Forbidden(f"blocked by policy {name}: {decision.reason}")
        if run_id is not None:
            grant = await self._store.active_grant(principal.tenant, principal.sub, agent, run_id, now)
            if grant is not None:
                note = f"approved by the run grant {grant.run_id} that {grant.granted_by} opened"
                return False, await self._approve_at_creation(
                    principal,
                    task,
                    user_msg,
                    action,
                    now,
                    by=f"grant:{grant.granted_by}",
                    surface="run-grant",
                    note=note,
                    run_id=run_id,
                    audit=("grant.used", grant.granted_by),
                )
        if decision.enforcement == Enforcement.ALLOW and decision.policy is not None:
            note = f"allowed by policy {decision.policy.name}"
            return False, await self._approve_at_creation(
                principal,
                task,
                user_msg,
                action,
                now,
                by=f"policy:{decision.policy.name}",
                surface="policy",
                note=note,
                run_id=run_id,
                audit=("policy.allowed", principal.sub),
            )
        if not (decision.enforcement == Enforcement.REQUIRE_APPROVAL and decision.policy is not None):
            # no policy of the tenant's asks for this call: it is held because its caller asked
            policy = Policy(
                tenant=principal.tenant,
                name=API_POLICY,
                scope_type=ScopeType.TOOL,
                enforcement=Enforcement.REQUIRE_APPROVAL,
                plugin="always",
                config={},
            )
            decision = Decision(enforcement=Enforcement.REQUIRE_APPROVAL, policy=policy, reason=message)
        # else held under the policy that asks for it: its quorum, escalation, edits, timeout and channels
        sensitive = policies.sensitive_fields
        wire = await self._holds.hold(
            principal, task, user_msg, action, decision, now, new=True, run_id=run_id, sensitive=sensitive
        )
        approval_id = wire["metadata"]["airlock"]["approvalId"]
        return True, {
            "id": approval_id,
            "task_id": task.id,
            "status": "pending",
            "expires_at": wire["metadata"]["airlock"]["expiresAt"],
        }

    async def _approve_at_creation(
        self,
        principal: Principal,
        task: TaskRecord,
        user_msg: dict[str, Any],
        action: Action,
        now: float,
        *,
        by: str,
        surface: str,
        note: str,
        run_id: str | None,
        audit: tuple[str, str],
    ) -> dict[str, Any]:
        """A call people already said yes to (a run grant, a persisted rule): approved on the spot, and
        the audit trail says why."""
        approval = new_approval(
            task,
            kind=APPROVAL,
            action=action,
            form={},
            requested_by=principal.sub,
            requester_roles=sorted(principal.roles),
            user_input=action.text,
            now=now,
            expires_at=now,
            callback_key=None,  # approved already: nothing is left for a token to resolve
            policy=API_POLICY,
            run_id=run_id,
        )
        approval.status, approval.resolved_at, approval.resolved_by = "approved", now, by
        approval.surface, approval.values, approval.reason = surface, {"decision": "approve"}, note
        approval_id = approval.id
        status_msg = set_state(task, TaskState.COMPLETED, allow_parts(action.tool, approvedBy=by), now)
        task.metadata = {"airlock": {"approvalId": approval_id, "policy": API_POLICY}}
        kind, actor = audit
        async with self._store.transaction() as tx:
            await tx.insert_task(task, [user_msg] + ([status_msg] if status_msg else []))
            await tx.insert_approval(approval)
            await self._changes.record(
                tx,
                task,
                "approval.resolved",
                approval_id=approval_id,
                status="approved",
                surface=surface,
                resolved_by=by,
                run_id=run_id,
            )
            await tx.audit(
                tenant=task.tenant,
                kind=kind,
                actor=actor,
                subject=approval_id,
                detail={"run_id": run_id, "agent": action.agent, "tool": action.tool, "note": note},
                now=now,
            )
        self._changes.publish("approval.resolved", task, approval_id=approval_id, status="approved")
        return {"id": approval_id, "task_id": task.id, "status": "approved", "message": note}

    async def persist_rule(self, approval: ApprovalRecord, actor: str) -> dict[str, Any]:
        """Allow the identical call from now on: an ``exact_call`` policy (tool plus exact command or path)."""
        config = persist_config(approval)
        if config is None:
            raise InvalidInput("persist needs a tool call with one exact command or path", field="persist")
        name = persist_rule_name(approval)
        body = {
            "name": name,
            "description": f"Allowed from now on by {actor} (approval {approval.id})",
            "scope_type": "tool",
            "enforcement": "allow",
            "priority": PERSIST_PRIORITY,
            "evaluator": {"plugin": "exact_call", "config": config},
        }
        if await self._store.get_policy(approval.tenant, name) is None:
            try:
                await self._policy_admin.create_policy(approval.tenant, actor, body)
            except Conflict:
                pass  # the same rule, written concurrently: persisted either way
        async with self._store.transaction() as tx:
            await tx.audit(
                tenant=approval.tenant,
                kind="rule.persisted",
                actor=actor,
                subject=approval.id,
                detail={"policy": name, "rule": config},
                now=self._clock(),
            )
        return body

    async def bulk_resolve(
        self,
        principal: Principal,
        run_id: str,
        action: Literal["approve", "deny"],
        resolved_by: str | None,
        ids: list[str] | None,
    ) -> list[str]:
        """Resolve every pending approval of ``run_id`` (``ids``, when given, must be that set: what the person
        reviewed); approving opens run grants. The request's shape is checked where it is parsed
        (``gateway.models.approvals.BulkResolve``)."""
        if not principal.can_resolve:
            raise Forbidden("resolving needs the approver or admin role")
        now = self._clock()
        pending, _ = await self._store.list_pending(
            principal.tenant, session_id=None, now=now, limit=10_000, offset=0, run_id=run_id
        )
        if ids is not None and set(ids) != {a.id for a in pending}:
            raise Conflict("the run's pending approvals changed since they were reviewed; review them again")
        resolved: list[ApprovalRecord] = []
        approved: list[ApprovalRecord] = []  # ended approved here: not a quorum's approval still short of it
        for approval in pending:
            try:
                outcome = await self._resolver.resolve(
                    ResolveRequest(
                        ref=approval.id,
                        resolution={"decision": action},
                        surface="bulk",
                        principal=principal,
                        resolved_by=resolved_by,
                    )
                )
            except (Conflict, Gone, Forbidden, InvalidInput):
                # someone else got there first, its time ran out, this caller caused it itself, or it is
                # an agent's request for values rather than a yes/no: left to its own resolution
                continue
            resolved.append(approval)
            if outcome.approval.status == "approved":
                approved.append(approval)
        if action == "approve":
            # a grant only for the callers and agents whose calls this person's approval let through here
            # (never one it may not approve, never another caller stating the same agent name; one approval of
            # a hold that needs several lets nothing through, so it opens no grant that would skip the quorum)
            covered = sorted({(a.requested_by, a.action.get("agent") or "") for a in approved if a.action.get("agent")})
            async with self._store.transaction() as tx:
                for caller, agent in covered:
                    grant = RunGrant(
                        tenant=principal.tenant,
                        caller=caller,
                        agent=agent,
                        run_id=run_id,
                        granted_by=principal.sub,
                        expires_at=now + self._config.approval_timeout_s,
                        created_at=now,
                    )
                    await tx.put_run_grant(grant)
                    await tx.audit(
                        tenant=principal.tenant,
                        kind="grant.opened",
                        actor=principal.sub,
                        subject=run_id,
                        detail={"agent": agent, "caller": caller, "expires_at": iso(grant.expires_at)},
                        now=now,
                    )
        return [a.id for a in resolved]
