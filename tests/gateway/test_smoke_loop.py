"""The held-task loop through both apps in-process: hold, list, resolve, conflict."""

from __future__ import annotations

from tests.conftest import Airlock, bearer


async def test_hold_list_resolve_then_conflict(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resp = await airlock.gateway.post("/messages/pending", json={"tenant_id": "default"}, headers=bearer())
    listing = await resp.json()
    assert [m["message_id"] for m in listing["messages"]] == [task["id"]]
    resp = await airlock.resolve(task["id"], {"decision": "approve"})
    assert resp.status == 200
    body = await resp.json()
    assert body["ok"] is True and body["new_state"] == "completed"
    assert await airlock.executions() == 1
    again = await airlock.resolve(task["id"], {"decision": "approve"})
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "conflict"
