"""Holding a call for a person: one transaction writes the task in ``input-required`` with its Form, the
approval, the notifications for the policy's channels and the decision's audit entry, so a crash between
the hold and its notification loses neither.

A tenant holds at most ``max_pending`` approvals at once, whichever surface made them (a turn over A2A, the
approvals API): past it a hold is refused with :class:`~mesh.errors.QueueFull` before anything is written.
Holds being written by this process count too, so a burst of concurrent turns cannot slip past the limit
between the count and the commit (another replica's in-flight holds are not seen: the limit is exact per
process and may be passed by at most the holds in flight on the others).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

from a2ui import form_part
from mesh.approvals.announce import announce
from mesh.approvals.records import APPROVAL, escalation_time, held_form, new_approval
from mesh.auth import Principal
from mesh.core.changes import TaskChanges
from mesh.core.config import MAX_TIMEOUT_S, MeshConfig
from mesh.core.taskstate import set_state, write_task
from mesh.delivery.channels.base import REQUESTED
from mesh.errors import QueueFull
from mesh.policy import Action, Decision
from mesh.store import Store, TaskRecord, iso
from mesh.wire.models import TaskState


class Holds:
    def __init__(self, store: Store, config: MeshConfig, changes: TaskChanges) -> None:
        self._store = store
        self._config = config
        self._changes = changes
        self._in_flight: Counter[str] = Counter()  # holds being written, per tenant

    async def _check_room(self, tenant: str, now: float) -> None:
        """Refuse when the tenant's pending approvals (and this process's holds in flight) reach the limit."""
        total = await self._store.pending_total(tenant, now)
        if total + self._in_flight[tenant] - 1 >= self._config.max_pending:
            raise QueueFull(self._config.max_pending)

    @contextlib.contextmanager
    def _in_flight_for(self, tenant: str) -> Iterator[None]:
        """Count a hold being written, so concurrent turns see it before it is pending in the store."""
        self._in_flight[tenant] += 1
        try:
            yield
        finally:
            self._in_flight[tenant] -= 1
            if not self._in_flight[tenant]:
                del self._in_flight[tenant]

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
        sensitive: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Hold ``action`` under ``decision``'s policy; returns the held task as the wire shows it.
        ``sensitive``: the argument names the kept action masks (besides the hold's own form's)."""
        with self._in_flight_for(task.tenant):
            await self._check_room(task.tenant, now)
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
                # what the policy asks of the decision is kept on the hold: a later policy change leaves it be
                distinct_approver=policy.distinct_approver,
                approvals_required=policy.approvals_required,
                escalate_at=escalation_time(policy.escalate_after_s, now, timeout),
                escalate_to=policy.escalate_to,
                allow_edits=policy.allow_edits,
            )
            expires = iso(approval.expires_at)
            airlock = {
                **(task.metadata.get("airlock") or {}),
                "approvalId": approval.id,
                "policy": policy.name,
                "expiresAt": expires,
            }
            if approval.approvals_required > 1:
                airlock |= {"approvals_required": approval.approvals_required, "approvals": []}
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
                await self._changes.decided(tx, task, action, decision, principal.sub, now, sensitive=sensitive)
            self._changes.publish("approval.created", task, approval_id=approval.id)
            return task.to_wire()
