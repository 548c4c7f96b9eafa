"""Checking the audit chain: every entry commits to the hash of the one before it, and the trail's head (its
last entry's seq and hash) is kept signed beside it.

Recomputing each hash from the entry's own fields and the previous hash finds the first entry that was
edited, inserted or removed; comparing the last entry with the kept head finds entries removed from the end,
which the chain alone cannot show (a shorter chain still links). The head is signed under a key derived from
the server's callback key, which the database does not hold: rewinding the head to match a shortened trail
takes that key too.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from mesh.store import Store
from mesh.store.base import audit_hash, audit_head_mac
from mesh.store.rows import GENESIS


def audit_key(callback_key: bytes) -> bytes:
    """The key the audit head is signed with, derived from the server's callback key (kept in
    ``$AIRLOCK_HOME``), so ``airlock audit verify`` on the same home can check it."""
    return hmac.new(callback_key, b"airlock audit head", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    broken_at: int | None  # seq of the first entry that does not verify
    reason: str | None = None
    head_seq: int = 0  # the kept head's seq (0: no entry written yet)
    last_seq: int = 0  # the seq of the trail's last entry
    missing: int = 0  # entries the head names that the trail's end no longer has
    head_problem: str | None = None
    signed: bool = False  # the head's signature was checked (a key was given)

    @property
    def ok(self) -> bool:
        return self.broken_at is None and self.head_problem is None


async def verify_chain(store: Store, key: bytes | None = None) -> ChainReport:
    """Walk the chain, then compare its end with the kept head; with ``key`` (see :func:`audit_key`), check
    the head's signature too."""
    prev = GENESIS
    count = 0
    last_seq = 0
    async for entry in store.iter_audit():
        count += 1
        if entry.prev_hash != prev:
            return ChainReport(count, entry.seq, "its prev_hash is not the previous entry's hash", last_seq=last_seq)
        expected = audit_hash(prev, entry.at, entry.tenant, entry.kind, entry.actor, entry.subject, entry.detail)
        if entry.hash != expected:
            return ChainReport(count, entry.seq, "its contents do not match its hash", last_seq=last_seq)
        prev = entry.hash
        last_seq = entry.seq
    head = await store.audit_head()
    report = {"entries": count, "broken_at": None, "last_seq": last_seq, "signed": key is not None}
    if head is None:
        if count:
            return ChainReport(**report, head_problem="the trail has entries but no head is kept")
        return ChainReport(**report)
    report["head_seq"] = head.seq
    if key is not None and not hmac.compare_digest(head.mac, audit_head_mac(key, head.seq, head.hash)):
        problem = (
            "the head is not signed (kept before heads were signed; the next entry signs it)"
            if not head.mac
            else "the head's signature does not verify (not written by a server with this home's callback key)"
        )
        return ChainReport(**report, head_problem=problem)
    if head.seq > last_seq:
        missing = head.seq - last_seq
        return ChainReport(
            **report,
            missing=missing,
            head_problem=f"the trail ends at entry {last_seq} but its head is entry {head.seq}: "
            f"{missing} entries missing from the tail",
        )
    if head.seq < last_seq:
        return ChainReport(**report, head_problem=f"entries after the kept head (entry {head.seq}) were added")
    if head.hash != prev:
        return ChainReport(**report, head_problem=f"the last entry ({last_seq}) does not match the kept head")
    return ChainReport(**report)
