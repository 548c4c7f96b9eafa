"""The outbox as an admin sees it: what is still to be sent, what was given up on (dead letters), and a way
to send a dead letter again once its receiver is fixed. Never a payload, a token or a secret."""

from __future__ import annotations

from typing import Any

from mesh.core.kernel import Clock
from mesh.errors import NotFound
from mesh.store import OutboxEntry, Store, iso

STATES = ("pending", "dead", "delivered")
MAX_LIMIT = 500


def entry_public(entry: OutboxEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "attempts": entry.attempts,
        "last_error": entry.last_error,
        "created_at": iso(entry.created_at),
        "next_attempt_at": None if entry.dead_at or entry.delivered_at else iso(entry.next_attempt_at),
        "delivered_at": iso(entry.delivered_at),
        "dead_at": iso(entry.dead_at),
    }


class OutboxAdmin:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def list_entries(self, tenant: str, state: str, *, after: int, limit: int) -> dict[str, Any]:
        """A page of the tenant's entries in ``state`` (one of ``STATES``), after the id ``after``: ``limit``
        from 1 to ``MAX_LIMIT``, as the gateway's ``OutboxQuery`` checked."""
        entries = await self._store.list_outbox(tenant, state, after=after, limit=limit)
        out: dict[str, Any] = {"entries": [entry_public(e) for e in entries]}
        if len(entries) == limit:
            out["next_after"] = entries[-1].id
        return out

    async def retry(self, tenant: str, actor: str, row_id: int) -> None:
        now = self._clock()
        if not await self._store.retry_outbox(tenant, row_id, now):
            raise NotFound(f"no undelivered outbox entry {row_id}")
        async with self._store.transaction() as tx:
            await tx.audit(tenant=tenant, kind="outbox.retried", actor=actor, subject=str(row_id), detail={}, now=now)
