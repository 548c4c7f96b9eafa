"""Time on a hold: escalation, then expiry; and time on a decision's kept action: its retention.

A hold still pending at its policy's ``escalate_after`` is announced, once, on the policy's
``escalate_to`` channels (and its own, so what they show says "Escalated"). A hold nobody resolved in time
ends ``expired`` and its task ``rejected`` (fail closed). Each is one conditional write, so two sweepers
(of two replicas, or before and after a restart), or a sweeper and a late resolver, never both apply it.

The actions kept with each policy decision (for dry-runs) are kept for ``--decision-retention``: the same
sweeper drops older ones, once a minute of its clock (a delete two replicas both make drops nothing twice).
"""

from __future__ import annotations

import asyncio
import logging

from mesh import metrics
from mesh.approvals.announce import announce
from mesh.core.changes import TaskChanges
from mesh.core.config import DECISION_RETENTION_S
from mesh.core.kernel import Clock
from mesh.core.taskstate import set_state, text_parts
from mesh.delivery.channels.base import ESCALATED, EXPIRED
from mesh.store import ApprovalRecord, Store, iso
from mesh.wire.models import TaskState

log = logging.getLogger("airlock.sweeper")
PRUNE_EVERY_S = 60.0
"""How often (by the sweeper's clock) decisions' actions past their retention are dropped: the retention is
days, so a minute late is nothing, and the read that finds none costs one index probe."""


class Expiry:
    def __init__(
        self, store: Store, clock: Clock, changes: TaskChanges, *, retention_s: int = DECISION_RETENTION_S
    ) -> None:
        self._store = store
        self._clock = clock
        self._changes = changes
        self._retention_s = retention_s
        self._next_prune = float("-inf")

    async def expire(self, approval: ApprovalRecord) -> bool:
        """End a pending approval whose time has passed; True when this call did it."""
        now = self._clock()
        task = await self._store.get_task(approval.tenant, approval.task_id)
        async with self._store.transaction() as tx:
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
                await self._changes.record(
                    tx, task, "approval.expired", approval_id=approval.id, policy=approval.policy
                )
                await tx.append_history(task.id, [msg] if msg else [])
                await tx.audit(
                    tenant=approval.tenant,
                    kind="approval.expired",
                    actor="system",
                    subject=approval.id,
                    detail={"task": task.id},
                    now=now,
                )
                await announce(tx, approval, EXPIRED, now)
        if won:
            metrics.child(metrics.RESOLUTIONS, "expired", "expiry").inc()
            approval.status = "expired"
            if task is not None:
                self._changes.publish("approval.expired", task, approval_id=approval.id)
        return won

    async def escalate(self, approval: ApprovalRecord) -> bool:
        """Announce a pending hold on its escalation channels; True for the one call that did it."""
        now = self._clock()
        task = await self._store.get_task(approval.tenant, approval.task_id)
        async with self._store.transaction() as tx:
            won = await tx.claim_escalation(approval.id, now)
            if won:
                if task is not None:
                    airlock = {**(task.metadata.get("airlock") or {}), "escalatedAt": iso(now)}
                    task.metadata = {**task.metadata, "airlock": airlock}
                    task.updated_at = now
                    await tx.update_task(task)
                    await self._changes.record(
                        tx, task, "approval.escalated", approval_id=approval.id, escalate_to=approval.escalate_to
                    )
                await tx.audit(
                    tenant=approval.tenant,
                    kind="approval.escalated",
                    actor="system",
                    subject=approval.id,
                    detail={"task": approval.task_id, "escalate_to": approval.escalate_to},
                    now=now,
                )
                await announce(tx, approval, ESCALATED, now, [*approval.channels, *approval.escalate_to])
        if won:
            approval.escalated_at = now
            metrics.ESCALATIONS.inc()
            if task is not None:
                self._changes.publish("approval.escalated", task, approval_id=approval.id)
        return won

    async def escalate_due(self) -> int:
        """Escalate every pending hold whose escalation time has come."""
        count = 0
        for approval in await self._store.due_escalations(self._clock()):
            if await self.escalate(approval):
                count += 1
        return count

    async def expire_due(self) -> int:
        """Expire every pending approval whose time has passed (the sweeper; also run at start)."""
        count = 0
        for approval in await self._store.due_expiries(self._clock()):
            if await self.expire(approval):
                count += 1
        return count

    async def prune_decisions(self) -> int:
        """Drop the decisions' actions older than the retention (all of them when it is 0: the operator
        stopped keeping them); how many went."""
        now = self._clock()
        self._next_prune = now + PRUNE_EVERY_S
        pruned = await self._store.prune_decisions(now - self._retention_s)
        if pruned:
            metrics.DECISIONS_PRUNED.inc(pruned)
        return pruned

    async def prune_due(self) -> int:
        """:meth:`prune_decisions` when a minute of the clock has passed since the last time (the sweeper
        runs every second; pruning that often would only repeat an empty read)."""
        if self._clock() < self._next_prune:
            return 0
        return await self.prune_decisions()

    async def sweep(self, interval_s: float = 1.0) -> None:
        """Escalate and expire what is due, prune what is past its retention, then again every
        ``interval_s``, until cancelled."""
        while True:
            try:
                pruned = await self.prune_due()
                if pruned:
                    log.info("dropped %d decision action(s) past their retention", pruned)
                escalated = await self.escalate_due()
                if escalated:
                    log.info("escalated %d approval(s)", escalated)
                expired = await self.expire_due()
                if expired:
                    log.info("expired %d approval(s)", expired)
            except Exception:
                log.exception("expiry sweep failed")
            await asyncio.sleep(interval_s)
