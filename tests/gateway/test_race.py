"""Many surfaces resolving one hold at once: the first wins, the rest get 409, the action runs once."""

from __future__ import annotations

import asyncio

from tests.conftest import Airlock, bearer
from tests.gateway.conftest import Receiver, auth, token

RACERS = 50


async def statuses(responses: list) -> list[int]:
    for resp in responses:
        await resp.read()
    return sorted(r.status for r in responses)


async def test_fifty_concurrent_approvals(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    calls = [
        airlock.resolve(task["id"], {"decision": "approve"}, headers=auth(token(f"approver-{i}", "approver")))
        for i in range(RACERS)
    ]
    responses = await asyncio.gather(*calls)
    assert await statuses(responses) == [200] + [409] * (RACERS - 1)
    for resp in responses:
        body = await resp.json()
        if resp.status == 409:
            assert body["error"]["code"] == "conflict"
        else:
            assert body["new_state"] == "completed"
    assert await airlock.executions() == 1


async def test_concurrent_approve_and_deny_one_outcome(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    calls = [
        airlock.resolve(
            task["id"], {"decision": "approve" if i % 2 else "deny"}, headers=auth(token(f"p-{i}", "approver"))
        )
        for i in range(RACERS)
    ]
    responses = await asyncio.gather(*calls)
    assert await statuses(responses) == [200] + [409] * (RACERS - 1)
    [winner] = [r for r in responses if r.status == 200]
    state = (await winner.json())["new_state"]
    assert state in ("completed", "rejected")
    assert await airlock.executions() == (1 if state == "completed" else 0)
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task["id"]}})
    assert reply["result"]["status"]["state"] == state


async def test_callback_token_races_the_dashboard(airlock: Airlock, receiver: Receiver) -> None:
    resp = await airlock.gateway.post(
        "/internal/channels/new",
        json={"name": "hook", "type": "webhook", "config": {"url": receiver.url}},
        headers=bearer(),
    )
    assert resp.status == 201
    await airlock.add_policy(channels=["hook"])
    task = await airlock.hold()
    [note] = await receiver.wait(1)
    by_token = [
        airlock.gateway.post(
            f"/messages/{task['id']}/resolve",
            json={"callback_token": note["callback_token"], "resolution": {"decision": "approve"}},
        )
        for _ in range(RACERS // 2)
    ]
    by_jwt = [
        airlock.resolve(task["id"], {"decision": "approve"}, headers=auth(token(f"a-{i}", "approver")))
        for i in range(RACERS // 2)
    ]
    responses = await asyncio.gather(*by_token, *by_jwt)
    assert await statuses(responses) == [200] + [409] * (RACERS - 1)
    assert await airlock.executions() == 1


async def test_many_holds_resolved_concurrently_each_run_once(airlock: Airlock) -> None:
    await airlock.add_policy()
    from tests.conftest import tool_message

    tasks = []
    for i in range(10):
        items = [f"rec-{j:03d}" for j in range(i * 4, i * 4 + 11)]
        message = tool_message("bulk_delete_expired", {"items": items}, request_id=str(i))
        message["params"]["message"]["metadata"] = {"agent": "staging-db"}
        reply = await airlock.rpc(message)
        assert reply["result"]["status"]["state"] == "input-required", reply
        tasks.append(reply["result"]["id"])
    calls = [
        airlock.resolve(task_id, {"decision": "approve"}, headers=auth(token(f"x-{n}", "approver")))
        for task_id in tasks
        for n in range(5)
    ]
    responses = await asyncio.gather(*calls)
    codes = await statuses(responses)
    assert codes.count(200) == 10 and codes.count(409) == 40
    assert await airlock.executions() == 10


async def test_concurrent_creates_of_one_policy_name(airlock: Airlock) -> None:
    from tests.conftest import GUIDE_POLICY

    calls = [airlock.gateway.post("/internal/policies/new", json=GUIDE_POLICY, headers=bearer()) for _ in range(20)]
    codes = await statuses(await asyncio.gather(*calls))
    assert codes == [201] + [409] * 19
    resp = await airlock.gateway.get("/internal/policies", headers=bearer())
    assert len((await resp.json())["policies"]) == 1


async def test_concurrent_creates_of_one_channel_name(airlock: Airlock, receiver: Receiver) -> None:
    body = {"name": "hook", "type": "webhook", "config": {"url": receiver.url}}
    calls = [airlock.gateway.post("/internal/channels/new", json=body, headers=bearer()) for _ in range(20)]
    codes = await statuses(await asyncio.gather(*calls))
    assert codes == [201] + [409] * 19
