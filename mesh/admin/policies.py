"""Policy administration: validate, write with an audit entry, refresh the compiled set; or, for a dry-run,
validate the same way and judge the tenant's recorded decisions by the set as it would be (nothing written)."""

from __future__ import annotations

from typing import Any

from a2ui import FormError, approval_form
from mesh.admin.dryrun import DEFAULT_LIMIT, compare, parse_since
from mesh.core.config import MAX_TIMEOUT_S
from mesh.core.kernel import Clock
from mesh.core.policies import PolicyCache
from mesh.errors import Conflict, InvalidInput, NotFound
from mesh.policy import Policy, PolicyError, apply_update, compile_policies, parse_policy
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

    async def _new(self, tenant: str, body: Any) -> Policy:
        """A create body as a policy, with every check a create makes (a 400 naming the field)."""
        try:
            policy = parse_policy(body, tenant)
        except PolicyError as exc:
            raise InvalidInput(str(exc), field=exc.field) from None
        await self._check(tenant, policy)
        return policy

    async def _check(self, tenant: str, policy: Policy) -> None:
        _check_timeout(policy)
        _check_form_fields(policy)
        await self._check_channels(tenant, policy.channels)
        await self._check_channels(tenant, policy.escalate_to, "escalate_to")

    async def create_policy(self, tenant: str, actor: str, body: Any) -> dict[str, Any]:
        policy = await self._new(tenant, body)
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
        dry_run = fields.pop("dry_run", False) is True
        try:
            policy = apply_update(Policy.model_validate(current), fields)
        except PolicyError as exc:
            raise InvalidInput(str(exc), field=exc.field) from None
        await self._check(tenant, policy)
        if dry_run:
            return await self._dry_run(tenant, policy, replaces=policy.name)
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

    async def dry_run(
        self,
        tenant: str,
        body: Any,
        *,
        replaces: str | None = None,
        since: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        """What the policy ``body`` (a create body) would have decided of the tenant's last ``limit``
        decisions (those since ``since``), added to the set or in place of the policy ``replaces``; nothing
        is written. The body is checked as a create checks it, its errors named under ``policy.``."""
        try:
            policy = await self._new(tenant, body)
        except InvalidInput as exc:
            field = f"policy.{exc.field}" if exc.field else "policy"
            raise InvalidInput(f"policy.{exc.message}" if exc.field else exc.message, field=field) from None
        return await self._dry_run(tenant, policy, replaces=replaces, since=since, limit=limit)

    async def _dry_run(
        self,
        tenant: str,
        policy: Policy,
        *,
        replaces: str | None,
        since: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        now = self._clock()
        try:
            # no decision is older than the epoch: an earlier bound (a duration of ages) is the same as none
            bound = max(parse_since(since, now), 0.0) if since is not None else None
        except ValueError as exc:
            raise InvalidInput(f"since: {exc}", field="since") from None
        current = [Policy.model_validate(b) for b in await self._store.list_policies(tenant)]
        if replaces is not None and all(p.name != replaces for p in current):
            raise NotFound(f"no policy {replaces!r}", field="replaces")
        rest = [p for p in current if p.name != replaces]
        if any(p.name == policy.name for p in rest):
            raise Conflict(
                f"a policy named {policy.name!r} already exists; name it in replaces to try a change of it",
                field="policy.name",
            )
        records = await self._store.recent_decisions(tenant, since=bound, limit=limit)
        result = await compare(records, compile_policies(current), compile_policies([*rest, policy]))
        return {
            "dry_run": True,
            "policy": policy.to_public(),
            "replaces": replaces,
            "since": iso(bound) if bound is not None else None,
            "limit": limit,
            **result,
        }

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
