"""Two meshes over one PostgreSQL schema, in one process: expiry once, events and policy changes cross."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mesh.agents.base import AgentRegistry
from mesh.agents.demo import StagingDbAgent
from mesh.approvals.resolve import ResolveRequest
from mesh.auth import Principal
from mesh.core.config import MeshConfig
from mesh.core.events import Event
from mesh.store.postgres import PostgresStore
from mesh.wire.models import MessageSendParams
from mesh.wiring import Mesh, link_replicas
from tests.pg import drop, fresh_schema_url

ALICE = Principal(sub="alice", tenant="default", roles=frozenset({"approver", "admin"}))
POLICY = {
    "name": "hold_all_deletes",
    "scope_type": "tool",
    "enforcement": "require_approval",
    "evaluator": {"plugin": "tool_match", "config": {"tools": ["bulk_delete_*"]}},
    "timeout": "1h",
}


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Mesh, Mesh, Clock]]:
    url = await fresh_schema_url()
    clock = Clock()
    stores, registries, meshes = [], [], []
    for _ in range(2):
        store = PostgresStore(url)
        await store.open()
        agents = AgentRegistry()
        agents.add(StagingDbAgent(tmp_path / "staging.db"), default=True)
        await agents.start()
        mesh = Mesh(store, MeshConfig(callback_key=b"k" * 32), agents, clock=clock)
        assert await link_replicas(mesh)
        stores.append(store)
        registries.append(agents)
        meshes.append(mesh)
    try:
        yield meshes[0], meshes[1], clock
    finally:
        for agents, store in zip(registries, stores, strict=True):
            await agents.stop()
            await store.close()
        await drop(url)


def send(text: str = "Delete all expired records from the staging database") -> MessageSendParams:
    return MessageSendParams.model_validate({"message": {"role": "user", "parts": [{"kind": "text", "text": text}]}})


async def next_event(queue: asyncio.Queue[Event], kind: str, timeout: float = 5.0) -> Event:
    async with asyncio.timeout(timeout):
        while True:
            event = await queue.get()
            if event.kind == kind:
                return event


async def test_policy_change_on_one_replica_reaches_the_other(pair: tuple[Mesh, Mesh, Clock]) -> None:
    a, b, _ = pair
    first = await b.tasks.send_message(ALICE, send())
    assert first["status"]["state"] == "completed"  # no policy yet: B has compiled an empty set
    async with b.events.subscribe() as queue:
        await a.policy_admin.create_policy("default", "alice", POLICY)
        await next_event(queue, "policies.changed")
    held = await b.tasks.send_message(ALICE, send())
    assert held["status"]["state"] == "input-required"


async def test_resolution_on_one_replica_is_seen_by_the_other(pair: tuple[Mesh, Mesh, Clock]) -> None:
    a, b, _ = pair
    await a.policy_admin.create_policy("default", "alice", POLICY)
    held = await a.tasks.send_message(ALICE, send())
    async with b.events.subscribe() as queue:
        deny = ResolveRequest(ref=held["id"], resolution={"decision": "deny"}, surface="api", principal=ALICE)
        await a.resolver.resolve(deny)
        event = await next_event(queue, "approval.resolved")
    assert event.subject == held["id"] and event.data["status"] == "denied"


async def test_concurrent_sweeps_expire_each_approval_once(pair: tuple[Mesh, Mesh, Clock]) -> None:
    a, b, clock = pair
    await a.policy_admin.create_policy("default", "alice", POLICY)
    held = [await (a if i % 2 else b).tasks.send_message(ALICE, send()) for i in range(12)]
    clock.now += 3601
    published: list[Event] = []
    async with a.events.subscribe() as qa, b.events.subscribe() as qb:
        counts = await asyncio.gather(*(m.expiry.expire_due() for m in (a, b, a, b)))
        await asyncio.sleep(0.3)
        for queue in (qa, qb):
            while not queue.empty():
                event = queue.get_nowait()
                if event.kind == "approval.expired":
                    published.append(event)
    assert sum(counts) == len(held)
    # each replica hears each expiry once: its own publish or the other's NOTIFY, never both
    assert sorted(e.subject for e in published) == sorted([t["id"] for t in held] * 2)
    entries = [e async for e in a.store.iter_audit() if e.kind == "approval.expired"]
    assert len(entries) == len(held)
    for task in held:
        got = await b.tasks.get_task(ALICE, task["id"], 0)
        assert got["status"]["state"] == "rejected"
