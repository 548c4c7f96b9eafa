"""Policy dry-runs: ``POST /internal/policies/dry-run`` and ``/internal/policies/update`` with ``dry_run: true``
judge the tenant's recorded calls by the policy set as it would be, and write nothing; the kept actions are
masked where a form marks a value sensitive, and the sweeper drops them past their retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from a2ui import MASK
from mesh.store import Store
from tests.conftest import GUIDE_POLICY, Airlock, bearer, start_airlock, tool_message
from tests.gateway.conftest import error_of

ADMIN = bearer("root", "admin")
# the bulk deletes an agent made before any policy existed: item counts, oldest first (three over 10)
SIZES = (3, 12, 10, 15, 1, 11)


def items(n: int) -> list[str]:
    return [f"rec-{i:03d}" for i in range(n)]


async def call(airlock: Airlock, tool: str, arguments: dict[str, Any], headers: dict[str, str] | None = None) -> dict:
    reply = await airlock.rpc(tool_message(tool, arguments), headers)
    return reply["result"]


async def record_bulk_calls(airlock: Airlock) -> list[str]:
    """Send the bulk deletes while no policy exists (each allowed); their task ids, oldest first."""
    ids = []
    for n in SIZES:
        task = await call(airlock, "bulk_delete", {"items": items(n)})
        assert task["status"]["state"] == "completed", task
        ids.append(task["id"])
    return ids


async def dry_run(airlock: Airlock, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return await airlock.gateway.post("/internal/policies/dry-run", json=body, headers=headers or ADMIN)


async def ok(resp: Any) -> dict[str, Any]:
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def snapshot(store: Store) -> tuple[Any, ...]:
    """Everything a dry-run could write: the audit trail and its head, the policies, the kept decisions, the
    event log."""
    return (
        [e.hash for e in await store.audit_entries(limit=10_000)],
        await store.audit_head(),
        await store.list_policies("default"),
        await store.recent_decisions("default", limit=10_000),
        await store.latest_event_seq("default"),
    )


async def test_the_seed_policy_would_have_held_the_bulk_deletes_over_its_threshold(airlock: Airlock) -> None:
    ids = await record_bulk_calls(airlock)
    result = await ok(await dry_run(airlock, {"policy": GUIDE_POLICY}))
    assert result["dry_run"] is True
    assert result["evaluated"] == len(SIZES)
    assert result["changed"] == 3
    assert result["transitions"] == {"allow→require_approval": 3}
    assert result["differs_from_recorded"] == 0  # nothing changed since they were decided
    assert result["replaces"] is None and result["since"] is None and result["limit"] == 1000
    assert result["policy"]["name"] == "bulk_ops_approval"
    # newest first: the 11-, 15- and 12-item deletes
    held = [ids[i] for i in (5, 3, 1)]
    assert [e["task_id"] for e in result["examples"]] == held
    for example, n in zip(result["examples"], (11, 15, 12), strict=True):
        assert example["tool"] == "bulk_delete" and example["agent"] == "alice"
        assert (example["recorded"], example["before"], example["after"]) == ("allow", "allow", "require_approval")
        assert example["policy"] == "bulk_ops_approval" and example["policy_before"] is None
        assert example["arguments"] == {"items": items(n)}
        assert example["reason"] == f"bulk_delete touches {n} items (threshold 10)"
        assert example["at"].endswith("Z")


async def test_a_dry_run_writes_nothing(airlock: Airlock) -> None:
    await record_bulk_calls(airlock)
    await airlock.add_policy(GUIDE_POLICY, enforcement="allow")
    before = await snapshot(airlock.mesh.store)
    await ok(await dry_run(airlock, {"policy": {**GUIDE_POLICY, "name": "other"}}))
    await ok(await dry_run(airlock, {"policy": GUIDE_POLICY, "replaces": "bulk_ops_approval", "limit": 2}))
    await ok(
        await airlock.gateway.post(
            "/internal/policies/update",
            json={"policy_id": "bulk_ops_approval", "enforcement": "block", "dry_run": True},
            headers=ADMIN,
        )
    )
    assert await snapshot(airlock.mesh.store) == before
    # and the compiled set is the saved one: the next big delete is still allowed
    assert (await call(airlock, "bulk_delete", {"items": items(20)}))["status"]["state"] == "completed"


async def test_replacing_a_policy_shows_what_its_change_would_release(airlock: Airlock) -> None:
    await airlock.add_policy()
    held = [await call(airlock, "bulk_delete", {"items": items(n)}) for n in (12, 2)]
    assert [t["status"]["state"] for t in held] == ["input-required", "completed"]
    loose = {**GUIDE_POLICY, "enforcement": "allow"}
    result = await ok(await dry_run(airlock, {"policy": loose, "replaces": "bulk_ops_approval"}))
    assert (result["evaluated"], result["changed"]) == (2, 1)
    assert result["transitions"] == {"require_approval→allow": 1}
    [example] = result["examples"]
    assert example["task_id"] == held[0]["id"]
    assert (example["policy_before"], example["policy"]) == ("bulk_ops_approval", "bulk_ops_approval")
    # a new name in place of the old policy is a rename: the same answer
    renamed = await ok(await dry_run(airlock, {"policy": {**loose, "name": "bulk"}, "replaces": "bulk_ops_approval"}))
    assert renamed["transitions"] == {"require_approval→allow": 1}


async def test_update_with_dry_run_saves_nothing_and_answers_the_dry_run(airlock: Airlock) -> None:
    await record_bulk_calls(airlock)
    policy = await airlock.add_policy(GUIDE_POLICY, enforcement="allow")
    before = await snapshot(airlock.mesh.store)
    resp = await airlock.gateway.post(
        "/internal/policies/update",
        json={"policy_id": "bulk_ops_approval", "enforcement": "require_approval", "dry_run": True},
        headers=ADMIN,
    )
    result = await ok(resp)
    assert result["dry_run"] is True and result["replaces"] == "bulk_ops_approval"
    assert result["policy"]["enforcement"] == "require_approval"
    assert (result["evaluated"], result["changed"]) == (len(SIZES), 3)
    assert result["transitions"] == {"allow→require_approval": 3}
    assert await snapshot(airlock.mesh.store) == before
    listed = await (await airlock.gateway.get("/internal/policies", headers=ADMIN)).json()
    assert listed["policies"] == [policy]
    # the update's own checks come first: a bad field is a 400 naming it, an unknown policy a 404
    bad = {"policy_id": "bulk_ops_approval", "evaluator": {"config": {"threshold": -1}}, "dry_run": True}
    resp = await airlock.gateway.post("/internal/policies/update", json=bad, headers=ADMIN)
    await error_of(resp, 400, field="evaluator.config.threshold")
    resp = await airlock.gateway.post(
        "/internal/policies/update", json={"policy_id": "nope", "dry_run": True}, headers=ADMIN
    )
    await error_of(resp, 404)


async def test_a_bad_policy_body_is_a_400_naming_the_field_as_for_new(airlock: Airlock) -> None:
    cases = [
        ({**GUIDE_POLICY, "priority": "high"}, "priority"),
        ({**GUIDE_POLICY, "evaluator": {"plugin": "bulk_operation", "config": {"threshold": -1}}}, None),
        ({**GUIDE_POLICY, "evaluator": {"plugin": "bulk_operation", "config": {"treshold": 10}}}, None),
        ({**GUIDE_POLICY, "channels": ["nowhere"]}, "channels"),
        ({**GUIDE_POLICY, "scope_type": "agent"}, "agents"),
        ({k: v for k, v in GUIDE_POLICY.items() if k != "enforcement"}, "enforcement"),
    ]
    for body, field in cases:
        new = await airlock.gateway.post("/internal/policies/new", json=body, headers=ADMIN)
        named = (await new.json())["error"]["field"]
        assert new.status == 400 and (field is None or named == field), named
        err = await error_of(await dry_run(airlock, {"policy": body}), 400, field=f"policy.{named}")
        assert err["message"].startswith(f"policy.{named}")
    await error_of(await dry_run(airlock, {}), 400, field="policy")
    await error_of(await dry_run(airlock, {"policy": GUIDE_POLICY, "limit": 10_001}), 400, field="limit")
    await error_of(await dry_run(airlock, {"policy": GUIDE_POLICY, "limit": 0}), 400, field="limit")
    for since in ("yesterday", "2025-13-01T00:00:00Z", "2025-06-01", " 2025-06-01T00:00:00Z", "0s"):
        await error_of(await dry_run(airlock, {"policy": GUIDE_POLICY, "since": since}), 400, field="since")
    await error_of(await dry_run(airlock, {"policy": GUIDE_POLICY, "extra": 1}), 400, field="extra")
    await error_of(await dry_run(airlock, {"policy": GUIDE_POLICY, "replaces": "nope"}), 404, field="replaces")
    await airlock.add_policy()
    await error_of(await dry_run(airlock, {"policy": GUIDE_POLICY}), 409, field="policy.name")
    await error_of(await dry_run(airlock, {"policy": GUIDE_POLICY}, bearer("bob", "approver")), 403)
    assert (await airlock.gateway.post("/internal/policies/dry-run", json={"policy": GUIDE_POLICY})).status == 401


async def test_limit_and_since_bound_what_is_judged(tmp_path: Path) -> None:
    now = [1_750_000_000.0]
    async with start_airlock(tmp_path, clock=lambda: now[0]) as airlock:
        for n in (12, 13):  # two days ago
            await call(airlock, "bulk_delete", {"items": items(n)})
        now[0] += 2 * 86400
        recent = [await call(airlock, "bulk_delete", {"items": items(n)}) for n in (14, 2, 16)]
        newest = await ok(await dry_run(airlock, {"policy": GUIDE_POLICY, "limit": 2}))
        assert (newest["evaluated"], newest["changed"]) == (2, 1)
        assert [e["task_id"] for e in newest["examples"]] == [recent[2]["id"]]
        day = await ok(await dry_run(airlock, {"policy": GUIDE_POLICY, "since": "24h"}))
        assert (day["evaluated"], day["changed"]) == (3, 2)
        assert day["since"] == "2025-06-16T15:06:40.000Z"  # now less a day
        since = "2025-06-16T02:00:00+02:00"  # midnight UTC: the first two were made the day before
        assert (await ok(await dry_run(airlock, {"policy": GUIDE_POLICY, "since": since})))["evaluated"] == 3
        every = await ok(await dry_run(airlock, {"policy": GUIDE_POLICY, "since": "9999999999d"}))
        assert (every["evaluated"], every["changed"], every["since"]) == (5, 4, "1970-01-01T00:00:00.000Z")
        # another tenant's calls are not this tenant's
        other = bearer("root", "admin", tenant="acme")
        assert (await ok(await dry_run(airlock, {"policy": GUIDE_POLICY}, other)))["evaluated"] == 0


async def test_sensitive_values_are_masked_where_kept_and_in_the_examples(airlock: Airlock) -> None:
    # an (unrelated) policy whose form marks api_key sensitive by type and note by flag
    fields = [
        {"id": "api_key", "type": "password", "label": "Key"},
        {"id": "note", "type": "text", "label": "Note", "sensitive": True},
    ]
    await airlock.add_policy(
        {
            "name": "prod_deploys",
            "scope_type": "tool",
            "enforcement": "require_approval",
            "evaluator": {"plugin": "tool_match", "config": {"tools": ["deploy.prod"], "fields": fields}},
        }
    )
    secret = "sk-live-0123456789"
    arguments = {"items": items(12), "api_key": secret, "target": {"note": "pager 5551234"}, "count": 1}
    message = tool_message("bulk_delete", arguments)
    message["params"]["message"]["parts"].insert(0, {"kind": "text", "text": f"use {secret} please"})
    task = (await airlock.rpc(message))["result"]
    assert task["status"]["state"] == "completed"
    [kept] = await airlock.mesh.store.recent_decisions("default")
    assert kept.action["arguments"] == {
        "items": items(12),
        "api_key": MASK,
        "target": {"note": MASK},
        "count": 1,
    }
    assert kept.action["text"] == f"use {MASK} please"
    resp = await dry_run(airlock, {"policy": GUIDE_POLICY})
    text = await resp.text()
    assert secret not in text and "5551234" not in text
    [example] = (await ok(resp))["examples"]
    assert example["arguments"]["api_key"] == MASK and example["arguments"]["target"] == {"note": MASK}
    # a field the tried policy marks sensitive is masked in its answer too
    count = {"id": "count", "type": "number", "label": "How many", "sensitive": True}
    marked = {**GUIDE_POLICY, "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 10, "fields": [count]}}}
    [example] = (await ok(await dry_run(airlock, {"policy": marked})))["examples"]
    assert example["arguments"]["count"] == MASK


async def test_the_sweeper_drops_kept_actions_past_their_retention(tmp_path: Path) -> None:
    now = [1_750_000_000.0]
    async with start_airlock(tmp_path, clock=lambda: now[0]) as airlock:
        store, expiry = airlock.mesh.store, airlock.mesh.expiry
        old = await call(airlock, "bulk_delete", {"items": items(12)})
        assert await expiry.prune_due() == 0  # the default retention is 30 days
        now[0] += 29 * 86400
        newer = await call(airlock, "bulk_delete", {"items": items(13)})
        assert await expiry.prune_due() == 0  # a minute has passed since the last prune, nothing is old enough
        now[0] += 2 * 86400  # the first is 31 days old, the second 2
        assert await expiry.prune_due() == 1
        assert [d.task_id for d in await store.recent_decisions("default")] == [newer["id"]]
        assert await expiry.prune_due() == 0  # within the minute: not tried again
        result = await ok(await dry_run(airlock, {"policy": GUIDE_POLICY}))
        assert (result["evaluated"], [e["task_id"] for e in result["examples"]]) == (1, [newer["id"]])
        assert old["id"] != newer["id"]
        # the audit trail keeps every decision: only the actions kept for dry-runs go
        kinds = [e.kind for e in await store.audit_entries(limit=100)]
        assert kinds.count("policy.decision") == 2


async def test_retention_zero_keeps_no_action(airlock: Airlock) -> None:
    airlock.mesh.config.decision_retention_s = 0
    await call(airlock, "bulk_delete", {"items": items(12)})
    assert await airlock.mesh.store.recent_decisions("default") == []
    assert (await ok(await dry_run(airlock, {"policy": GUIDE_POLICY})))["evaluated"] == 0
