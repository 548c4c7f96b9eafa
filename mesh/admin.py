"""Policy and channel administration: validate, write with an audit entry, refresh the compiled set."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from a2ui import FormError, approval_form
from mesh.errors import Conflict, InvalidInput, NotFound
from mesh.policy import Policy, PolicyError, apply_update, parse_policy
from mesh.store import ChannelRecord, iso

if TYPE_CHECKING:
    from mesh.service import Mesh

CHANNEL_TYPES = frozenset({"webhook"})
# A hold's deadline must stay a representable date; ten years is far beyond any human wait.
MAX_TIMEOUT_S = 10 * 365 * 86400


def _check_timeout(policy: Policy) -> None:
    if policy.timeout_s is not None and policy.timeout_s > MAX_TIMEOUT_S:
        raise InvalidInput(f"timeout: must be at most {MAX_TIMEOUT_S} seconds (10 years)", field="timeout")


def _check_form_fields(policy: Policy) -> None:
    """The extra fields a policy adds must make a valid form (checked now, not at the first hold)."""
    try:
        approval_form(None, policy.config.get("fields", []))
    except FormError as exc:
        raise InvalidInput(f"evaluator.config.fields: {exc}", field="evaluator.config.fields") from None


class PolicyAdmin:
    """Mixed into :class:`mesh.service.Mesh`."""

    async def create_policy(self: Mesh, tenant: str, actor: str, body: Any) -> dict[str, Any]:  # type: ignore[misc]
        try:
            policy = parse_policy(body, tenant)
        except PolicyError as exc:
            raise InvalidInput(str(exc), field=exc.field) from None
        _check_timeout(policy)
        _check_form_fields(policy)
        await self._check_channels(tenant, policy.channels)
        now = self.clock()
        policy = policy.model_copy(update={"created_at": iso(now), "updated_at": iso(now)})
        async with self.store.transaction() as tx:
            created = await tx.put_policy(tenant, policy.name, policy.model_dump(mode="json"), now, create=True)
            if created:
                await tx.audit(
                    tenant=tenant,
                    kind="policy.created",
                    actor=actor,
                    subject=policy.name,
                    detail=policy.to_public(),
                    now=now,
                )
        if not created:
            raise Conflict(f"a policy named {policy.name!r} already exists", field="name")
        self.policies_changed(tenant)
        return policy.to_public()

    async def update_policy(self: Mesh, tenant: str, actor: str, body: Any) -> dict[str, Any]:  # type: ignore[misc]
        if not isinstance(body, dict) or not isinstance(body.get("policy_id"), str):
            raise InvalidInput("policy_id is required", field="policy_id")
        fields = {k: v for k, v in body.items() if k != "policy_id"}
        current = await self.store.get_policy(tenant, body["policy_id"])
        if current is None:
            raise NotFound(f"no policy {body['policy_id']!r}")
        try:
            policy = apply_update(Policy.model_validate(current), fields)
        except PolicyError as exc:
            raise InvalidInput(str(exc), field=exc.field) from None
        _check_timeout(policy)
        _check_form_fields(policy)
        await self._check_channels(tenant, policy.channels)
        now = self.clock()
        policy = policy.model_copy(update={"updated_at": iso(now)})
        async with self.store.transaction() as tx:
            found = await tx.put_policy(tenant, policy.name, policy.model_dump(mode="json"), now, create=False)
            if found:
                await tx.audit(
                    tenant=tenant, kind="policy.updated", actor=actor, subject=policy.name, detail=fields, now=now
                )
        if not found:
            raise NotFound(f"no policy {policy.name!r}")
        self.policies_changed(tenant)
        return policy.to_public()

    async def delete_policy(self: Mesh, tenant: str, actor: str, name: Any) -> None:  # type: ignore[misc]
        if not isinstance(name, str) or not name:
            raise InvalidInput("policy_id is required", field="policy_id")
        now = self.clock()
        async with self.store.transaction() as tx:
            found = await tx.delete_policy(tenant, name)
            if found:
                await tx.audit(tenant=tenant, kind="policy.deleted", actor=actor, subject=name, detail={}, now=now)
        if not found:
            raise NotFound(f"no policy {name!r}")
        self.policies_changed(tenant)

    async def list_policies(self: Mesh, tenant: str) -> list[dict[str, Any]]:  # type: ignore[misc]
        return [Policy.model_validate(b).to_public() for b in await self.store.list_policies(tenant)]

    async def _check_channels(self: Mesh, tenant: str, names: list[str]) -> None:  # type: ignore[misc]
        for name in names:
            if await self.store.get_channel(tenant, name) is None:
                raise InvalidInput(f"channels: no channel named {name!r}", field="channels")

    async def create_channel(self: Mesh, tenant: str, actor: str, body: Any) -> dict[str, Any]:  # type: ignore[misc]
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
        now = self.clock()
        channel = ChannelRecord(tenant=tenant, name=name, type=kind, config=config, created_at=now)
        async with self.store.transaction() as tx:
            created = await tx.put_channel(channel)
            if created:
                await tx.audit(
                    tenant=tenant, kind="channel.created", actor=actor, subject=name, detail={"type": kind}, now=now
                )
        if not created:
            raise Conflict(f"a channel named {name!r} already exists", field="name")
        return channel_public(channel)

    async def delete_channel(self: Mesh, tenant: str, actor: str, name: Any) -> None:  # type: ignore[misc]
        if not isinstance(name, str) or not name:
            raise InvalidInput("name is required", field="name")
        # A policy naming a missing channel could no longer be updated (its channels fail validation).
        users = sorted(b["name"] for b in await self.store.list_policies(tenant) if name in b.get("channels", []))
        if users:
            raise Conflict(f"channel {name!r} is used by policy {users[0]!r}; remove it there first", field="name")
        now = self.clock()
        async with self.store.transaction() as tx:
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
