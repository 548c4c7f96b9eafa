"""Checking the audit chain: every entry commits to the hash of the one before it.

Recomputing each hash from the entry's own fields and the previous hash finds the first entry that was
edited, inserted or removed — the database alone cannot be changed without it showing here.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.store import Store
from mesh.store.base import audit_hash
from mesh.store.rows import GENESIS


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    broken_at: int | None  # seq of the first entry that does not verify
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def verify_chain(store: Store) -> ChainReport:
    prev = GENESIS
    count = 0
    async for entry in store.iter_audit():
        count += 1
        if entry.prev_hash != prev:
            return ChainReport(count, entry.seq, "its prev_hash is not the previous entry's hash")
        expected = audit_hash(prev, entry.at, entry.tenant, entry.kind, entry.actor, entry.subject, entry.detail)
        if entry.hash != expected:
            return ChainReport(count, entry.seq, "its contents do not match its hash")
        prev = entry.hash
    return ChainReport(count, None)
