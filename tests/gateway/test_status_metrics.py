"""``GET /v1/status``, ``GET /healthz`` and ``GET /metrics`` over real HTTP."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Airlock, bearer, start_airlock
from tests.gateway.conftest import Clock, error_of

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def status_of(airlock: Airlock, headers: dict[str, str] | None = None) -> dict:
    resp = await airlock.gateway.get("/v1/status", headers=headers or bearer())
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def scrape(client: TestClient) -> tuple[Samples, set[tuple[str, str]]]:
    """Every sample by (name, labels), and the (family, type) pairs."""
    resp = await client.get("/metrics")  # no token: scrapers do not authenticate
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/plain"
    samples: Samples = {}
    families: set[tuple[str, str]] = set()
    for family in text_string_to_metric_families(await resp.text()):
        families.add((family.name, family.type))
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_status_reports_the_deployment(airlock: Airlock) -> None:
    body = await status_of(airlock)
    assert body["version"] == "0.1.0"
    assert isinstance(body["uptime_s"], int | float) and body["uptime_s"] >= 0
    assert body["started_at"].endswith("Z")
    assert body["store"] == {"engine": "sqlite"}
    assert body["tenant"] == "default"
    assert (body["pending"], body["policies"], body["decisions"], body["resolutions"]) == (0, 0, {}, {})

    await airlock.add_policy()
    first = await airlock.hold()
    second = await airlock.hold()
    body = await status_of(airlock)
    assert (body["pending"], body["policies"]) == (2, 1)
    assert body["decisions"] == {"require_approval": 2}
    assert body["resolutions"] == {}

    assert (await airlock.resolve(first["id"], {"decision": "deny"})).status == 200
    assert (await airlock.resolve(second["id"], {"decision": "approve"})).status == 200
    body = await status_of(airlock)
    assert body["pending"] == 0
    assert body["resolutions"] == {"denied": 1, "approved": 1}

    # another tenant counts only its own
    other = await status_of(airlock, bearer("bob", "approver", "admin", tenant="tenant-b"))
    assert (other["tenant"], other["pending"], other["policies"], other["decisions"], other["resolutions"]) == (
        "tenant-b",
        0,
        0,
        {},
        {},
    )


async def test_status_needs_an_admin(airlock: Airlock) -> None:
    await error_of(await airlock.gateway.get("/v1/status"), 401)
    await error_of(await airlock.gateway.get("/v1/status", headers=bearer("carol", "approver")), 403)


async def test_healthz_answers_503_when_the_store_does_not(airlock: Airlock) -> None:
    resp = await airlock.gateway.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
    await airlock.mesh.store.close()
    resp = await airlock.gateway.get("/healthz")
    assert resp.status == 503
    assert (await resp.json())["status"] != "ok"


async def test_metrics_have_the_four_families_and_move(airlock: Airlock) -> None:
    before, families = await scrape(airlock.gateway)
    assert ("airlock_pending_approvals", "gauge") in families
    assert ("airlock_policy_decisions", "counter") in families
    assert ("airlock_resolutions", "counter") in families
    assert ("airlock_http_request_duration_seconds", "histogram") in families
    assert ("airlock_audit_head_seq", "gauge") in families
    assert value(before, "airlock_pending_approvals") == 0

    await airlock.add_policy()
    task = await airlock.hold()
    held, _ = await scrape(airlock.gateway)
    assert value(held, "airlock_pending_approvals") == 1
    decisions = "airlock_policy_decisions_total"
    assert (
        value(held, decisions, enforcement="require_approval")
        == value(before, decisions, enforcement="require_approval") + 1
    )

    assert (await airlock.resolve(task["id"], {"decision": "approve"})).status == 200
    after, _ = await scrape(airlock.gateway)
    assert value(after, "airlock_pending_approvals") == 0
    head = await airlock.mesh.store.audit_head()
    assert head is not None
    assert value(after, "airlock_audit_head_seq") == head.seq > value(held, "airlock_audit_head_seq")
    resolutions = "airlock_resolutions_total"
    labels = {"outcome": "approved", "surface": "api"}
    assert value(after, resolutions, **labels) == value(before, resolutions, **labels) + 1

    # request latency, labelled by app and route template (not the raw path)
    hist = "airlock_http_request_duration_seconds_count"
    assert value(after, hist, app="mesh", route="/", method="POST") >= 2
    assert value(after, hist, app="gateway", route="/messages/{id}/resolve", method="POST") >= 1
    assert not any(task["id"] in dict(labels).get("route", "") for _, labels in after)

    # the mesh app serves the same registry
    from_mesh, _ = await scrape(airlock.mesh_client)
    assert value(from_mesh, resolutions, **labels) == value(after, resolutions, **labels)


async def test_expiry_counts_as_a_resolution(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, timeout_s=1, clock=clock) as airlock:
        await airlock.add_policy()
        await airlock.hold()
        before, _ = await scrape(airlock.gateway)
        clock.advance(2)
        assert await airlock.mesh.expiry.expire_due() == 1
        after, _ = await scrape(airlock.gateway)
        labels = {"outcome": "expired", "surface": "expiry"}
        assert (
            value(after, "airlock_resolutions_total", **labels)
            == value(before, "airlock_resolutions_total", **labels) + 1
        )
        assert (await status_of(airlock))["resolutions"] == {"expired": 1}
