"""What the mesh needs from an agent, and the registry that routes messages to one.

An agent works in two steps so the policy engine can stand between them: ``plan`` says what the turn
would do (a tool call to evaluate, or a direct reply), and ``execute`` runs an allowed or approved tool
call. Only the winner of an approval's conditional write ever reaches ``execute``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesh.policy import Action
from mesh.wire.models import Message, TaskState


@dataclass(slots=True)
class Reply:
    """An agent's answer to a turn: the state the task moves to, a message, and any artifacts."""

    state: TaskState
    parts: list[dict[str, Any]]
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # merged into the task's metadata


@dataclass(slots=True)
class Plan:
    """Either an action for the policy engine, or a reply that runs no tool."""

    action: Action | None = None
    reply: Reply | None = None


@dataclass(frozen=True, slots=True)
class TurnContext:
    task_id: str
    context_id: str
    tenant: str
    sender: str
    metadata: Mapping[str, Any] = field(default_factory=dict)  # the task's metadata before this turn


@dataclass(frozen=True, slots=True)
class Execution:
    """An approved (or allowed) action with the values a person entered; ``sensitive`` names the
    fields the agent must not echo back. ``key`` is stable for one approved action (its approval id): an
    action re-run after a crash carries the same key, so an agent can make running it twice harmless."""

    action: Action
    values: Mapping[str, Any] = field(default_factory=dict)
    sensitive: frozenset[str] = frozenset()
    key: str = ""


class Agent(ABC):
    name: str
    description: str = ""
    continues_tasks: bool = False  # follow-ups on its tasks stay with it unless they name another agent

    def skills(self) -> list[dict[str, Any]]:
        return []

    async def start(self) -> None:
        """Open resources (called once at server start)."""

    async def stop(self) -> None:
        """Release resources (called once at server stop)."""

    @abstractmethod
    async def plan(self, message: Message, ctx: TurnContext) -> Plan: ...

    @abstractmethod
    async def execute(self, execution: Execution, ctx: TurnContext) -> Reply: ...

    async def cancel(self, ctx: TurnContext) -> None:
        """The mesh canceled a task this agent worked on (best effort; called after the commit)."""


def text_reply(state: TaskState, text: str, artifacts: list[dict[str, Any]] | None = None) -> Reply:
    return Reply(state=state, parts=[{"kind": "text", "text": text}], artifacts=artifacts or [])


class AgentRegistry:
    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self.default: str | None = None

    def add(self, agent: Agent, *, default: bool | None = None) -> None:
        """``default``: True makes it the default agent, None only when there is none yet, False never."""
        self._agents[agent.name] = agent
        if default or (default is None and self.default is None):
            self.default = agent.name

    def remove(self, name: str) -> Agent | None:
        agent = self._agents.pop(name, None)
        if self.default == name:
            self.default = None
        return agent

    def get(self, name: str) -> Agent | None:
        return self._agents.get(name)

    def all(self) -> list[Agent]:
        return list(self._agents.values())

    async def start(self) -> None:
        for agent in self._agents.values():
            await agent.start()

    async def stop(self) -> None:
        for agent in self._agents.values():
            await agent.stop()
