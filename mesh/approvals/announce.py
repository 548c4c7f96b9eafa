"""Announcing an approval's events on its channels, inside the transaction that made the change."""

from __future__ import annotations

from mesh.delivery.notify import KIND
from mesh.store import ApprovalRecord, Tx


async def announce(tx: Tx, approval: ApprovalRecord, event: str, now: float) -> None:
    """One outbox row per channel of ``approval`` that takes ``event`` (the channels its hold was announced
    on: a policy's, or those that opted in to requests for values)."""
    if not approval.channels:
        return
    takes = {c.name for c in await tx.channels(approval.tenant) if c.takes(event)}
    for name in approval.channels:
        if name in takes:
            payload = {
                "tenant": approval.tenant,
                "channel": name,
                "approval_id": approval.id,
                "event": event,
                "at": now,
            }
            await tx.enqueue(KIND, payload, not_before=now)
