"""Expiry: a hold nobody resolved in time ends ``expired`` and its task ``rejected`` (fail closed).

Each expiry is the same conditional write as a resolution, so two sweepers (or a sweeper and a late
resolver) never both apply it.
"""

from __future__ import annotations

import asyncio
import logging

from mesh import metrics
from mesh.approvals.announce import announce
from mesh.core.changes import TaskChanges
from mesh.core.kernel import Clock
from mesh.core.taskstate import set_state, text_parts
from mesh.delivery.channels.base import EXPIRED
from mesh.store import ApprovalRecord, Store
from mesh.wire.models import TaskState

log = logging.getLogger("airlock.sweeper")


class Expiry:
    def __init__(self, store: Store, clock: Clock, changes: TaskChanges) -> None:
        self._store = store
        self._clock = clock
        self._changes = changes

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

    async def expire_due(self) -> int:
        """Expire every pending approval whose time has passed (the sweeper; also run at start)."""
        count = 0
        for approval in await self._store.due_expiries(self._clock()):
            if await self.expire(approval):
                count += 1
        return count

    async def sweep(self, interval_s: float = 1.0) -> None:
        """Expire what is due, then again every ``interval_s``, until cancelled."""
        while True:
            try:
                expired = await self.expire_due()
                if expired:
                    log.info("expired %d approval(s)", expired)
            except Exception:
                log.exception("expiry sweep failed")
            await asyncio.sleep(interval_s)
