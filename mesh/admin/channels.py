"""Channel administration: where a policy's holds are announced."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from mesh.core.kernel import Clock
from mesh.errors import Conflict, InvalidInput, NotFound
from mesh.store import ChannelRecord, Store, iso

CHANNEL_TYPES = frozenset({"webhook"})


class ChannelAdmin:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def list_channels(self, tenant: str) -> list[dict[str, Any]]:
        return [channel_public(c) for c in await self._store.list_channels(tenant)]

    async def create_channel(self, tenant: str, actor: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidInput("request body must be a JSON object")
        name, kind, config = body.get("name"), body.get("type"), body.get("config", {})
        if not isinstance(name, str) or not name or len(name) > 100:
            raise InvalidInput("name is required (1 to 100 characters)", field="name")
        if not isinstance(kind, str) or kind not in CHANNEL_TYPES:
            raise InvalidInput(f"type must be one of: {', '.join(sorted(CHANNEL_TYPES))}", field="type")
        if not isinstance(config, dict):
            raise InvalidInput("config must be an object", field="config")
        url = config.get("url")
        try:
            parsed = urlparse(url) if isinstance(url, str) else None
        except ValueError:  # e.g. an unclosed IPv6 bracket
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise InvalidInput("config.url must be an http(s) URL", field="config.url")
        unknown = sorted(set(body) - {"name", "type", "config"})
        if unknown:
            raise InvalidInput(f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
        now = self._clock()
        channel = ChannelRecord(tenant=tenant, name=name, type=kind, config=config, created_at=now)
        async with self._store.transaction() as tx:
            created = await tx.put_channel(channel)
            if created:
                await tx.audit(
                    tenant=tenant, kind="channel.created", actor=actor, subject=name, detail={"type": kind}, now=now
                )
        if not created:
            raise Conflict(f"a channel named {name!r} already exists", field="name")
        return channel_public(channel)

    async def delete_channel(self, tenant: str, actor: str, name: Any) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidInput("name is required", field="name")
        # A policy naming a missing channel could no longer be updated (its channels fail validation).
        users = sorted(b["name"] for b in await self._store.list_policies(tenant) if name in b.get("channels", []))
        if users:
            raise Conflict(f"channel {name!r} is used by policy {users[0]!r}; remove it there first", field="name")
        now = self._clock()
        async with self._store.transaction() as tx:
            found = await tx.delete_channel(tenant, name)
            if found:
                await tx.audit(tenant=tenant, kind="channel.deleted", actor=actor, subject=name, detail={}, now=now)
        if not found:
            raise NotFound(f"no channel {name!r}")



def channel_public(channel: ChannelRecord) -> dict[str, Any]:
    return {
        "name": channel.name,
        "type": channel.type,
        "config": channel.config,
        "tenant_id": channel.tenant,
        "created_at": iso(channel.created_at),
    }
