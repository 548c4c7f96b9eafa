"""Holding a call for a person: one transaction writes the task in ``input-required`` with its Form, the
approval, the notifications for the policy's channels and the decision's audit entry, so a crash between
the hold and its notification loses neither."""

from __future__ import annotations

from typing import Any

from a2ui import form_part
from mesh.approvals.announce import announce
from mesh.approvals.records import APPROVAL, held_form, new_approval
from mesh.auth import Principal
from mesh.core.changes import TaskChanges, audit_decision
from mesh.core.config import MAX_TIMEOUT_S, MeshConfig
from mesh.core.taskstate import set_state, write_task
from mesh.delivery.channels.base import REQUESTED
from mesh.policy import Action, Decision
from mesh.store import Store, TaskRecord, iso
from mesh.wire.models import TaskState


class Holds:
    def __init__(self, store: Store, config: MeshConfig, changes: TaskChanges) -> None:
        self._store = store
        self._config = config
        self._changes = changes

    async def hold(
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
        """Hold ``action`` under ``decision``'s policy; returns the held task as the wire shows it."""
        policy = decision.policy
        assert policy is not None
        timeout = min(decision.timeout_s or self._config.approval_timeout_s, MAX_TIMEOUT_S)
        approval = new_approval(
            task,
            kind=APPROVAL,
            action=action,
            form=held_form(action.tool, decision.form_fields),
            requested_by=principal.sub,
            requester_roles=sorted(principal.roles),
            user_input=action.text or "",
            now=now,
            expires_at=now + timeout,
            callback_key=self._config.callback_key,
            policy=policy.name,
            channels=decision.channels,
            run_id=run_id,
            distinct_approver=policy.distinct_approver,  # kept on the hold: a later policy change leaves it be
        )
        expires = iso(approval.expires_at)
        airlock = {
            **(task.metadata.get("airlock") or {}),
            "approvalId": approval.id,
            "policy": policy.name,
            "expiresAt": expires,
        }
        task.metadata = {**task.metadata, "airlock": airlock}
        status_msg = set_state(task, TaskState.INPUT_REQUIRED, [form_part(approval.form)], now)
        async with self._store.transaction() as tx:
            await write_task(tx, task, [user_msg] + ([status_msg] if status_msg else []), new=new)
            await self._changes.record(
                tx,
                task,
                "approval.created",
                approval_id=approval.id,
                policy=policy.name,
                tool=action.tool,
                run_id=run_id,
                expires_at=expires,
            )
            await tx.insert_approval(approval)
            await announce(tx, approval, REQUESTED, now)
            await audit_decision(tx, task, action, decision, principal.sub, now)
        self._changes.publish("approval.created", task, approval_id=approval.id)
        return task.to_wire()
