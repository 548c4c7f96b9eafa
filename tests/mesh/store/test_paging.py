"""The admin listings read a page at a time: ``after`` (the last name of the page before) and ``limit``, in
the order the database gives names, on both engines; without them, everything."""

from __future__ import annotations

from typing import Any

from mesh.store import AgentRecord, ChannelRecord, Store

# mixed case, digits and punctuation: whatever the engine's collation, the walk follows its own order
NAMES = ["b-2", "A1", "a.1", "zeta", "Zeta", "m:9", "m_9", "0", "k", "ß"]


async def walk(read: Any, limit: int) -> list[str]:
    """Every name, a page at a time, each page after the last name of the one before."""
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await read(after, limit)
        assert len(page) <= limit
        seen += page
        if len(page) < limit:
            return seen
        after = page[-1]


async def test_policies_channels_and_agents_page_without_repeats_or_skips(store: Store) -> None:
    async with store.transaction() as tx:
        for name in NAMES:
            await tx.put_policy("acme", name, {"name": name}, 1.0, create=True)
            await tx.put_channel(ChannelRecord(tenant="acme", name=name, type="webhook", config={}, created_at=1.0))
            await tx.put_agent(AgentRecord(name=name, url="http://127.0.0.1:1", card={}, created_at=1.0))
        await tx.put_policy("other", "zz", {"name": "zz"}, 1.0, create=True)

    everything = [b["name"] for b in await store.list_policies("acme")]
    assert sorted(everything) == sorted(NAMES)  # the other tenant's is not there

    async def policies(after: str | None, limit: int) -> list[str]:
        return [b["name"] for b in await store.list_policies("acme", after=after, limit=limit)]

    async def channels(after: str | None, limit: int) -> list[str]:
        return [c.name for c in await store.list_channels("acme", after=after, limit=limit)]

    async def agents(after: str | None, limit: int) -> list[str]:
        return [a.name for a in await store.list_agents(after=after, limit=limit)]

    for read, full in (
        (policies, everything),
        (channels, [c.name for c in await store.list_channels("acme")]),
        (agents, [a.name for a in await store.list_agents()]),
    ):
        for limit in (1, 3, len(NAMES), len(NAMES) + 1):
            assert await walk(read, limit) == full, (read.__name__, limit)
