"""Keep replicas that share one PostgreSQL database in step.

Every event this replica publishes is also NOTIFY'd; every replica LISTENs and republishes the others'
events on its own bus, so a waiter on replica A sees a resolution made on replica B. A policy change
made through any replica drops the compiled policies everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from mesh.agent_admin import load_agents
from mesh.events import Event
from mesh.service import Mesh
from mesh.store.postgres import PostgresStore

log = logging.getLogger("airlock.replication")


async def _reload_agents(mesh: Mesh) -> None:
    try:
        await load_agents(mesh)
    except Exception:
        log.exception("could not reload the downstream agents")


async def link_replicas(mesh: Mesh, store: PostgresStore) -> None:
    origin = uuid.uuid4().hex
    pending: set[asyncio.Task[None]] = set()

    def relay(event: Event) -> None:
        payload = {
            "origin": origin,
            "kind": event.kind,
            "tenant": event.tenant,
            "subject": event.subject,
            # NOTIFY payloads are small (8 kB): the task itself is re-read from the store by whoever needs it
            "data": {k: v for k, v in event.data.items() if k != "task"},
            "outbox": sorted(event.outbox),
        }
        task = asyncio.create_task(store.notify(payload))
        pending.add(task)
        task.add_done_callback(pending.discard)

    def receive(payload: dict[str, Any]) -> None:
        if payload.get("origin") == origin:
            return
        event = Event(
            kind=payload["kind"],
            tenant=payload["tenant"],
            subject=payload["subject"],
            data=payload.get("data") or {},
            outbox=frozenset(payload.get("outbox") or ()),
        )
        if event.kind == "policies.changed":
            mesh.policies_changed(event.tenant, broadcast=False)
        elif event.kind == "agents.changed":
            reload = asyncio.create_task(_reload_agents(mesh))
            pending.add(reload)
            reload.add_done_callback(pending.discard)
        mesh.events.publish(event, relay=False)

    mesh.events.relay = relay
    await store.listen(receive)
