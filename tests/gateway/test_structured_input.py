"""Structured input: a policy's extra form fields, typed checks on resolving, and a password kept secret."""

from __future__ import annotations

import json

import pytest

from a2ui import MASK
from tests.conftest import GUIDE_POLICY, Airlock, bearer
from tests.gateway.conftest import STRUCTURED_FIELDS, db_bytes, error_of, pending

PASSWORD = "s3cret-Pa55word-7f3c1e9b"
GOOD = {
    "decision": "approve",
    "reason": "nightly cleanup",
    "password": PASSWORD,
    "count": 3,
    "ok": True,
    "env": "staging",
}


async def structured(airlock: Airlock) -> dict:
    await airlock.add_policy(
        evaluator={"plugin": "bulk_operation", "config": {"threshold": 10, "fields": STRUCTURED_FIELDS}}
    )
    return await airlock.hold()


def form_of(task: dict) -> dict:
    [part] = task["status"]["message"]["parts"]
    assert part["metadata"] == {"mimeType": "application/json+a2ui"}
    return part["data"]


async def get_task(airlock: Airlock, task_id: str) -> dict:
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task_id}})
    return reply["result"]


async def test_policy_stores_its_fields(airlock: Airlock) -> None:
    policy = await airlock.add_policy(
        evaluator={"plugin": "bulk_operation", "config": {"threshold": 10, "fields": STRUCTURED_FIELDS}}
    )
    assert policy["evaluator"]["config"]["fields"] == STRUCTURED_FIELDS


async def test_held_form_has_the_fields_after_decision(airlock: Airlock) -> None:
    task = await structured(airlock)
    form = form_of(task)
    assert form["type"] == "Form"
    fields = form["props"]["fields"]
    assert [f["id"] for f in fields] == ["decision", "reason", "password", "count", "ok", "env"]
    assert fields[0]["type"] == "action"
    assert [o["value"] for o in fields[0]["options"]] == ["approve", "deny"]
    assert fields[1:] == STRUCTURED_FIELDS
    status, body = await pending(airlock, bearer())
    assert status == 200
    [row] = body["messages"]
    assert row["task_data"]["status"]["message"]["parts"][0]["data"] == form


async def test_plain_guide_policy_form_is_decision_only(airlock: Airlock) -> None:
    await airlock.add_policy(GUIDE_POLICY)
    task = await airlock.hold()
    assert [f["id"] for f in form_of(task)["props"]["fields"]] == ["decision"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reason": None}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": 5}, "reason"),
        ({"password": None}, "password"),
        ({"password": ""}, "password"),
        ({"password": 1234}, "password"),
        ({"count": "three"}, "count"),
        ({"count": True}, "count"),
        ({"count": [1]}, "count"),
        ({"ok": "yes"}, "ok"),
        ({"ok": 1}, "ok"),
        ({"env": "production"}, "env"),
        ({"env": ""}, "env"),
        ({"env": ["staging"]}, "env"),
        ({"decision": "perhaps"}, "decision"),
        ({"decision": None}, "decision"),
        ({"sneaky": "value"}, "sneaky"),
    ],
)
async def test_each_type_is_checked_and_the_error_names_the_field(airlock: Airlock, change: dict, field: str) -> None:
    task = await structured(airlock)
    resolution = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    resp = await airlock.resolve(task["id"], resolution)
    await error_of(resp, 400, field=field)
    assert PASSWORD not in await resp.text()
    assert await airlock.executions() == 0
    status, body = await pending(airlock, bearer())
    assert status == 200
    assert body["total"] == 1


async def test_optional_fields_may_be_left_out(airlock: Airlock) -> None:
    task = await structured(airlock)
    resp = await airlock.resolve(task["id"], {"decision": "approve", "reason": "r", "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["new_state"] == "completed"
    assert await airlock.executions() == 1


async def test_number_accepts_floats_and_negative(airlock: Airlock) -> None:
    task = await structured(airlock)
    resp = await airlock.resolve(task["id"], {**GOOD, "count": -2.5})
    assert resp.status == 200, await resp.text()


async def test_deny_with_fields_runs_nothing(airlock: Airlock) -> None:
    task = await structured(airlock)
    resp = await airlock.resolve(task["id"], {**GOOD, "decision": "deny"})
    assert resp.status == 200
    assert (await resp.json())["new_state"] == "rejected"
    assert await airlock.executions() == 0
    assert PASSWORD.encode() not in db_bytes(airlock.home)


async def test_password_never_appears_in_clear(airlock: Airlock) -> None:
    task = await structured(airlock)
    resp = await airlock.resolve(task["id"], GOOD)
    assert resp.status == 200, await resp.text()
    text = await resp.text()
    assert PASSWORD not in text
    body = json.loads(text)
    assert body["new_state"] == "completed"
    assert await airlock.executions() == 1
    summary = json.dumps(body["task"]["artifacts"])
    assert "reason=nightly cleanup" in summary, "non-secret inputs reach the agent"

    fetched = await airlock.mesh_client.post(
        "/", json={"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": task["id"]}}, headers=bearer()
    )
    fetched_text = await fetched.text()
    assert PASSWORD not in fetched_text
    assert json.loads(fetched_text)["result"]["status"]["state"] == "completed"
    history = await airlock.rpc(
        {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"], "historyLength": 50}}
    )
    history_text = json.dumps(history)
    assert PASSWORD not in history_text
    assert MASK in history_text, "the answer is kept in history with the password masked"

    listed = await airlock.gateway.post("/messages/pending", json={}, headers=bearer())
    assert PASSWORD not in await listed.text()

    raw = db_bytes(airlock.home)
    assert raw, "the database files exist"
    assert PASSWORD.encode() not in raw
    assert PASSWORD.encode("utf-16-le") not in raw
    assert (airlock.home / "airlock.db-wal").exists()


async def test_password_not_in_database_after_a_refused_resolution(airlock: Airlock) -> None:
    task = await structured(airlock)
    resp = await airlock.resolve(task["id"], {**GOOD, "env": "production"})
    await error_of(resp, 400, field="env")
    assert PASSWORD.encode() not in db_bytes(airlock.home)


async def test_field_marked_sensitive_is_masked_too(airlock: Airlock) -> None:
    fields = [{"id": "otp", "type": "text", "sensitive": True, "required": True}]
    await airlock.add_policy(evaluator={"plugin": "bulk_operation", "config": {"threshold": 10, "fields": fields}})
    task = await airlock.hold()
    secret = "otp-991-secret-zz"
    resp = await airlock.resolve(task["id"], {"decision": "approve", "otp": secret})
    assert resp.status == 200
    assert secret not in await resp.text()
    assert secret not in json.dumps(await get_task(airlock, task["id"]))
    assert secret.encode() not in db_bytes(airlock.home)


async def test_pending_shows_the_form_but_no_values(airlock: Airlock) -> None:
    task = await structured(airlock)
    status, body = await pending(airlock, bearer())
    assert status == 200
    [row] = body["messages"]
    assert row["message_id"] == task["id"]
    assert [f["id"] for f in form_of(row["task_data"])["props"]["fields"]][1:] == [f["id"] for f in STRUCTURED_FIELDS]
