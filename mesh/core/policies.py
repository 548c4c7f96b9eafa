"""Each tenant's policies, compiled once per change rather than per call."""

from __future__ import annotations

import asyncio

from mesh.core.events import Event, EventBus
from mesh.policy import CompiledPolicies, Policy, compile_policies
from mesh.store import Store

CHANGED = "policies.changed"


class PolicyCache:
    """Plugins are built and sorted when a policy changes, not per call. The calls that arrive while the set
    is being read and compiled wait for that one compile (after a change under load, each of them would
    otherwise compile the whole set again)."""

    def __init__(self, store: Store, events: EventBus) -> None:
        self._store = store
        self._events = events
        self._compiled: dict[str, CompiledPolicies] = {}
        self._loading: dict[str, asyncio.Future[CompiledPolicies]] = {}
        self._generations: dict[str, int] = {}

    async def get(self, tenant: str) -> CompiledPolicies:
        compiled = self._compiled.get(tenant)
        if compiled is not None:
            return compiled
        loading = self._loading.get(tenant)
        if loading is None:
            loading = asyncio.ensure_future(self._load(tenant))
            self._loading[tenant] = loading
            loading.add_done_callback(lambda done: self._loaded(tenant, done))
        return await asyncio.shield(loading)

    async def _load(self, tenant: str) -> CompiledPolicies:
        generation = self._generations.get(tenant, 0)
        bodies = await self._store.list_policies(tenant)
        compiled = compile_policies(Policy.model_validate(b) for b in bodies)
        if self._generations.get(tenant, 0) == generation:  # not cached when a change came while it read
            self._compiled[tenant] = compiled
        return compiled

    def _loaded(self, tenant: str, done: asyncio.Future[CompiledPolicies]) -> None:
        if self._loading.get(tenant) is done:
            del self._loading[tenant]
        if not done.cancelled():
            done.exception()  # a failed load is each waiter's error; none is left unretrieved

    def changed(self, tenant: str, *, broadcast: bool = True) -> None:
        """Drop the tenant's compiled set; ``broadcast`` tells other replicas to drop theirs."""
        self._generations[tenant] = self._generations.get(tenant, 0) + 1
        self._compiled.pop(tenant, None)
        self._loading.pop(tenant, None)  # a load under way read the old set: the next call starts another
        if broadcast:
            self._events.publish(Event(kind=CHANGED, tenant=tenant, subject=""))
