"""Decisions' kept actions, on every engine: written with their audit entry (the entry's seq, the same unit),
read by tenant newest first with a time bound and a limit, pruned by age in batches."""

from __future__ import annotations

import pytest

from mesh.audit import verify_chain
from mesh.store import DecisionRecord, Store


def decision(task_id: str, at: float, *, tenant: str = "default", enforcement: str = "allow") -> DecisionRecord:
    return DecisionRecord(
        tenant=tenant,
        at=at,
        task_id=task_id,
        agent="bot",
        tool="bulk_delete",
        action={"arguments": {"items": [1, 2]}, "text": "go", "context": {"sender": "bot"}},
        enforcement=enforcement,
        policy=None,
    )


async def write(store: Store, *records: DecisionRecord, with_other_entries: bool = False) -> None:
    async with store.transaction() as tx:
        for record in records:
            if with_other_entries:
                await tx.audit(tenant=record.tenant, kind="x", actor="a", subject="s", detail={}, now=record.at)
            await tx.audit(
                tenant=record.tenant,
                kind="policy.decision",
                actor="bot",
                subject=record.task_id,
                detail={"enforcement": record.enforcement},
                now=record.at,
                decision=record,
            )


async def test_a_decision_is_kept_under_its_audit_entrys_seq(store: Store) -> None:
    await write(store, decision("t1", 100.0), decision("t2", 101.0), with_other_entries=True)
    entries = await store.audit_entries(limit=10)
    kept = await store.recent_decisions("default")
    assert [d.task_id for d in kept] == ["t2", "t1"]
    by_seq = {e.seq: e for e in entries}
    for d in kept:
        assert by_seq[d.seq].kind == "policy.decision" and by_seq[d.seq].subject == d.task_id
    assert kept[0].action == {"arguments": {"items": [1, 2]}, "text": "go", "context": {"sender": "bot"}}
    assert (kept[0].agent, kept[0].tool, kept[0].enforcement, kept[0].policy, kept[0].at) == (
        "bot",
        "bulk_delete",
        "allow",
        None,
        101.0,
    )
    report = await verify_chain(store)
    assert report.ok and report.entries == 4


async def test_a_rolled_back_unit_keeps_no_decision(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.audit(
                tenant="default",
                kind="policy.decision",
                actor="a",
                subject="t1",
                detail={},
                now=1.0,
                decision=decision("t1", 1.0),
            )
            raise RuntimeError("the turn failed")
    assert await store.recent_decisions("default") == []
    assert await store.audit_entries() == []


async def test_newest_first_by_tenant_with_since_and_limit(store: Store) -> None:
    await write(
        store,
        decision("a1", 10.0),
        decision("b1", 11.0, tenant="acme"),
        decision("a2", 12.0),
        decision("a3", 12.0),  # the same instant: the later entry is the newer
        decision("a4", 20.0),
    )
    assert [d.task_id for d in await store.recent_decisions("default")] == ["a4", "a3", "a2", "a1"]
    assert [d.task_id for d in await store.recent_decisions("default", limit=2)] == ["a4", "a3"]
    assert [d.task_id for d in await store.recent_decisions("default", since=12.0)] == ["a4", "a3", "a2"]
    assert [d.task_id for d in await store.recent_decisions("default", since=12.5, limit=1)] == ["a4"]
    assert [d.task_id for d in await store.recent_decisions("acme")] == ["b1"]
    assert await store.recent_decisions("nobody") == []


async def test_prune_drops_what_is_older_in_batches(store: Store) -> None:
    await write(store, *(decision(f"old{i}", 100.0 + i) for i in range(7)), decision("new", 500.0))
    await write(store, decision("other", 101.5, tenant="acme"))
    assert await store.prune_decisions(200.0, batch=3) == 8  # every tenant's
    assert [d.task_id for d in await store.recent_decisions("default")] == ["new"]
    assert await store.recent_decisions("acme") == []
    assert await store.prune_decisions(200.0) == 0
    assert await store.prune_decisions(500.0) == 0  # strictly older
    assert await store.prune_decisions(500.5) == 1
    # the audit trail is untouched and still verifies
    report = await verify_chain(store)
    assert report.ok and report.entries == 9


async def test_the_kept_decisions_survive_a_reopen(new_store) -> None:  # type: ignore[no-untyped-def]
    first = new_store()
    await first.open()
    await write(first, decision("t1", 1.0))
    await first.close()
    second = new_store()
    await second.open()
    try:
        assert [d.task_id for d in await second.recent_decisions("default")] == ["t1"]
    finally:
        await second.close()
