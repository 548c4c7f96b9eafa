"""Announcing an approval's events on its channels, inside the transaction that made the change."""

from __future__ import annotations

from collections.abc import Sequence

from mesh.delivery.notify import KIND
from mesh.store import ApprovalRecord, Tx


async def announce(
    tx: Tx, approval: ApprovalRecord, event: str, now: float, channels: Sequence[str] | None = None
) -> None:
    """One outbox row per channel of ``approval`` that takes ``event`` (the channels its hold was announced
    on: a policy's, or those that opted in to requests for values, and, once it escalated, its escalation
    channels; or ``channels``), once each."""
    if channels is None:
        # an escalated hold was announced on its escalation channels too: they hear how it goes on
        channels = [*approval.channels, *(approval.escalate_to if approval.escalated_at is not None else ())]
    names = list(dict.fromkeys(channels))
    if not names:
        return
    takes = {c.name for c in await tx.channels(approval.tenant) if c.takes(event)}
    for name in names:
        if name in takes:
            payload = {
                "tenant": approval.tenant,
                "channel": name,
                "approval_id": approval.id,
                "event": event,
                "at": now,
            }
            await tx.enqueue(KIND, payload, not_before=now)
