"""Token buckets per caller on both ports (a principal; an address for bad tokens), answered 429 with
Retry-After, and the lower limit on callback-token and signed-link attempts on one approval."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from mesh.wire import jsonrpc as rpc
from tests.conftest import GUIDE_POLICY, bearer, guide_message

BURST = 5


def get_task(n: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": n, "method": "tasks/get", "params": {"id": "no-such-task"}}


async def burst_mesh(session: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int) -> list[Any]:
    async def one(i: int) -> Any:
        async with session.post(url + "/", json=get_task(i), headers=headers) as resp:
            return resp.status, resp.headers.get("Retry-After"), await resp.json()

    return [await one(i) for i in range(n)]


async def burst_gateway(session: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int) -> list[Any]:
    async def one() -> Any:
        async with session.get(url + "/v1/approvals", headers=headers) as resp:
            return resp.status, resp.headers.get("Retry-After"), await resp.json()

    return [await one() for _ in range(n)]


async def test_a_principal_past_its_rate_gets_429_with_retry_after_on_both_ports(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve("--rate-limit", f"1/m:{BURST}") as served, aiohttp.ClientSession() as session:
        alice = bearer("alice", "agent", "approver")
        answers = await burst_mesh(session, served.mesh_url, alice, BURST + 3)
        assert [s for s, _, _ in answers] == [200] * BURST + [429] * 3
        assert answers[0][2]["error"]["code"] == rpc.TASK_NOT_FOUND
        _, retry, body = answers[-1]
        assert retry is not None and 1 <= int(retry) <= 60
        assert body["jsonrpc"] == "2.0" and body["id"] is None
        assert body["error"]["code"] == rpc.RATE_LIMITED
        assert body["error"]["data"] == {"status": 429, "retryAfter": int(retry)}

        answers = await burst_gateway(session, served.gateway_url, alice, BURST + 3)
        assert [s for s, _, _ in answers] == [200] * BURST + [429] * 3
        _, retry, body = answers[-1]
        assert retry is not None and int(retry) >= 1
        assert body["error"]["code"] == "rate_limited"

        # another principal, and another tenant's principal of the same name, have buckets of their own
        for other in (bearer("bob", "agent", "approver"), bearer("alice", "agent", "approver", tenant="acme")):
            assert [s for s, _, _ in await burst_mesh(session, served.mesh_url, other, 2)] == [200, 200]
            assert [s for s, _, _ in await burst_gateway(session, served.gateway_url, other, 2)] == [200, 200]
        # health checks are never limited
        for url in (served.mesh_url, served.gateway_url):
            for _ in range(BURST + 2):
                async with session.get(url + "/healthz") as resp:
                    assert resp.status == 200


async def test_bad_tokens_from_one_address_get_429(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve("--rate-limit", f"1/m:{BURST}") as served, aiohttp.ClientSession() as session:
        forged = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}
        answers = await burst_mesh(session, served.mesh_url, forged, BURST + 3)
        assert [s for s, _, _ in answers] == [401] * BURST + [429] * 3
        assert answers[-1][1] is not None and answers[-1][2]["error"]["code"] == rpc.RATE_LIMITED
        answers = await burst_gateway(session, served.gateway_url, forged, BURST + 3)
        assert [s for s, _, _ in answers] == [401] * BURST + [429] * 3
        assert answers[-1][1] is not None
        # a different forged token from the same address draws on the same bucket; no token at all too
        async with session.get(served.gateway_url + "/v1/approvals", headers={"Authorization": "Bearer x"}) as resp:
            assert resp.status == 429
        async with session.get(served.gateway_url + "/v1/approvals") as resp:
            assert resp.status == 429
        # a valid principal is not held back by the address's flood
        ok = await burst_gateway(session, served.gateway_url, bearer("alice", "approver"), 2)
        assert [s for s, _, _ in ok] == [200, 200]


async def test_off_means_no_limit(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve("--rate-limit", "off") as served, aiohttp.ClientSession() as session:
        answers = await burst_mesh(session, served.mesh_url, bearer("alice", "agent"), 60)
        assert {s for s, _, _ in answers} == {200}


async def test_callback_token_and_signed_link_attempts_on_one_approval_are_limited_lower(serve) -> None:  # type: ignore[no-untyped-def]
    attempts = 3
    async with (
        serve("--attempt-limit", f"1/h:{attempts}", "--rate-limit", "1000/s", "--sign", "--demo") as served,
        aiohttp.ClientSession() as session,
    ):
        admin = bearer("root", "admin", "approver")
        async with session.post(served.gateway_url + "/internal/policies/new", json=GUIDE_POLICY, headers=admin) as r:
            assert r.status == 201, await r.text()
        held = []
        for n in range(2):
            async with session.post(served.mesh_url + "/", json=guide_message(request_id=str(n)), headers=admin) as r:
                task = (await r.json())["result"]
                assert task["status"]["state"] == "input-required", task
                held.append((task["id"], task["metadata"]["airlock"]["approvalId"]))
        (task_id, approval_id), (other_task, _) = held

        async def callback(task: str) -> int:
            body = {"resolution": {"decision": "approve"}, "callback_token": "guess"}
            async with session.post(f"{served.gateway_url}/messages/{task}/resolve", json=body) as resp:
                return resp.status

        async def link(approval: str) -> tuple[int, str | None]:
            query = {"decision": "approve", "exp": "9999999999", "sig": "guess"}
            async with session.post(f"{served.gateway_url}/v1/approvals/{approval}/resolve", params=query) as resp:
                return resp.status, resp.headers.get("Retry-After")

        statuses = [await callback(task_id) for _ in range(attempts + 2)]
        assert statuses[:attempts] == [401] * attempts, statuses
        assert statuses[attempts:] == [429, 429], statuses
        # links on the same hold: counted by the id the path names (here the approval id, there the task id)
        link_statuses = [await link(approval_id) for _ in range(attempts + 1)]
        assert [s for s, _ in link_statuses] == [401] * attempts + [429], link_statuses
        assert link_statuses[-1][1] is not None and int(link_statuses[-1][1]) > 60  # 1/h: a long wait
        # another approval is not held back, and an approver with a token still resolves the limited one
        assert await callback(other_task) in (401, 403)
        body = {"resolution": {"decision": "deny"}}
        async with session.post(f"{served.gateway_url}/messages/{task_id}/resolve", json=body, headers=admin) as r:
            assert r.status == 200, await r.text()
        await asyncio.sleep(0)
