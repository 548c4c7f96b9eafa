"""Downstream agent administration: add (fetch and check the card), remove, list, and load at start.

Downstream agents are kept in the store (one list for the deployment) and registered in the mesh's agent
registry as :class:`RemoteAgent`. Every change publishes ``agents.changed`` so replicas reload theirs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from mesh.agents.base import AgentRegistry
from mesh.agents.remote import RemoteAgent, card_endpoint
from mesh.core.config import MeshConfig
from mesh.core.events import Event, EventBus
from mesh.core.kernel import Clock
from mesh.core.taskstate import GUARD
from mesh.errors import Conflict, InvalidInput, NotFound
from mesh.store import AgentRecord, Store, iso

log = logging.getLogger("airlock.agents")

NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
NAME_MAX_LENGTH = 100
RESERVED_NAMES = frozenset({GUARD})
CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
CARD_TIMEOUT_S = 10.0
CARD_MAX_BYTES = 1024 * 1024
CHANGED = "agents.changed"


def _card_urls(url: str) -> tuple[str, list[str]]:
    """The agent's base URL and the card URLs to try (a card URL given as ``url`` is used as is)."""
    for path in CARD_PATHS:
        if url.endswith(path):
            return url[: -len(path)], [url]
    return url, [url + path for path in CARD_PATHS]


async def fetch_card(url: str, timeout_s: float) -> tuple[str, dict[str, Any]]:
    """The agent's base URL and its card, from the well-known path (falling back to the older one).

    Raises :class:`InvalidInput` naming ``url`` when no valid card answers."""
    base, candidates = _card_urls(url)
    problems: list[str] = []
    timeout = aiohttp.ClientTimeout(total=min(timeout_s, CARD_TIMEOUT_S))
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for card_url in candidates:
            try:
                async with session.get(card_url, headers={"Accept": "application/json"}) as resp:
                    raw = await resp.content.read(CARD_MAX_BYTES + 1)
                    status = resp.status
            except TimeoutError:
                problems.append(f"{card_url}: no answer within {timeout.total:g}s")
                continue
            except aiohttp.ClientError as exc:
                problems.append(f"{card_url}: unreachable ({str(exc) or type(exc).__name__})")
                continue
            if status != 200:
                problems.append(f"{card_url}: HTTP {status}")
                continue
            if len(raw) > CARD_MAX_BYTES:
                problems.append(f"{card_url}: the card is larger than {CARD_MAX_BYTES} bytes")
                continue
            try:
                card = orjson.loads(raw)
            except orjson.JSONDecodeError:
                problems.append(f"{card_url}: not JSON")
                continue
            if not isinstance(card, dict):
                problems.append(f"{card_url}: not a JSON object")
                continue
            try:
                _check_card(card, base)
            except ValueError as exc:
                raise InvalidInput(f"url: {card_url} serves an invalid agent card: {exc}", field="url") from None
            return base, card
    raise InvalidInput(f"url: no agent card could be fetched ({'; '.join(problems)})", field="url")


def _check_card(card: Mapping[str, Any], base: str) -> None:
    if not isinstance(card.get("name"), str) or not card["name"]:
        raise ValueError("it has no name")
    skills = card.get("skills", [])
    if not isinstance(skills, list) or not all(isinstance(s, dict) for s in skills):
        raise ValueError("skills must be a list of objects")
    card_endpoint(card, base)


def agent_public(record: AgentRecord, agent: RemoteAgent | None = None) -> dict[str, Any]:
    if agent is None:
        try:
            agent = RemoteAgent(record.name, record.url, record.card)
        except ValueError:  # a stored card this version cannot use: listed, without skills
            agent = None
    skills = agent.skills() if agent is not None else []
    return {
        "name": record.name,
        "kind": "remote",
        "url": record.url,
        "card": record.card,
        "skills": skills,
        "created_at": iso(record.created_at),
    }


class AgentAdmin:
    """``config.agent_timeout_s`` is read when an agent is registered, so a changed setting reaches the next one."""

    def __init__(self, store: Store, clock: Clock, events: EventBus, agents: AgentRegistry, config: MeshConfig) -> None:
        self._store = store
        self._clock = clock
        self._events = events
        self._agents = agents
        self._config = config

    def _register(self, record: AgentRecord) -> RemoteAgent:
        agent = RemoteAgent(record.name, record.url, record.card, timeout_s=self._config.agent_timeout_s)
        previous = self._agents.remove(record.name)
        if isinstance(previous, RemoteAgent):
            previous.retire()
        self._agents.add(agent, default=False)
        return agent

    def _unregister(self, name: str) -> None:
        agent = self._agents.get(name)
        if isinstance(agent, RemoteAgent):
            self._agents.remove(name)
            agent.retire()

    def _changed(self, tenant: str, name: str, change: str) -> None:
        self._events.publish(Event(kind=CHANGED, tenant=tenant, subject=name, data={"change": change}))

    async def add_agent(self, tenant: str, actor: str, body: Mapping[str, str]) -> dict[str, Any]:
        """``body`` has the shape the gateway's ``AgentCreate`` checked (a name of ``NAME_RE``, an http(s)
        URL); what is checked here needs the mesh: a reserved or in-process name, and the card the URL serves."""
        name, url = body["name"], body["url"].rstrip("/")
        if name in RESERVED_NAMES:
            raise InvalidInput(f"name {name!r} is reserved", field="name")
        existing = self._agents.get(name)
        if existing is not None and not isinstance(existing, RemoteAgent):
            raise Conflict(f"{name!r} is the name of an in-process agent", field="name")
        base, card = await fetch_card(url, self._config.agent_timeout_s)
        now = self._clock()
        record = AgentRecord(name=name, url=base, card=card, created_at=now)
        async with self._store.transaction() as tx:
            created = await tx.put_agent(record)
            if created:
                await tx.audit(
                    tenant=tenant,
                    kind="agent.created",
                    actor=actor,
                    subject=name,
                    detail={"url": base, "card_name": card.get("name")},
                    now=now,
                )
        if not created:
            raise Conflict(f"an agent named {name!r} already exists", field="name")
        agent = self._register(record)
        self._changed(tenant, name, "added")
        return agent_public(record, agent)

    async def delete_agent(self, tenant: str, actor: str, name: str) -> None:
        existing = self._agents.get(name)
        if existing is not None and not isinstance(existing, RemoteAgent):
            raise InvalidInput(f"{name!r} is an in-process agent; it cannot be deleted", field="name")
        now = self._clock()
        async with self._store.transaction() as tx:
            found = await tx.delete_agent(name)
            if found:
                await tx.audit(tenant=tenant, kind="agent.deleted", actor=actor, subject=name, detail={}, now=now)
        if not found:
            raise NotFound(f"no agent {name!r}")
        self._unregister(name)
        self._changed(tenant, name, "deleted")

    async def page_agents(self, *, limit: int, after: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the agents: the in-process ones (``kind: local``) by name, then the downstream ones as
        stored (``kind: remote``) by name, and where the next page starts (None at the end).

        ``after`` is what an earlier page returned: ``local:<name>`` or ``remote:<name>``, the last agent
        listed. The two kinds are paged one after the other, not merged, so each is ordered by its own rules
        (Python's for the registry, the database's for the store) and no page repeats or skips an agent.
        Raises :class:`InvalidInput` naming ``cursor`` for any other ``after``."""
        section, name = "local", None
        if after is not None:
            section, _, name = after.partition(":")
            if section not in ("local", "remote") or not name:
                raise InvalidInput("cursor: not a cursor this server gave", field="cursor")
        out: list[dict[str, Any]] = []
        if section == "local":
            local = sorted((a for a in self._agents.all() if not isinstance(a, RemoteAgent)), key=lambda a: a.name)
            for agent in [a for a in local if name is None or a.name > name][: limit + 1]:
                out.append(
                    {
                        "name": agent.name,
                        "kind": "local",
                        "description": agent.description,
                        "skills": agent.skills(),
                        "default": self._agents.default == agent.name,
                    }
                )
            name = None  # the downstream agents start from the first
        if len(out) <= limit:
            for record in await self._store.list_agents(after=name, limit=limit + 1 - len(out)):
                registered = self._agents.get(record.name)
                out.append(agent_public(record, registered if isinstance(registered, RemoteAgent) else None))
        if len(out) <= limit:
            return out, None
        page = out[:limit]
        return page, f"{page[-1]['kind']}:{page[-1]['name']}"

    async def load_agents(self) -> int:
        """Make the registry's downstream agents match the store: register new ones, drop deleted ones,
        replace changed ones. Called at start and when another replica changed the list. Returns how many
        downstream agents are registered."""
        records = {r.name: r for r in await self._store.list_agents()}
        for agent in self._agents.all():
            if isinstance(agent, RemoteAgent):
                record = records.get(agent.name)
                if record is None or record.url != agent.url or record.card != agent.card:
                    self._unregister(agent.name)
        count = 0
        for record in records.values():
            existing = self._agents.get(record.name)
            if isinstance(existing, RemoteAgent):
                count += 1
                continue
            if existing is not None:
                log.warning("stored agent %r is not loaded: an in-process agent has that name", record.name)
                continue
            try:
                self._register(record)
            except ValueError as exc:
                log.warning("stored agent %r is not loaded: %s", record.name, exc)
                continue
            count += 1
        return count
