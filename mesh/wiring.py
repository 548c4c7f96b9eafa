"""The mesh assembled: its core, the services built from it, and the lifecycle of a running server.

:class:`Mesh` is only wiring. Each service is built with the parts of the core it uses; the apps (the A2A
face in :mod:`mesh.a2a`, the people's surfaces in ``gateway``) reach the services through it.
:func:`lifecycle` gives the ``cleanup_ctx`` contexts that open and close what a server holds: the store,
the agents, recovery of interrupted actions, replication between replicas, and the expiry sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from mesh.admin.agents import CHANGED as AGENTS_CHANGED
from mesh.admin.agents import AgentAdmin
from mesh.admin.channels import ChannelAdmin
from mesh.admin.outbox import OutboxAdmin
from mesh.admin.policies import PolicyAdmin
from mesh.agents.base import AgentRegistry
from mesh.approvals.api import ApprovalsApi
from mesh.approvals.expiry import Expiry
from mesh.approvals.holds import Holds
from mesh.approvals.input_requests import InputRequests
from mesh.approvals.resolve import Resolver
from mesh.audit import audit_key
from mesh.core.config import MeshConfig
from mesh.core.events import Event, EventBus
from mesh.core.kernel import Clock, Core
from mesh.core.policies import CHANGED as POLICIES_CHANGED
from mesh.delivery.channels.registry import channel_types
from mesh.delivery.push import PushConfigs, queue_pushes
from mesh.store import Store
from mesh.tasks.service import TaskService
from mesh.tasks.turn import Turn

log = logging.getLogger("airlock")

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


class Mesh:
    """The data plane's services over one core."""

    def __init__(
        self,
        store: Store,
        config: MeshConfig,
        agents: AgentRegistry | None = None,
        events: EventBus | None = None,
        clock: Clock = time.time,
    ) -> None:
        store.audit_key = audit_key(config.callback_key)  # signs the audit head (see mesh.audit)
        self.core = core = Core.build(store, config, clock, agents, events)
        core.changes.hooks.append(queue_pushes)
        self.pushes = PushConfigs(store, clock, config)
        self.expiry = Expiry(store, clock, core.changes, retention_s=config.decision_retention_s)
        self.holds = Holds(store, config, core.changes)
        self.turn = Turn(core, self.holds, InputRequests(config))
        self.resolver = Resolver(store, clock, core.changes, self.expiry, runner=self.turn, policies=core.policies)
        self.tasks = TaskService(core, self.turn, self.resolver, self.pushes)
        self.policy_admin = PolicyAdmin(store, clock, core.policies)
        self.channel_admin = ChannelAdmin(store, clock, config, channel_types(store, clock))
        self.outbox_admin = OutboxAdmin(store, clock)
        self.agent_admin = AgentAdmin(store, clock, core.events, core.agents, config)
        self.approvals = ApprovalsApi(core, self.holds, self.resolver, self.policy_admin)

    @property
    def store(self) -> Store:
        return self.core.store

    @property
    def config(self) -> MeshConfig:
        return self.core.config

    @property
    def clock(self) -> Clock:
        return self.core.clock

    @property
    def events(self) -> EventBus:
        return self.core.events

    @property
    def agents(self) -> AgentRegistry:
        return self.core.agents


MESH = web.AppKey("mesh", Mesh)
"""The one key both apps keep their mesh under."""


async def link_replicas(mesh: Mesh) -> bool:
    """Keep replicas that share one database in step: every event this replica publishes is also sent to the
    others through the store, and theirs are published here, so a waiter on replica A sees a resolution made
    on replica B; a policy or agent change made through any replica is applied everywhere. False when the
    store is not shared with other processes (nothing to link)."""
    origin = uuid.uuid4().hex
    pending: set[asyncio.Task[Any]] = set()
    store = mesh.store

    def spawn(work: Any) -> None:
        task = asyncio.ensure_future(work)
        pending.add(task)
        task.add_done_callback(pending.discard)

    def relay(event: Event) -> None:
        payload = {
            "origin": origin,
            "kind": event.kind,
            "tenant": event.tenant,
            "subject": event.subject,
            # notifications are small (8 kB in PostgreSQL): the task is re-read from the store by whoever needs it
            "data": {k: v for k, v in event.data.items() if k != "task"},
            "outbox": sorted(event.outbox),
        }
        spawn(store.notify(payload))

    async def reload_agents() -> None:
        try:
            await mesh.agent_admin.load_agents()
        except Exception:
            log.exception("could not reload the downstream agents")

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
        if event.kind == POLICIES_CHANGED:
            mesh.core.policies.changed(event.tenant, broadcast=False)
        elif event.kind == AGENTS_CHANGED:
            spawn(reload_agents())
        mesh.events.publish(event, relay=False)

    if not await store.listen(receive):
        return False
    mesh.events.relay = relay
    return True


def lifecycle(mesh: Mesh, *, sweep_interval_s: float = 1.0) -> list[CleanupCtx]:
    """The contexts a server runs in, in order: each opens its resource before the next starts and closes it
    after the later ones stopped. Downstream agents are loaded before recovery, since an interrupted approved
    action may be for one of them."""

    async def store(app: web.Application) -> AsyncIterator[None]:
        await mesh.store.open()
        try:
            yield
        finally:
            await mesh.store.close()

    async def agents(app: web.Application) -> AsyncIterator[None]:
        await mesh.agents.start()
        try:
            loaded = await mesh.agent_admin.load_agents()
            if loaded:
                log.info("loaded %d downstream agent(s)", loaded)
            yield
        finally:
            await mesh.agents.stop()

    async def recovery(app: web.Application) -> AsyncIterator[None]:
        recovered = await mesh.resolver.recover()
        if recovered:
            log.info("finished %d approved action(s) interrupted by the last stop", recovered)
        yield

    async def replication(app: web.Application) -> AsyncIterator[None]:
        if await link_replicas(mesh):
            log.info("relaying events to the other replicas on this store")
        yield

    async def sweeper(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(mesh.expiry.sweep(sweep_interval_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return [store, agents, recovery, replication, sweeper]
