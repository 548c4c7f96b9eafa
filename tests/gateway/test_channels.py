"""Channels: types checked against their schemas, secrets sealed and masked, Standard Webhooks signatures,
the events a channel takes, and dead letters listed and retried through the API."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mesh.delivery import outbox
from tests.conftest import Airlock, bearer, start_airlock
from tests.gateway.conftest import Clock, Receiver, error_of, wait_for

ADMIN = bearer("root", "admin", "approver")
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def create(airlock: Airlock, body: dict) -> dict:
    resp = await airlock.gateway.post("/internal/channels/new", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def held_on(airlock: Airlock, channel: str) -> dict:
    await airlock.add_policy(channels=[channel])
    return await airlock.hold()


async def test_a_webhook_gets_a_secret_shown_once_and_masked_ever_after(airlock: Airlock, receiver: Receiver) -> None:
    made = await create(airlock, {"name": "hook", "type": "webhook", "config": {"url": receiver.url}})
    secret = made["config"]["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    listed = await (await airlock.gateway.get("/internal/channels", headers=ADMIN)).json()
    assert listed["channels"][0]["config"] == {"url": receiver.url, "secret": "********"}
    assert secret not in json.dumps(listed)
    with sqlite3.connect(airlock.home / "airlock.db") as conn:
        [(stored,)] = conn.execute("SELECT config FROM channels").fetchall()
    assert secret not in stored and "sealed:v1:" in stored  # sealed at rest, not only masked


async def test_every_delivery_is_signed_and_a_tampered_body_fails(airlock: Airlock, receiver: Receiver) -> None:
    await create(airlock, {"name": "hook", "type": "webhook", "config": {"url": receiver.url, "secret": SECRET}})
    task = await held_on(airlock, "hook")
    await wait_for(lambda: len(receiver.raw) >= 1)
    raw, headers = receiver.raw[0]
    verified = Webhook(SECRET).verify(raw, headers)
    assert verified["type"] == "approval.requested" and verified["message_id"] == task["id"]
    assert verified["timestamp"].endswith("Z") and headers["webhook-id"].startswith("msg_")
    tampered = raw.replace(b"approval.requested", b"approval.resolved")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(raw, headers)


async def test_the_same_delivery_keeps_its_id_across_retries(airlock: Airlock, receiver: Receiver) -> None:
    receiver.fail_first = 1
    await create(airlock, {"name": "hook", "type": "webhook", "config": {"url": receiver.url, "secret": SECRET}})
    await held_on(airlock, "hook")
    await wait_for(lambda: len(receiver.raw) >= 1, 10.0)
    _, headers = receiver.raw[0]

    def delivered() -> list[tuple[int, int]]:  # the outcome is recorded a moment after the receiver answered
        with sqlite3.connect(airlock.home / "airlock.db") as conn:
            return conn.execute(
                "SELECT id, attempts FROM outbox WHERE kind = 'notify' AND delivered_at IS NOT NULL"
            ).fetchall()

    await wait_for(lambda: bool(delivered()), 10.0)
    [(row_id, attempts)] = delivered()
    assert headers["webhook-id"] == f"msg_{row_id}" and attempts == 2


async def test_resolved_and_expired_are_announced_with_who_and_how(tmp_path: Path, receiver: Receiver) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock, timeout_s=60) as airlock:
        await create(airlock, {"name": "hook", "type": "webhook", "config": {"url": receiver.url, "secret": SECRET}})
        first = await held_on(airlock, "hook")
        second = await airlock.hold()
        resp = await airlock.resolve(first["id"], {"decision": "approve"}, bearer("bob", "approver"))
        assert resp.status == 200
        clock.advance(61)
        await airlock.mesh.expiry.expire_due()
        bodies = await receiver.wait(4)
    by = {(b["type"], b["message_id"]): b for b in bodies}
    resolved = by[("approval.resolved", first["id"])]
    assert resolved["decision"] == "approve" and resolved["resolved_by"] == "bob" and resolved["surface"] == "api"
    assert resolved["resolved_at"].endswith("Z") and "callback_token" not in resolved
    expired = by[("approval.expired", second["id"])]
    assert expired["status"] == "expired" and expired["expired_at"].endswith("Z")
    assert all("timestamp" in b and "type" in b for b in bodies)


async def test_a_channel_takes_only_the_events_it_names(airlock: Airlock, receiver: Receiver) -> None:
    body = {"name": "hook", "type": "webhook", "config": {"url": receiver.url}, "events": ["approval.resolved"]}
    await create(airlock, body)
    task = await held_on(airlock, "hook")
    assert (await airlock.resolve(task["id"], {"decision": "deny"})).status == 200
    [note] = await receiver.wait(1)
    assert note["type"] == "approval.resolved" and note["decision"] == "deny"
    with sqlite3.connect(airlock.home / "airlock.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'notify'").fetchone() == (1,)


async def test_an_update_merges_config_keeps_the_secret_and_replaces_events(
    airlock: Airlock, receiver: Receiver
) -> None:
    await create(
        airlock, {"name": "hook", "type": "webhook", "config": {"url": "http://old.example/x", "secret": SECRET}}
    )
    resp = await airlock.gateway.post(
        "/internal/channels/update",
        json={"name": "hook", "config": {"url": receiver.url}, "events": ["approval.requested"]},
        headers=ADMIN,
    )
    assert resp.status == 200, await resp.text()
    updated = await resp.json()
    assert updated["config"] == {"url": receiver.url, "secret": "********"}
    assert updated["events"] == ["approval.requested"]
    await held_on(airlock, "hook")
    await wait_for(lambda: len(receiver.raw) >= 1)
    raw, headers = receiver.raw[0]
    assert Webhook(SECRET).verify(raw, headers)["type"] == "approval.requested"  # the kept secret signs
    bad = {"name": "hook", "config": {"url": "ftp://nope"}}
    resp = await airlock.gateway.post("/internal/channels/update", json=bad, headers=ADMIN)
    await error_of(resp, 400, field="config.url")
    missing = {"name": "ghost", "config": {}}
    await error_of(await airlock.gateway.post("/internal/channels/update", json=missing, headers=ADMIN), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "c", "type": "webhook", "config": {"url": "http://x.example", "secret": "hunter2"}}, "config.secret"),
        ({"name": "c", "type": "webhook", "config": {"url": "http://x.example", "colour": "red"}}, "config"),
        ({"name": "c", "type": "webhook", "config": {"url": "http://x.example"}, "events": ["nope"]}, "events"),
        ({"name": "c", "type": "webhook", "config": {"url": "http://x.example"}, "events": []}, "events"),
    ],
)
async def test_a_bad_config_is_400_naming_the_field_and_never_echoes_a_secret(
    airlock: Airlock, body: dict, field: str
) -> None:
    resp = await airlock.gateway.post("/internal/channels/new", json=body, headers=ADMIN)
    err = await error_of(resp, 400, field=field)
    assert "hunter2" not in json.dumps(err)


async def test_the_channel_types_and_their_schemas_are_served(airlock: Airlock) -> None:
    resp = await airlock.gateway.get("/internal/channel-types", headers=ADMIN)
    types = {t["type"]: t for t in (await resp.json())["types"]}
    assert types["webhook"]["config_schema"]["required"] == ["url"] and types["webhook"]["secrets"] == ["secret"]
    await error_of(await airlock.gateway.get("/internal/channel-types", headers=bearer("eve", "approver")), 403)


async def test_a_dead_letter_is_listed_without_secrets_and_retried(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(outbox, "MAX_ATTEMPTS", 2)
    clock = Clock()
    receiver.fail_first = 2
    caplog.set_level(logging.DEBUG)
    async with start_airlock(tmp_path, clock=clock) as airlock:
        await create(airlock, {"name": "hook", "type": "webhook", "config": {"url": receiver.url, "secret": SECRET}})
        await held_on(airlock, "hook")

        async def dead() -> list[dict]:
            page = await airlock.gateway.get("/internal/outbox?state=dead", headers=ADMIN)
            return (await page.json())["entries"]

        for _ in range(100):
            if await dead():
                break
            clock.advance(3)  # past the backoff: the worker tries again at its next poll
            await asyncio.sleep(0.1)
        [entry] = await dead()
        assert entry["kind"] == "notify" and entry["attempts"] == 2 and entry["last_error"] == "HTTP 503"
        pending = await (await airlock.gateway.get("/internal/outbox", headers=ADMIN)).json()
        assert pending["entries"] == []
        other = bearer("eve", "admin", tenant="other")
        await error_of(await airlock.gateway.post(f"/internal/outbox/{entry['id']}/retry", headers=other), 404)
        resp = await airlock.gateway.post(f"/internal/outbox/{entry['id']}/retry", headers=ADMIN)
        assert resp.status == 200
        await receiver.wait(1)
        await error_of(await airlock.gateway.get("/internal/outbox?state=lost", headers=ADMIN), 400, field="state")
        listing = json.dumps(await (await airlock.gateway.get("/internal/channels", headers=ADMIN)).json())
    [(raw, _)] = receiver.raw
    token = json.loads(raw)["callback_token"]
    for secret in (SECRET, token):
        assert secret not in caplog.text and secret not in listing
