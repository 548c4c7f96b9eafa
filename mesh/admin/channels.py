"""Channel administration: where a policy's holds are announced, and how.

Each type's ``config`` is checked against that type's JSON Schema (``GET /internal/channel-types`` serves
them); secret values (a webhook's signing secret, a bot token, a signing secret, an SMTP password) are
sealed before they are stored and never shown again: every listing masks them. A webhook created without
a secret gets one, shown once, in the answer that created it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from mesh.core.config import MeshConfig
from mesh.core.kernel import Clock
from mesh.credentials import seal, unseal
from mesh.delivery.channels.base import EVENTS, ChannelType
from mesh.delivery.channels.webhook import new_secret
from mesh.errors import Conflict, InvalidInput, NotFound
from mesh.store import ChannelRecord, Store, iso

MASK = "********"
URL_KEYS = ("url", "api_base")


class ChannelAdmin:
    def __init__(self, store: Store, clock: Clock, config: MeshConfig, types: dict[str, ChannelType]) -> None:
        self._store = store
        self._clock = clock
        self._config = config
        self._types = types
        self._validators = {name: Draft202012Validator(t.config_schema) for name, t in types.items()}

    def channel_types(self) -> list[dict[str, Any]]:
        return [
            {"type": name, "config_schema": t.config_schema, "secrets": sorted(t.secrets), "events": list(EVENTS)}
            for name, t in sorted(self._types.items())
        ]

    async def page_channels(
        self, tenant: str, *, limit: int, after: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the tenant's channels by name, after the name ``after``, and the name to page on from
        (None at the end). One row past the page is read, so a full last page says it is the last."""
        rows = await self._store.list_channels(tenant, after=after, limit=limit + 1)
        page = [self.public(c) for c in rows[:limit]]
        return page, page[-1]["name"] if len(rows) > limit else None

    def public(self, channel: ChannelRecord) -> dict[str, Any]:
        """A channel as an admin sees it: secrets masked, always."""
        kind = self._types.get(channel.type)
        secrets = kind.secrets if kind is not None else frozenset()
        config = {k: (MASK if k in secrets and v else v) for k, v in channel.config.items()}
        return {
            "name": channel.name,
            "type": channel.type,
            "config": config,
            "events": channel.events,
            "tenant_id": channel.tenant,
            "created_at": iso(channel.created_at),
        }

    async def create_channel(self, tenant: str, actor: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` has the shape the gateway's ``ChannelCreate`` checked (name, a known type, a config
        object, events); what is checked here is the config against its type, which only the type knows."""
        name, kind_name, config = body["name"], body["type"], body.get("config", {})
        if kind_name not in self._types:  # a type this server was not built with
            raise InvalidInput(f"type must be one of: {', '.join(sorted(self._types))}", field="type")
        kind = self._types[kind_name]
        events = _events(body.get("events"))
        config = dict(config)
        made: dict[str, str] = {}
        if kind_name == "webhook" and not config.get("secret"):
            config["secret"] = made["secret"] = new_secret()
        self._check(kind, config)
        now = self._clock()
        channel = ChannelRecord(
            tenant=tenant, name=name, type=kind_name, config=self._sealed(kind, config), created_at=now, events=events
        )
        async with self._store.transaction() as tx:
            created = await tx.put_channel(channel)
            if created:
                detail = {"type": kind_name, "events": events}
                await tx.audit(tenant=tenant, kind="channel.created", actor=actor, subject=name, detail=detail, now=now)
        if not created:
            raise Conflict(f"a channel named {name!r} already exists", field="name")
        out = self.public(channel)
        out["config"].update(made)  # a secret made here is shown this once
        return out

    async def update_channel(self, tenant: str, actor: str, body: dict[str, Any]) -> dict[str, Any]:
        """``config`` is merged into the channel's: a key given replaces, a key given as null is removed, a key
        left out is kept (so a secret need not be sent again to change something else). ``events`` replaces
        (null: every event). ``body`` has the shape the gateway's ``ChannelUpdate`` checked."""
        name = body["name"]
        channel = await self._store.get_channel(tenant, name)
        if channel is None:
            raise NotFound(f"no channel {name!r}")
        kind = self._types.get(channel.type)
        if kind is None:
            raise InvalidInput(f"channel {name!r} is of a type this server does not know", field="name")
        changes = body.get("config") or {}
        config = self._opened(kind, channel.config)
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        self._check(kind, config)
        channel.config = self._sealed(kind, config)
        if "events" in body:
            channel.events = _events(body["events"])
        now = self._clock()
        async with self._store.transaction() as tx:
            found = await tx.update_channel(channel)
            if found:
                detail = {"config": sorted(changes), "events": channel.events}
                await tx.audit(tenant=tenant, kind="channel.updated", actor=actor, subject=name, detail=detail, now=now)
        if not found:
            raise NotFound(f"no channel {name!r}")
        return self.public(channel)

    async def delete_channel(self, tenant: str, actor: str, name: str) -> None:
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

    def _check(self, kind: ChannelType, config: dict[str, Any]) -> None:
        error = best_match(self._validators[kind.name].iter_errors(config))
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path)
            if error.validator == "required":
                missing = error.message.split("'")[1] if "'" in error.message else ""
                where = ".".join(p for p in (where, missing) if p)
            field = f"config.{where}" if where else "config"
            # a secret's value is never echoed back in an error
            problem = "is not valid" if where in kind.secrets else error.message
            raise InvalidInput(f"{field}: {problem}", field=field)
        for key in URL_KEYS:
            if key in config and not _is_url(config[key]):
                raise InvalidInput(f"config.{key} must be an http(s) URL", field=f"config.{key}")
        try:
            kind.check(config, signing=self._config.signing_key is not None)
        except ValueError as exc:
            where, _, problem = str(exc).partition(": ")
            raise InvalidInput(f"config.{where}: {problem}", field=f"config.{where}") from None

    def _sealed(self, kind: ChannelType, config: dict[str, Any]) -> dict[str, Any]:
        key = self._config.callback_key
        return {k: (seal(key, v) if k in kind.secrets and isinstance(v, str) else v) for k, v in config.items()}

    def _opened(self, kind: ChannelType, config: dict[str, Any]) -> dict[str, Any]:
        key = self._config.callback_key
        return {k: (unseal(key, v) if k in kind.secrets and isinstance(v, str) else v) for k, v in config.items()}


def _events(value: list[str] | None) -> list[str] | None:
    """The events as stored: each once, in the order of ``EVENTS`` (the model checked they are known)."""
    if value is None:
        return None
    return sorted(set(value), key=EVENTS.index)


def _is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parsed = urlparse(value)
        _ = parsed.port  # a port that is not a number raises
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)
