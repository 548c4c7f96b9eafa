"""What every change of a task's state writes beside the task, and announces after it commits.

Inside the transaction: the state hooks (push notifications queue their outbox rows there) and the event,
appended to the durable log (``/v1/events/stream`` and replicas resume from it), so none is lost to a
crash. After the commit: the event on the in-process bus, so a subscriber never sees a state the store
would not return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mesh import metrics
from mesh.core.config import MeshConfig
from mesh.core.decisions import decision_record
from mesh.core.events import Event, EventBus
from mesh.policy import Action, Decision
from mesh.store import TaskRecord, Tx

StateHook = Callable[[Tx, TaskRecord], Awaitable[None]]
"""Runs inside every transaction that changes a task's state."""

PUSH_QUEUED = frozenset({"push"})


class TaskChanges:
    def __init__(self, events: EventBus, config: MeshConfig | None = None) -> None:
        self.events = events
        self.hooks: list[StateHook] = []
        self._config = config  # read at each decision: whether the operator keeps decisions' actions

    async def record(self, tx: Tx, task: TaskRecord, kind: str = "task.updated", **data: Any) -> None:
        """Inside the transaction that changed ``task``: run the state hooks and log the event."""
        for hook in self.hooks:
            await hook(tx, task)
        await tx.log_event(
            tenant=task.tenant,
            kind=kind,
            subject=task.id,
            data={"task_id": task.id, "state": task.state, **data},
            now=task.updated_at,
        )

    def publish(self, kind: str, task: TaskRecord, wire: dict[str, Any] | None = None, **data: Any) -> None:
        """After commit: tell subscribers, with the task as stored (history left out; ``wire`` when the
        caller has built it already). Outbox workers wake only for the kinds of rows the change queued."""
        data.setdefault("task", wire if wire is not None else task.to_wire())
        outbox = PUSH_QUEUED if task.pushes_queued else frozenset()
        task.pushes_queued = False
        self.events.publish(
            Event(kind=kind, tenant=task.tenant, subject=task.id, data={"state": task.state, **data}, outbox=outbox)
        )


    async def decided(
        self,
        tx: Tx,
        task: TaskRecord,
        action: Action,
        decision: Decision,
        actor: str,
        now: float,
        *,
        sensitive: frozenset[str] = frozenset(),
    ) -> None:
        """Inside the transaction of a turn or a hold: the policy decision's audit entry (see
        :func:`audit_decision`), its action kept when the operator keeps decisions."""
        keep = self._config is None or self._config.decision_retention_s > 0
        await audit_decision(tx, task, action, decision, actor, now, keep=keep, sensitive=sensitive)


async def audit_decision(
    tx: Tx,
    task: TaskRecord,
    action: Action,
    decision: Decision,
    actor: str,
    now: float,
    *,
    keep: bool = True,
    sensitive: frozenset[str] = frozenset(),
) -> None:
    """Every policy decision is in the audit trail, whatever it was. With ``keep`` (the operator keeps
    decisions' actions: ``--decision-retention`` is not 0) the action is kept beside the entry, masked by
    ``sensitive`` and the decision's own form, for dry-runs; the store writes it with the entry, so it costs
    the turn no round trip and no sync of its own."""
    detail = {
        "enforcement": str(decision.enforcement),
        "policy": decision.policy.name if decision.policy else None,
        "tool": action.tool,
        "agent": action.agent,
        "audited": list(decision.audited),
        "reason": decision.reason,
    }
    kept = decision_record(task, action, decision, now, sensitive) if keep else None
    await tx.audit(
        tenant=task.tenant, kind="policy.decision", actor=actor, subject=task.id, detail=detail, now=now, decision=kept
    )
    metrics.child(metrics.DECISIONS, str(decision.enforcement)).inc()
