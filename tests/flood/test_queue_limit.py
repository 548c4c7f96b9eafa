"""--max-pending bounds the holds a turn makes over A2A too, per tenant, with a clear A2A error."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mesh.wire import jsonrpc as rpc
from tests.conftest import GUIDE_POLICY, Airlock, bearer, guide_message, start_airlock

LIMIT = 3


async def policy_for(airlock: Airlock, tenant: str) -> None:
    resp = await airlock.gateway.post("/internal/policies/new", json=GUIDE_POLICY, headers=bearer(tenant=tenant))
    assert resp.status == 201, await resp.text()


async def send(airlock: Airlock, tenant: str, n: int) -> dict:
    return await airlock.rpc(guide_message(request_id=f"{tenant}-{n}"), bearer("agent-1", "agent", tenant=tenant))


async def pending(airlock: Airlock, tenant: str) -> int:
    _, total = await airlock.mesh.store.list_pending(tenant, session_id=None, now=0.0, limit=1, offset=0)
    return total


async def test_mesh_holds_past_max_pending_are_refused_per_tenant(tmp_path: Path) -> None:
    async with start_airlock(tmp_path, max_pending=LIMIT) as airlock:
        for tenant in ("default", "other"):
            await policy_for(airlock, tenant)
        # concurrent turns: the in-flight holds count, so a burst cannot slip past the limit
        replies = await asyncio.gather(*(send(airlock, "default", n) for n in range(12)))
        held = [r for r in replies if "result" in r]
        refused = [r for r in replies if "error" in r]
        assert len(held) == LIMIT, replies
        assert all(r["result"]["status"]["state"] == "input-required" for r in held)
        assert len(refused) == 12 - LIMIT
        for reply in refused:
            err = reply["error"]
            assert err["code"] == rpc.QUEUE_FULL, err
            assert "queue full" in err["message"].lower()
            assert err["data"] == {"status": 503, "code": "queue_full", "maxPending": LIMIT}
        assert await pending(airlock, "default") == LIMIT
        # another tenant's queue is its own
        other = [await send(airlock, "other", n) for n in range(LIMIT)]
        assert all(r["result"]["status"]["state"] == "input-required" for r in other), other
        # and the approvals API counts the mesh's holds: the tenant's queue is full there too
        resp = await airlock.gateway.post(
            "/v1/approvals",
            json={"tool": "exec", "agent": "bot", "message": "m", "command": "rm -rf /tmp/cache"},
            headers=bearer("agent-1", "agent"),
        )
        assert resp.status == 503, await resp.text()
        assert (await resp.json())["error"]["code"] == "unavailable"
        # once an approver works the queue down, a hold goes through again
        task_id = held[0]["result"]["id"]
        resolved = await airlock.resolve(task_id, {"decision": "deny"})
        assert resolved.status == 200, await resolved.text()
        again = await send(airlock, "default", 99)
        assert again["result"]["status"]["state"] == "input-required", again
        assert "error" in await send(airlock, "default", 100)
