"""Edge cases of the hold and resolve paths: an enormous server timeout, and forged tokens."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Airlock, bearer, guide_message, start_airlock
from tests.gateway.conftest import error_of, pending


async def test_huge_server_approval_timeout_still_holds(tmp_path: Path) -> None:
    async with start_airlock(tmp_path, timeout_s=10**12) as airlock:
        await airlock.add_policy()
        reply = await airlock.rpc(guide_message())
        assert reply.get("result", {}).get("status", {}).get("state") == "input-required", reply
        status, body = await pending(airlock, bearer())
        assert status == 200 and body["total"] == 1


async def test_forged_callback_token_answers_alike_for_real_and_unknown_ids(airlock: Airlock) -> None:
    await airlock.add_policy()
    other_tenant = bearer("eve", "approver", "admin", tenant="tenant-b")
    task = await airlock.hold()
    body = {"callback_token": "A" * 43, "resolution": {"decision": "approve"}}
    real = await airlock.gateway.post(f"/messages/{task['id']}/resolve", json=body)
    unknown = await airlock.gateway.post("/messages/no-such-task/resolve", json=body)
    # a bare token learns nothing of which ids exist: the same 401 and the same body for both
    real_error = await error_of(real, 401)
    assert await error_of(unknown, 401) == real_error
    status, listed = await pending(airlock, bearer())
    assert status == 200 and [m["message_id"] for m in listed["messages"]] == [task["id"]]
    assert await airlock.executions() == 0
    # and a JWT from another tenant cannot tell them apart either (this part already holds)
    a = await airlock.resolve(task["id"], {"decision": "approve"}, headers=other_tenant)
    b = await airlock.resolve("no-such-task", {"decision": "approve"}, headers=other_tenant)
    assert a.status == b.status == 404
