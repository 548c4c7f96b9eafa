"""The small core a mesh's services share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mesh.agents.base import AgentRegistry
from mesh.core.changes import TaskChanges
from mesh.core.config import MeshConfig
from mesh.core.events import EventBus
from mesh.core.policies import PolicyCache
from mesh.store import Store

Clock = Callable[[], float]


@dataclass(slots=True)
class Core:
    """One per mesh; services keep the parts they use. ``clock`` is injected so expiry can be tested."""

    store: Store
    config: MeshConfig
    clock: Clock
    events: EventBus
    agents: AgentRegistry
    policies: PolicyCache
    changes: TaskChanges

    @classmethod
    def build(
        cls,
        store: Store,
        config: MeshConfig,
        clock: Clock,
        agents: AgentRegistry | None = None,
        events: EventBus | None = None,
    ) -> Core:
        events = events or EventBus()
        return cls(
            store=store,
            config=config,
            clock=clock,
            events=events,
            agents=agents or AgentRegistry(),
            policies=PolicyCache(store, events),
            changes=TaskChanges(events, config),
        )
