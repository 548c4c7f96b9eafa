"""Policy administration: validate, write with an audit entry, refresh the compiled set."""

from __future__ import annotations

from typing import Any

from a2ui import FormError, approval_form
from mesh.core.config import MAX_TIMEOUT_S
from mesh.core.kernel import Clock
from mesh.core.policies import PolicyCache
from mesh.errors import Conflict, InvalidInput, NotFound
from mesh.policy import Policy, PolicyError, apply_update, parse_policy
from mesh.store import Store, iso


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
    def __init__(self, store: Store, clock: Clock, policies: PolicyCache) -> None:
        self._store = store
        self._clock = clock
        self._policies = policies

    async def create_policy(self, tenant: str, actor: str, body: Any) -> dict[str, Any]:
        try:
            policy = parse_policy(body, tenant)
        except PolicyError as exc:
            raise InvalidInput(str(exc), field=exc.field) from None
        _check_timeout(policy)
        _check_form_fields(policy)
        await self._check_channels(tenant, policy.channels)
        await self._check_channels(tenant, policy.escalate_to, "escalate_to")
        now = self._clock()
        policy = policy.model_copy(update={"created_at": iso(now), "updated_at": iso(now)})
        async with self._store.transaction() as tx:
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
        self._policies.changed(tenant)
        return policy.to_public()

    async def update_policy(self, tenant: str, actor: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("policy_id"), str):
            raise InvalidInput("policy_id is required", field="policy_id")
        fields = {k: v for k, v in body.items() if k != "policy_id"}
        current = await self._store.get_policy(tenant, body["policy_id"])
        if current is None:
            raise NotFound(f"no policy {body['policy_id']!r}")
        try:
            policy = apply_update(Policy.model_validate(current), fields)
        except PolicyError as exc:
            raise InvalidInput(str(exc), field=exc.field) from None
        _check_timeout(policy)
        _check_form_fields(policy)
        await self._check_channels(tenant, policy.channels)
        await self._check_channels(tenant, policy.escalate_to, "escalate_to")
        now = self._clock()
        policy = policy.model_copy(update={"updated_at": iso(now)})
        async with self._store.transaction() as tx:
            found = await tx.put_policy(tenant, policy.name, policy.model_dump(mode="json"), now, create=False)
            if found:
                await tx.audit(
                    tenant=tenant, kind="policy.updated", actor=actor, subject=policy.name, detail=fields, now=now
                )
        if not found:
            raise NotFound(f"no policy {policy.name!r}")
        self._policies.changed(tenant)
        return policy.to_public()

    async def delete_policy(self, tenant: str, actor: str, name: str) -> None:
        """``name`` comes from a body the gateway's model has checked (a non-empty string)."""
        now = self._clock()
        async with self._store.transaction() as tx:
            found = await tx.delete_policy(tenant, name)
            if found:
                await tx.audit(tenant=tenant, kind="policy.deleted", actor=actor, subject=name, detail={}, now=now)
        if not found:
            raise NotFound(f"no policy {name!r}")
        self._policies.changed(tenant)

    async def list_policies(self, tenant: str) -> list[dict[str, Any]]:
        """Every policy of the tenant (the dashboard shows them on one page)."""
        return [Policy.model_validate(b).to_public() for b in await self._store.list_policies(tenant)]

    async def page_policies(
        self, tenant: str, *, limit: int, after: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the tenant's policies by name, after the name ``after``, and the name to page on
        from (None at the end). One row past the page is read, so a full last page says it is the last."""
        rows = await self._store.list_policies(tenant, after=after, limit=limit + 1)
        page = [Policy.model_validate(b).to_public() for b in rows[:limit]]
        return page, page[-1]["name"] if len(rows) > limit else None

    async def _check_channels(self, tenant: str, names: list[str], field: str = "channels") -> None:
        for name in names:
            if await self._store.get_channel(tenant, name) is None:
                raise InvalidInput(f"{field}: no channel named {name!r}", field=field)
