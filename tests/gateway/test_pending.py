"""``POST /messages/pending``: the caller's tenant only, filters, paging and every error status."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import GUIDE_TEXT, Airlock, bearer, guide_message
from tests.gateway.conftest import auth, error_of, pending, token

ROW_KEYS = {
    "message_id",
    "session_id",
    "tenant_id",
    "state",
    "user_input",
    "task_data",
    "policy",
    "expires_at",
    "created_at",
    "updated_at",
}


async def test_guide_request_lists_the_hold_with_every_field(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    status, body = await pending(airlock, bearer(), tenant_id="default")
    assert status == 200
    assert body["total"] == 1
    [row] = body["messages"]
    assert ROW_KEYS <= set(row)
    assert row["message_id"] == task["id"]
    assert row["session_id"] == "session-123"
    assert row["tenant_id"] == "default"
    assert row["state"] == "input-required"
    assert row["user_input"] == GUIDE_TEXT
    assert row["policy"] == "bulk_ops_approval"
    assert row["task_data"]["id"] == task["id"]
    assert row["task_data"]["status"]["state"] == "input-required"
    for key in ("expires_at", "created_at", "updated_at"):
        assert datetime.fromisoformat(row[key].replace("Z", "+00:00"))
    assert row["expires_at"] > row["created_at"]


async def test_empty_body_and_no_tenant_default_to_the_callers_tenant(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    resp = await airlock.gateway.post("/messages/pending", headers=bearer())
    assert resp.status == 200
    assert [m["message_id"] for m in (await resp.json())["messages"]] == [task["id"]]
    status, body = await pending(airlock, bearer())
    assert status == 200 and body["total"] == 1


async def test_nothing_pending_is_an_empty_list(airlock: Airlock) -> None:
    status, body = await pending(airlock, bearer())
    assert status == 200
    assert body["messages"] == [] and body["total"] == 0


async def test_resolved_hold_leaves_the_list(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold()
    assert (await airlock.resolve(task["id"], {"decision": "deny"})).status == 200
    status, body = await pending(airlock, bearer())
    assert status == 200 and body == {**body, "messages": [], "total": 0}


async def test_another_tenant_id_is_403(airlock: Airlock) -> None:
    resp = await airlock.gateway.post("/messages/pending", json={"tenant_id": "other"}, headers=bearer())
    await error_of(resp, 403)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 400),  # not a string: a malformed field
        (7, 400),  # not a string: a malformed field
        (["default"], 400),  # not a string: a malformed field
        ({"id": "default"}, 400),  # not a string: a malformed field
        ("", 403),  # a string, and not the caller's tenant
    ],
)
async def test_tenant_id_that_is_not_the_callers_string_is_refused(
    airlock: Airlock, value: object, expected: int
) -> None:
    resp = await airlock.gateway.post("/messages/pending", json={"tenant_id": value}, headers=bearer())
    await error_of(resp, expected, field="tenant_id")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": None}, "limit"),
        ({"limit": 10**6}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "0"}, "offset"),
        ({"session_id": 5}, "session_id"),
    ],
)
async def test_bad_paging_or_filter_is_400_naming_the_field(airlock: Airlock, body: dict, field: str) -> None:
    resp = await airlock.gateway.post("/messages/pending", json=body, headers=bearer())
    await error_of(resp, 400, field=field)


async def test_no_token_is_401(airlock: Airlock) -> None:
    resp = await airlock.gateway.post("/messages/pending", json={})
    await error_of(resp, 401)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-jwt",
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer",
        f"Bearer {token('alice', 'approver', ttl_s=-120)}",
        f"Bearer {token('alice', 'approver', secret=b'another-secret-0123456789abcdef0123')}",
    ],
)
async def test_bad_token_is_401(airlock: Airlock, header: str) -> None:
    resp = await airlock.gateway.post("/messages/pending", json={}, headers={"Authorization": header})
    await error_of(resp, 401)


async def test_agent_only_token_is_403(airlock: Airlock) -> None:
    resp = await airlock.gateway.post("/messages/pending", json={}, headers=auth(token("bot", "agent")))
    await error_of(resp, 403)


@pytest.mark.parametrize("roles", [("approver",), ("admin",)])
async def test_approver_or_admin_may_list(airlock: Airlock, roles: tuple[str, ...]) -> None:
    await airlock.add_policy()
    await airlock.hold()
    status, body = await pending(airlock, auth(token("carol", *roles)))
    assert status == 200 and body["total"] == 1


async def test_session_id_filter(airlock: Airlock) -> None:
    await airlock.add_policy()
    in_a = await airlock.rpc(guide_message(request_id="a", contextId="session-a"))
    in_b = await airlock.rpc(guide_message(request_id="b", contextId="session-b"))
    ids = {"session-a": in_a["result"]["id"], "session-b": in_b["result"]["id"]}
    for session, task_id in ids.items():
        status, body = await pending(airlock, bearer(), session_id=session)
        assert status == 200
        assert [m["message_id"] for m in body["messages"]] == [task_id]
        assert body["messages"][0]["session_id"] == session
        assert body["total"] == 1
    status, body = await pending(airlock, bearer(), session_id="no-such-session")
    assert status == 200 and body["messages"] == [] and body["total"] == 0


async def test_paging_with_limit_offset_and_total(airlock: Airlock) -> None:
    await airlock.add_policy()
    held = [(await airlock.hold())["id"] for _ in range(5)]
    status, everything = await pending(airlock, bearer())
    assert status == 200 and everything["total"] == 5
    order = [m["message_id"] for m in everything["messages"]]
    assert sorted(order) == sorted(held)
    seen: list[str] = []
    for offset in (0, 2, 4):
        status, page = await pending(airlock, bearer(), limit=2, offset=offset)
        assert status == 200
        assert page["total"] == 5
        assert len(page["messages"]) == (2 if offset < 4 else 1)
        seen += [m["message_id"] for m in page["messages"]]
    assert seen == order
    status, past = await pending(airlock, bearer(), limit=2, offset=10)
    assert status == 200 and past["messages"] == [] and past["total"] == 5


async def test_largest_limit_is_accepted(airlock: Airlock) -> None:
    status, body = await pending(airlock, bearer(), limit=500)
    assert status == 200 and body["messages"] == []


async def test_other_tenant_sees_nothing(airlock: Airlock) -> None:
    await airlock.add_policy()
    await airlock.hold()
    status, body = await pending(airlock, bearer("bob", "approver", "admin", tenant="tenant-b"))
    assert status == 200 and body["messages"] == [] and body["total"] == 0
    status, body = await pending(airlock, bearer("bob", "approver", tenant="tenant-b"), tenant_id="default")
    assert status == 403
