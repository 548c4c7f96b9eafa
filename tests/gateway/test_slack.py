"""Slack channels: a hold posted with Block Kit buttons, clicks and modals verified by Slack's signature and
resolved through the one resolve path as the mapped subject, and the message updated however the hold ended.

Every test runs the real app against a fake Slack Web API on loopback (``tests/fakes/slack.py``), and signs
what it sends to ``/webhooks/receive/slack`` the way Slack does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from a2ui import form_part, make_form
from gateway.openapi import SPEC_PATH
from mesh.agents.base import Agent, Execution, Plan, Reply, TurnContext, text_reply
from mesh.approvals.resolve import ResolveRequest
from mesh.auth import Principal
from mesh.credentials import callback_token
from mesh.store import PENDING, ApprovalRecord
from mesh.wire.models import Message, TaskState
from tests.conftest import Airlock, bearer, start_airlock
from tests.fakes.slack import BOT_TOKEN, CHANNEL_ID, Call, FakeSlack
from tests.gateway.conftest import STRUCTURED_FIELDS, Clock, error_of, wait_for
from tests.gateway.test_openapi import DOC_URI, assert_matches

ADMIN = bearer("root", "admin", "approver")
SIGNING_SECRET = "8f742231b10e8888abcd99ab1c2d85a5"
OTHER_SECRET = "0b5e7a9c3d1f2e4a6b8c0d2e4f6a8b0c"
USERS = {"U0BOB": "bob", "U0CAROL": "carol", "U0BOT": "bot"}
PATH = "/webhooks/receive/slack"
TOOL = "bulk_delete_expired"

FORM_FIELDS = [
    {"id": "reason", "type": "text", "label": "Reason", "required": True, "maxLength": 200},
    {"id": "contact", "type": "email", "label": "Contact"},
    {"id": "count", "type": "number", "label": "Count", "min": 1, "max": 100},
    {
        "id": "env",
        "type": "select",
        "label": "Environment",
        "options": [{"value": "staging", "label": "Staging"}, {"value": "prod", "label": "Production"}],
    },
    {"id": "ok", "type": "checkbox", "label": "I checked the backup"},
]
REASON = "nightly cleanup, ticket OPS-7f3a91"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack().running() as slack:
        yield slack


# ------------------------------------------------------------------------------------------ helpers


async def slack_channel(airlock: Airlock, fake: FakeSlack, **config: Any) -> dict:
    body = {
        "name": config.pop("name", "slack"),
        "type": "slack",
        "config": {
            "bot_token": BOT_TOKEN,
            "signing_secret": SIGNING_SECRET,
            "channel": "#approvals",
            "users": USERS,
            "api_base": fake.api_base,
            **config,
        },
    }
    resp = await airlock.gateway.post("/internal/channels/new", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def held(airlock: Airlock, fake: FakeSlack, headers: dict[str, str] | None = None) -> ApprovalRecord:
    """A hold announced on the Slack channel (under the guide's policy unless a test added its own), once its
    message is posted and kept."""
    if not (await airlock.mesh.store.list_policies("default")):
        await airlock.add_policy(channels=["slack"])
    task = await airlock.hold(headers=headers)
    approval = await airlock.mesh.store.latest_approval(task["id"])
    assert approval is not None
    await posted(airlock, approval.id)
    return approval


async def posted(airlock: Airlock, approval_id: str, channel: str = "slack") -> dict:
    """What the channel kept of the request's message, once it is posted."""
    deadline = time.monotonic() + 10
    while (ref := await airlock.mesh.store.get_channel_message(approval_id, channel)) is None:
        assert time.monotonic() < deadline, "the request was never posted"
        await asyncio.sleep(0.02)
    return ref


async def status_of(airlock: Airlock, approval_id: str) -> ApprovalRecord:
    approval = await airlock.mesh.store.get_approval(approval_id)
    assert approval is not None
    return approval


async def resolved(airlock: Airlock, approval_id: str) -> ApprovalRecord:
    """The approval once decided, and its task once the approved action (run in the background of a click)
    has finished: a task still ``working`` is not yet what the click led to."""
    deadline = time.monotonic() + 10
    while (approval := await status_of(airlock, approval_id)).status == PENDING:
        assert time.monotonic() < deadline, "the approval was never resolved"
        await asyncio.sleep(0.02)
    while (task := await airlock.mesh.store.get_task(approval.tenant, approval.task_id)) is not None and (
        task.state == "working"
    ):
        assert time.monotonic() < deadline, "the approved action never finished"
        await asyncio.sleep(0.02)
    return approval


async def drained(airlock: Airlock, tenant: str = "default") -> None:
    """Every outbox row delivered (or dead): nothing more will reach the fake."""
    deadline = time.monotonic() + 10
    while await airlock.mesh.store.list_outbox(tenant, "pending"):
        assert time.monotonic() < deadline, "the outbox never drained"
        await asyncio.sleep(0.05)


def signed(body: bytes, secret: str = SIGNING_SECRET, stamp: str | None = None) -> dict[str, str]:
    """The headers Slack sends: ``v0=`` + HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    stamp = str(int(time.time())) if stamp is None else stamp
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }


def encoded(payload: dict) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def click(action_id: str, approval_id: str, user: str, response_url: str, trigger_id: str = "1337.42.abcdef") -> dict:
    return {
        "type": "block_actions",
        "api_app_id": "A0AIRLOCK",
        "team": {"id": "T0TEAM", "domain": "example"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": CHANNEL_ID},
        "channel": {"id": CHANNEL_ID, "name": "approvals"},
        "trigger_id": trigger_id,
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "airlock_actions",
                "value": approval_id,
                "action_ts": "1700000001.000200",
            }
        ],
    }


def submission(approval_id: str, user: str, state: dict) -> dict:
    return {
        "type": "view_submission",
        "team": {"id": "T0TEAM"},
        "user": {"id": user},
        "view": {
            "id": "V0MODAL",
            "type": "modal",
            "callback_id": "airlock_form",
            "private_metadata": approval_id,
            "state": {"values": state},
        },
    }


async def send(airlock: Airlock, payload: dict, **sign: Any) -> Any:
    body = encoded(payload)
    return await airlock.gateway.post(PATH, data=body, headers=signed(body, **sign))


async def clicked(airlock: Airlock, payload: dict, **sign: Any) -> None:
    """Slack's click is answered at once, with nothing."""
    resp = await send(airlock, payload, **sign)
    assert resp.status == 200, await resp.text()
    assert await resp.read() == b""


def blocks_of(call: Call) -> list[dict]:
    return call.args["blocks"]


def buttons_of(call: Call) -> list[dict]:
    return [e for b in blocks_of(call) if b["type"] == "actions" for e in b["elements"]]


def text_of(call: Call) -> str:
    return json.dumps(call.args)


# ------------------------------------------------------------------------------------------ config


async def test_the_config_is_checked_and_its_secrets_never_echoed(airlock: Airlock, fake: FakeSlack) -> None:
    base = {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "channel": "#approvals", "users": {}}
    for change, field in (
        ({"bot_token": "hunter2-not-a-bot-token"}, "config.bot_token"),
        ({"signing_secret": "short"}, "config.signing_secret"),
        ({"users": {"alice": "alice"}}, "config.users"),
        ({"users": None}, "config.users"),
        ({"api_base": "ftp://slack.example"}, "config.api_base"),
        ({"colour": "red"}, "config"),
    ):
        config = {k: v for k, v in {**base, **change}.items() if v is not None}
        resp = await airlock.gateway.post(
            "/internal/channels/new", json={"name": "s", "type": "slack", "config": config}, headers=ADMIN
        )
        err = await error_of(resp, 400, field=field)
        assert "hunter2" not in json.dumps(err) and SIGNING_SECRET not in json.dumps(err)
    types = await (await airlock.gateway.get("/internal/channel-types", headers=ADMIN)).json()
    [kind] = [t for t in types["types"] if t["type"] == "slack"]
    assert kind["secrets"] == ["bot_token", "signing_secret"]
    assert set(kind["config_schema"]["required"]) == {"bot_token", "signing_secret", "channel", "users"}


# ------------------------------------------------------------------------------------------ out


async def test_a_hold_is_posted_with_its_buttons_and_nothing_that_resolves(tmp_path: Path, fake: FakeSlack) -> None:
    async with start_airlock(tmp_path, signing_key=b"s" * 32) as airlock:
        await slack_channel(airlock, fake)
        approval = await held(airlock, fake)
        [post] = fake.of("chat.postMessage")
        ref = await posted(airlock, approval.id)
        links_text = airlock.mesh.config.gateway_url
    assert post.auth == f"Bearer {BOT_TOKEN}"
    assert post.args["channel"] == "#approvals"
    assert ref == {"channel": CHANNEL_ID, "ts": "1700000000.000100"}

    blocks = blocks_of(post)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"Approval required: {TOOL}", "emoji": False},
    }
    facts = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in blocks[1]["fields"]}
    assert facts["*Tool*"] == f"`{TOOL}`" and facts["*Agent*"] == "staging-db"
    assert facts["*Policy*"] == "bulk_ops_approval" and facts["*Expires*"].startswith(
        f"<!date^{int(approval.expires_at)}^"
    )
    assert "Delete all expired records from the staging database" in blocks[2]["text"]["text"]
    buttons = buttons_of(post)
    assert [(b["action_id"], b["value"], b.get("style")) for b in buttons] == [
        ("approve", approval.id, "primary"),
        ("deny", approval.id, "danger"),
        ("deny_with_reason", approval.id, None),
    ]

    # nothing that could resolve the hold, and no secret, in any call to Slack
    token = callback_token(airlock.mesh.config.callback_key, approval.id)
    assert fake.calls
    for call in fake.calls:
        raw = call.raw.decode()
        for secret in (token, BOT_TOKEN, SIGNING_SECRET, "sig=", "/resolve", links_text):
            assert secret not in raw


async def test_a_channel_posting_the_request_late_posts_it_final_and_never_updates_it(
    tmp_path: Path, fake: FakeSlack
) -> None:
    clock = Clock()
    fake.errors["chat.postMessage"] = "ratelimited"  # a failed attempt: tried again later
    async with start_airlock(tmp_path, clock=clock) as airlock:
        await slack_channel(airlock, fake)
        await airlock.add_policy(channels=["slack"])
        task = await airlock.hold()
        await fake.wait_for("chat.postMessage")
        resp = await airlock.resolve(task["id"], {"decision": "deny"}, bearer("carol", "approver"))
        assert resp.status == 200
        del fake.errors["chat.postMessage"]
        approval = await airlock.mesh.store.latest_approval(task["id"])
        assert approval is not None
        deadline = time.monotonic() + 10
        while await airlock.mesh.store.list_outbox("default", "pending"):
            assert time.monotonic() < deadline
            clock.advance(3)  # past the backoff
            await asyncio.sleep(0.2)
        ref = await airlock.mesh.store.get_channel_message(approval.id, "slack")
    first, second = fake.of("chat.postMessage")
    assert [b["action_id"] for b in buttons_of(first)] == ["approve", "deny", "deny_with_reason"]  # refused
    assert buttons_of(second) == [] and "Denied by carol via api" in text_of(second)
    assert ref is not None and ref["final"] is True
    assert fake.of("chat.update") == []


# ------------------------------------------------------------------------------------------ in


async def test_a_signed_approve_click_resolves_as_the_mapped_subject(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    approval = await held(airlock, fake)
    await clicked(airlock, click("approve", approval.id, "U0BOB", fake.response_url("r1")))
    done = await resolved(airlock, approval.id)
    assert (done.status, done.resolved_by, done.surface) == ("approved", "bob", "slack")
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": approval.task_id}})
    assert reply["result"]["status"]["state"] == "completed"
    assert await airlock.executions() == 1

    [update] = await fake.wait_for("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (CHANNEL_ID, "1700000000.000100")
    assert buttons_of(update) == [] and "Approved by bob via slack" in text_of(update)
    assert update.auth == f"Bearer {BOT_TOKEN}"
    await drained(airlock)
    assert len(fake.of("chat.update")) == 1 and fake.responses == []


async def test_a_deny_click_rejects_and_runs_nothing(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    approval = await held(airlock, fake)
    await clicked(airlock, click("deny", approval.id, "U0CAROL", fake.response_url("r1")))
    done = await resolved(airlock, approval.id)
    assert (done.status, done.resolved_by, done.surface) == ("denied", "carol", "slack")
    [update] = await fake.wait_for("chat.update")
    assert "Denied by carol via slack" in text_of(update)
    assert await airlock.executions() == 0


def _stale(body: bytes) -> dict[str, str]:
    return signed(body, stamp=str(int(time.time()) - 301))


def _future(body: bytes) -> dict[str, str]:
    return signed(body, stamp=str(int(time.time()) + 301))


def _wrong_secret(body: bytes) -> dict[str, str]:
    return signed(body, secret=OTHER_SECRET)


def _tampered(body: bytes) -> dict[str, str]:
    return signed(body.replace(b"approve", b"deny"))


def _unsigned(body: bytes) -> dict[str, str]:
    return {k: v for k, v in signed(body).items() if k != "X-Slack-Signature"}


def _no_number(body: bytes) -> dict[str, str]:
    return signed(body, stamp="soon")


@pytest.mark.parametrize("headers_of", [_stale, _future, _wrong_secret, _tampered, _unsigned, _no_number])
async def test_a_bad_or_stale_signature_is_401_and_resolves_nothing(
    airlock: Airlock, fake: FakeSlack, headers_of: Any
) -> None:
    await slack_channel(airlock, fake)
    approval = await held(airlock, fake)
    body = encoded(click("approve", approval.id, "U0BOB", fake.response_url("r1")))
    resp = await airlock.gateway.post(PATH, data=body, headers=headers_of(body))
    await error_of(resp, 401)
    await asyncio.sleep(0.3)
    assert (await status_of(airlock, approval.id)).status == PENDING
    assert await airlock.executions() == 0
    assert fake.responses == [] and [c.method for c in fake.calls] == ["chat.postMessage"]
    # the same click, signed as Slack signs it, does resolve: the refusal above was the signature's
    await clicked(airlock, click("approve", approval.id, "U0BOB", fake.response_url("r1")))
    assert (await resolved(airlock, approval.id)).status == "approved"


async def test_a_body_that_is_not_a_slack_payload_is_400_once_signed(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    body = b"payload=%7Bnot-json"
    await error_of(await airlock.gateway.post(PATH, data=body, headers=signed(body)), 400, field="payload")
    await error_of(await airlock.gateway.post(PATH, data=body, headers=signed(body, secret=OTHER_SECRET)), 401)
    # JSON, but not the shape of Slack's payload: refused naming it, nothing guessed
    for payload in ({"actions": []}, {"type": "block_actions", "actions": "approve"}, {"type": 1}, ["x"]):
        body = urlencode({"payload": json.dumps(payload)}).encode()
        await error_of(await airlock.gateway.post(PATH, data=body, headers=signed(body)), 400, field="payload")
    body = b"other=1"
    await error_of(await airlock.gateway.post(PATH, data=body, headers=signed(body)), 400, field="payload")


async def test_an_unmapped_user_resolves_nothing_and_is_told_privately(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    approval = await held(airlock, fake)
    await clicked(airlock, click("approve", approval.id, "U0MALLORY", fake.response_url("m1")))
    reply = await fake.wait_reply("m1")
    assert reply == {"response_type": "ephemeral", "replace_original": False, "text": "You are not an approver here."}
    assert (await status_of(airlock, approval.id)).status == PENDING
    assert await airlock.executions() == 0
    assert fake.of("chat.update") == []


async def test_the_requester_cannot_approve_its_own_hold_from_slack(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    approval = await held(airlock, fake, headers=bearer("bot", "agent"))
    assert approval.requested_by == "bot"
    await clicked(airlock, click("approve", approval.id, "U0BOT", fake.response_url("b1")))
    reply = await fake.wait_reply("b1")
    assert reply["response_type"] == "ephemeral" and "cannot resolve" in reply["text"]
    assert (await status_of(airlock, approval.id)).status == PENDING
    assert await airlock.executions() == 0
    await clicked(airlock, click("approve", approval.id, "U0BOB", fake.response_url("b2")))
    assert (await resolved(airlock, approval.id)).resolved_by == "bob"


async def test_another_tenants_signature_resolves_nothing_here(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    other = {
        "name": "slack",
        "type": "slack",
        "config": {
            "bot_token": BOT_TOKEN,
            "signing_secret": OTHER_SECRET,
            "channel": "#elsewhere",
            "users": USERS,
            "api_base": fake.api_base,
        },
    }
    resp = await airlock.gateway.post(
        "/internal/channels/new", json=other, headers=bearer("root", "admin", tenant="other")
    )
    assert resp.status == 201
    approval = await held(airlock, fake)
    await clicked(airlock, click("approve", approval.id, "U0BOB", fake.response_url("o1")), secret=OTHER_SECRET)
    reply = await fake.wait_reply("o1")
    assert reply["text"] == "There is nothing to resolve here."
    assert (await status_of(airlock, approval.id)).status == PENDING


async def test_a_slack_click_racing_an_api_resolve_has_one_winner_and_one_update(
    airlock: Airlock, fake: FakeSlack
) -> None:
    await slack_channel(airlock, fake)

    async def api_after(delay_s: float, task_id: str) -> Any:
        await asyncio.sleep(delay_s)
        return await airlock.resolve(task_id, {"decision": "deny"}, bearer("carol", "approver"))

    # the click is resolved in the background, so the API tends to win a dead heat; a later API call gives the
    # click its chance. Each round checks whoever won; an approval deletes the demo's records, so it ends the
    # rounds (nothing is held after it).
    for round_, delay_s in enumerate((0.0, 0.0, 0.01, 0.3)):
        approval = await held(airlock, fake)
        response_id = f"race{round_}"
        body = encoded(click("approve", approval.id, "U0BOB", fake.response_url(response_id)))
        slack_resp, api_resp = await asyncio.gather(
            airlock.gateway.post(PATH, data=body, headers=signed(body)), api_after(delay_s, approval.task_id)
        )
        assert slack_resp.status == 200 and api_resp.status in (200, 409)
        done = await resolved(airlock, approval.id)
        await drained(airlock)
        await asyncio.sleep(0.2)  # a background click that lost has had its say
        updates = [c for c in fake.of("chat.update") if c.args["ts"] == (await posted(airlock, approval.id))["ts"]]
        assert len(updates) == 1
        if done.status == "approved":
            assert api_resp.status == 409 and done.resolved_by == "bob"
            assert "Approved by bob via slack" in text_of(updates[0])
            assert fake.replies(response_id) == []
            assert await airlock.executions() == 1  # the approved action ran, once
            break
        assert api_resp.status == 200 and done.resolved_by == "carol"
        assert "Denied by carol via api" in text_of(updates[0])
        [reply] = fake.replies(response_id)
        assert reply["text"] == "Already denied by carol"
        assert await airlock.executions() == 0  # a denial runs nothing


async def test_a_replayed_click_is_harmless(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    approval = await held(airlock, fake)
    body = encoded(click("approve", approval.id, "U0BOB", fake.response_url("first")))
    headers = signed(body)
    assert (await airlock.gateway.post(PATH, data=body, headers=headers)).status == 200
    await resolved(airlock, approval.id)
    replay = encoded(click("approve", approval.id, "U0BOB", fake.response_url("again")))
    assert (await airlock.gateway.post(PATH, data=replay, headers=signed(replay))).status == 200
    reply = await fake.wait_reply("again")
    assert reply["text"] == "Already approved by bob"
    assert (await airlock.gateway.post(PATH, data=body, headers=headers)).status == 200  # byte for byte
    await fake.wait(lambda: len(fake.replies("first")) == 1)
    await drained(airlock)
    assert await airlock.executions() == 1
    assert len(fake.of("chat.update")) == 1


# ------------------------------------------------------------------------------------------ forms


def modal_state(**values: Any) -> dict:
    state: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("decision", "env"):
            entry = {"type": "radio_buttons", "selected_option": {"value": value, "text": {"type": "plain_text"}}}
        elif key == "ok":
            entry = {"type": "checkboxes", "selected_options": [{"value": "true"}] if value else []}
        elif key == "count":
            entry = {"type": "number_input", "value": value}
        else:
            entry = {"type": "plain_text_input", "value": value}
        state[key] = {"value": entry}
    return state


async def form_hold(airlock: Airlock, fake: FakeSlack, fields: list[dict] = FORM_FIELDS) -> ApprovalRecord:
    await slack_channel(airlock, fake)
    await airlock.add_policy(
        channels=["slack"], evaluator={"plugin": "bulk_operation", "config": {"threshold": 10, "fields": fields}}
    )
    return await held(airlock, fake)


async def test_open_form_opens_a_modal_with_an_input_per_field(airlock: Airlock, fake: FakeSlack) -> None:
    approval = await form_hold(airlock, fake)
    [post] = fake.of("chat.postMessage")
    # a required reason: approve and deny alone would not do, so the form is the way
    assert [(b["action_id"], b["value"]) for b in buttons_of(post)] == [("open_form", approval.id)]
    await clicked(airlock, click("open_form", approval.id, "U0BOB", fake.response_url("f1"), trigger_id="trig-77"))
    [opened] = fake.of("views.open")  # opened before the click was answered
    assert opened.auth == f"Bearer {BOT_TOKEN}" and opened.args["trigger_id"] == "trig-77"
    view = opened.args["view"]
    assert view["type"] == "modal" and view["private_metadata"] == approval.id
    assert view["callback_id"] == "airlock_form"
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert {k: (b["element"]["type"], b["element"]["action_id"], b["optional"]) for k, b in inputs.items()} == {
        "decision": ("radio_buttons", "value", False),
        "reason": ("plain_text_input", "value", False),
        "contact": ("email_text_input", "value", True),
        "count": ("number_input", "value", True),
        "env": ("static_select", "value", True),
        "ok": ("checkboxes", "value", True),
    }
    assert [o["value"] for o in inputs["decision"]["element"]["options"]] == ["approve", "deny"]
    assert inputs["count"]["element"]["min_value"] == "1" and inputs["count"]["element"]["max_value"] == "100"
    assert inputs["reason"]["element"]["max_length"] == 200
    assert fake.responses == []


async def test_open_form_is_refused_to_someone_not_in_users(airlock: Airlock, fake: FakeSlack) -> None:
    approval = await form_hold(airlock, fake)
    await clicked(airlock, click("open_form", approval.id, "U0MALLORY", fake.response_url("f2")))
    assert (await fake.wait_reply("f2"))["text"] == "You are not an approver here."
    assert fake.of("views.open") == []


async def test_a_modal_submission_is_checked_then_resolves_with_its_values(
    airlock: Airlock, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    approval = await form_hold(airlock, fake)
    good = {
        "decision": "approve",
        "reason": REASON,
        "contact": "ops@example.com",
        "count": "3",
        "env": "staging",
        "ok": True,
    }
    for change, block in (
        ({"count": "three"}, "count"),
        ({"count": "500"}, "count"),
        ({"contact": "not an address"}, "contact"),
        ({"reason": None}, "reason"),
        ({"decision": None}, "decision"),
    ):
        values = {k: v for k, v in {**good, **change}.items() if v is not None}
        resp = await send(airlock, submission(approval.id, "U0BOB", modal_state(**values)))
        assert resp.status == 200
        body = await resp.json()
        assert body["response_action"] == "errors" and list(body["errors"]) == [block], body
        assert REASON not in json.dumps(body)
    assert (await status_of(airlock, approval.id)).status == PENDING

    resp = await send(airlock, submission(approval.id, "U0MALLORY", modal_state(**good)))
    assert (await resp.json())["errors"] == {"decision": "You are not an approver here."}

    resp = await send(airlock, submission(approval.id, "U0BOB", modal_state(**good)))
    assert resp.status == 200 and await resp.read() == b""  # closes the modal
    done = await resolved(airlock, approval.id)
    assert (done.status, done.resolved_by, done.surface) == ("approved", "bob", "slack")
    assert done.values == {
        "decision": "approve",
        "reason": REASON,
        "contact": "ops@example.com",
        "count": 3,
        "env": "staging",
        "ok": True,
    }
    assert await airlock.executions() == 1
    [update] = await fake.wait_for("chat.update")
    assert "Approved by bob via slack" in text_of(update) and REASON not in text_of(update)
    assert REASON not in caplog.text and "ops@example.com" not in caplog.text

    # a late submission of the same form is told it lost, in the modal
    resp = await send(airlock, submission(approval.id, "U0CAROL", modal_state(**{**good, "decision": "deny"})))
    assert (await resp.json())["errors"] == {"decision": "Already approved by bob"}


async def test_a_form_with_a_password_links_to_the_dashboard_and_is_never_filled_in_slack(
    airlock: Airlock, fake: FakeSlack
) -> None:
    approval = await form_hold(airlock, fake, STRUCTURED_FIELDS)
    [post] = fake.of("chat.postMessage")
    buttons = buttons_of(post)
    assert [b["action_id"] for b in buttons] == ["dashboard"]
    assert buttons[0]["url"] == f"{airlock.mesh.config.gateway_url}/dashboard/approvals/{approval.id}"
    assert "never in Slack" in text_of(post)
    await clicked(airlock, click("open_form", approval.id, "U0BOB", fake.response_url("p1")))
    assert "dashboard" in (await fake.wait_reply("p1"))["text"]
    assert fake.of("views.open") == []
    state = modal_state(decision="approve", reason="r", password="s3cret-typed-in-slack")
    resp = await send(airlock, submission(approval.id, "U0BOB", state))
    assert "errors" in await resp.json()
    assert (await status_of(airlock, approval.id)).status == PENDING


async def test_optional_fields_keep_the_buttons_next_to_the_form(airlock: Airlock, fake: FakeSlack) -> None:
    optional = [{k: v for k, v in f.items() if k != "required"} for f in FORM_FIELDS]
    approval = await form_hold(airlock, fake, optional)
    [post] = fake.of("chat.postMessage")
    assert [b["action_id"] for b in buttons_of(post)] == ["approve", "deny", "open_form"]
    await clicked(airlock, click("approve", approval.id, "U0BOB", fake.response_url("q1")))
    assert (await resolved(airlock, approval.id)).values == {"decision": "approve"}


class AskingAgent(Agent):
    """Asks for deployment settings; completes once it has them."""

    name = "asking-agent"
    description = "Asks for settings with a form."

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []

    async def plan(self, message: Message, ctx: TurnContext) -> Plan:
        for part in message.data_parts():
            if "name" in part.data:
                self.answers.append(dict(part.data))
                return Plan(reply=text_reply(TaskState.COMPLETED, f"Deployed {part.data['name']}."))
        form = make_form(
            "Deployment settings",
            "asking-agent needs a name and a region.",
            [
                {"id": "name", "type": "text", "label": "Name", "required": True},
                {"id": "region", "type": "select", "options": [{"value": "eu"}, {"value": "us"}], "required": True},
            ],
        )
        return Plan(reply=Reply(state=TaskState.INPUT_REQUIRED, parts=[form_part(form)]))

    async def execute(self, execution: Execution, ctx: TurnContext) -> Reply:
        return text_reply(TaskState.FAILED, "asking-agent runs no tools")


async def test_an_agents_request_for_values_is_answered_from_slack(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake, input_requests=True)
    agent = AskingAgent()
    airlock.mesh.agents.add(agent, default=False)
    message = {"role": "user", "parts": [{"kind": "text", "text": "deploy"}], "metadata": {"agent": agent.name}}
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": "1", "method": "message/send", "params": {"message": message}})
    task = reply["result"]
    request_id = task["metadata"]["airlock"]["inputRequestId"]
    await posted(airlock, request_id)
    [post] = fake.of("chat.postMessage")
    assert "Input requested: Deployment settings" in text_of(post)
    assert [b["action_id"] for b in buttons_of(post)] == ["open_form"]
    await clicked(airlock, click("open_form", request_id, "U0CAROL", fake.response_url("i1")))
    [opened] = fake.of("views.open")
    assert [b["block_id"] for b in opened.args["view"]["blocks"] if b["type"] == "input"] == ["name", "region"]
    state = {
        "name": {"value": {"type": "plain_text_input", "value": "nightly"}},
        "region": {"value": {"type": "static_select", "selected_option": {"value": "eu"}}},
    }
    resp = await send(airlock, submission(request_id, "U0CAROL", state))
    assert resp.status == 200 and await resp.read() == b""
    done = await resolved(airlock, request_id)
    assert (done.status, done.resolved_by, done.surface) == ("submitted", "carol", "slack")
    await wait_for(lambda: bool(agent.answers))
    assert agent.answers == [{"name": "nightly", "region": "eu"}]
    [update] = await fake.wait_for("chat.update")
    assert "Answered by carol via slack" in text_of(update)


# ------------------------------------------------------------------------------------------ after


async def test_an_expired_hold_says_so_on_its_message(tmp_path: Path, fake: FakeSlack) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock, timeout_s=60) as airlock:
        await slack_channel(airlock, fake)
        approval = await held(airlock, fake)
        clock.advance(61)
        await airlock.mesh.expiry.expire_due()
        [update] = await fake.wait_for("chat.update")
        assert buttons_of(update) == [] and "Expired" in text_of(update)
        # a click on the expired request's button is told so; the clock is the server's
        await clicked(
            airlock, click("approve", approval.id, "U0BOB", fake.response_url("e1")), stamp=str(int(clock.now))
        )
        assert (await fake.wait_reply("e1"))["text"] == "This request has expired."
        assert await airlock.executions() == 0


async def test_an_api_resolve_updates_the_message_naming_who_and_how(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    approval = await held(airlock, fake)
    resp = await airlock.resolve(approval.task_id, {"decision": "deny"}, bearer("carol", "approver"))
    assert resp.status == 200
    [update] = await fake.wait_for("chat.update")
    assert "Denied by carol via api" in text_of(update) and buttons_of(update) == []


async def test_no_token_or_secret_in_the_logs_the_listing_or_the_database(
    airlock: Airlock, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = await slack_channel(airlock, fake)
    assert made["config"]["bot_token"] == "********" and made["config"]["signing_secret"] == "********"
    approval = await held(airlock, fake)
    await clicked(airlock, click("approve", approval.id, "U0BOB", fake.response_url("l1")))
    await fake.wait_for("chat.update")
    await clicked(airlock, click("approve", approval.id, "U0BOB", fake.response_url("l2")))
    await fake.wait_reply("l2")
    bad = encoded(click("deny", approval.id, "U0BOB", fake.response_url("l3")))
    await error_of(await airlock.gateway.post(PATH, data=bad, headers=signed(bad, secret=OTHER_SECRET)), 401)
    listing = await (await airlock.gateway.get("/internal/channels", headers=ADMIN)).json()
    [channel] = listing["channels"]
    assert channel["config"]["bot_token"] == "********" and channel["config"]["signing_secret"] == "********"
    assert channel["config"]["users"] == USERS
    with sqlite3.connect(airlock.home / "airlock.db") as conn:
        [(stored,)] = conn.execute("SELECT config FROM channels").fetchall()
    token = callback_token(airlock.mesh.config.callback_key, approval.id)
    for secret in (BOT_TOKEN, SIGNING_SECRET):
        assert secret not in caplog.text and secret not in json.dumps(listing) and secret not in stored
    assert token not in caplog.text


async def test_a_refused_modal_is_told_to_its_sender_in_the_channel(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    await airlock.add_policy(
        channels=["slack"], evaluator={"plugin": "bulk_operation", "config": {"threshold": 10, "fields": FORM_FIELDS}}
    )
    approval = await held(airlock, fake, headers=bearer("bot", "agent"))
    state = modal_state(decision="approve", reason=REASON)
    resp = await send(airlock, submission(approval.id, "U0BOT", state))
    assert resp.status == 200 and await resp.read() == b""  # the values fit: the modal closes
    [told] = await fake.wait_for("chat.postEphemeral")
    assert (told.args["channel"], told.args["user"]) == (CHANNEL_ID, "U0BOT")
    assert "cannot resolve" in told.args["text"] and REASON not in told.raw.decode()
    assert (await status_of(airlock, approval.id)).status == PENDING
    assert await airlock.executions() == 0


async def test_the_answers_fit_the_openapi_document(airlock: Airlock, fake: FakeSlack) -> None:
    doc = json.loads(SPEC_PATH.read_text())
    registry = Registry().with_resource(DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))
    approval = await form_hold(airlock, fake)
    resp = await send(airlock, submission(approval.id, "U0BOB", modal_state(decision="approve")))
    body = await assert_matches(doc, registry, resp, PATH, "post", 200)
    assert body["errors"] == {"reason": "missing required field 'reason'"}
    unsigned = encoded(click("approve", approval.id, "U0BOB", fake.response_url("x")))
    resp = await airlock.gateway.post(PATH, data=unsigned, headers=signed(unsigned, secret=OTHER_SECRET))
    await assert_matches(doc, registry, resp, PATH, "post", 401)


# ------------------------------------------------------------------------------------------ decisions

DENIAL = "Not during the <!channel> freeze & not on a Friday"
PASSWORD = "hunter2-Zq81-never-in-slack"


def section_texts(call: Call) -> list[str]:
    return [b["text"]["text"] for b in blocks_of(call) if b["type"] == "section" and "text" in b]


async def test_a_quorum_hold_counts_each_mapped_slack_user_and_shows_its_progress(
    airlock: Airlock, fake: FakeSlack
) -> None:
    await slack_channel(airlock, fake)
    await airlock.add_policy(channels=["slack"], approvals_required=2)
    approval = await held(airlock, fake)
    [post] = fake.of("chat.postMessage")
    assert "*Needs 2 approvals*" in section_texts(post)

    await clicked(airlock, click("approve", approval.id, "U0BOB", fake.response_url("q1")))
    [progress] = await fake.wait_for("chat.update")
    assert (progress.args["channel"], progress.args["ts"]) == (CHANNEL_ID, "1700000000.000100")
    assert "*1 of 2 approvals*: bob" in section_texts(progress)
    assert [b["action_id"] for b in buttons_of(progress)][:2] == ["approve", "deny"]  # the buttons stay
    pending_now = await status_of(airlock, approval.id)
    assert pending_now.status == PENDING and [(a["by"], a["surface"]) for a in pending_now.approvals] == [
        ("bob", "slack")
    ]
    assert await airlock.executions() == 0

    await clicked(airlock, click("approve", approval.id, "U0BOB", fake.response_url("q2")))
    reply = await fake.wait_reply("q2")
    assert reply["response_type"] == "ephemeral" and reply["text"].startswith("Already approved by you")
    assert len((await status_of(airlock, approval.id)).approvals) == 1

    await clicked(airlock, click("approve", approval.id, "U0CAROL", fake.response_url("q3")))
    done = await resolved(airlock, approval.id)
    assert done.status == "approved" and [a["by"] for a in done.approvals] == ["bob", "carol"]
    await fake.wait_for("chat.update", 2)
    await drained(airlock)
    first, final = fake.of("chat.update")
    assert first is progress and buttons_of(final) == []
    assert "Approved by bob, carol" in text_of(final)
    assert await airlock.executions() == 1
    assert fake.replies("q1") == [] and fake.replies("q3") == []


async def test_quorum_progress_from_the_api_never_carries_a_sensitive_value(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    await airlock.add_policy(
        channels=["slack"],
        approvals_required=2,
        evaluator={"plugin": "bulk_operation", "config": {"threshold": 10, "fields": STRUCTURED_FIELDS}},
    )
    approval = await held(airlock, fake)
    values = {"decision": "approve", "reason": "nightly run", "password": PASSWORD}
    assert (await airlock.resolve(approval.task_id, values, bearer("bob", "approver"))).status == 200
    [progress] = await fake.wait_for("chat.update")
    assert "*1 of 2 approvals*: bob" in section_texts(progress)
    assert (await airlock.resolve(approval.task_id, values, bearer("carol", "approver"))).status == 200
    await fake.wait_for("chat.update", 2)
    await drained(airlock)
    assert "Approved by bob, carol" in text_of(fake.of("chat.update")[1])
    for call in fake.calls:
        assert PASSWORD.encode() not in call.raw and b"nightly run" not in call.raw


async def test_a_denial_from_the_api_shows_its_reason_escaped(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    approval = await held(airlock, fake)
    resp = await airlock.resolve(approval.task_id, {"decision": "deny", "reason": DENIAL}, bearer("carol", "approver"))
    assert resp.status == 200, await resp.text()
    [update] = await fake.wait_for("chat.update")
    said = section_texts(update)[-1]
    assert said == ":no_entry: *Denied by carol: Not during the &lt;!channel&gt; freeze &amp; not on a Friday*"
    assert "<!channel>" not in text_of(update)


async def test_deny_with_reason_opens_a_modal_whose_reason_denies(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    approval = await held(airlock, fake)
    await clicked(
        airlock, click("deny_with_reason", approval.id, "U0CAROL", fake.response_url("d1"), trigger_id="trig-9")
    )
    [opened] = fake.of("views.open")
    view = opened.args["view"]
    assert opened.args["trigger_id"] == "trig-9" and view["callback_id"] == "airlock_deny_reason"
    assert view["private_metadata"] == approval.id
    [field] = [b for b in view["blocks"] if b["type"] == "input"]
    assert field["block_id"] == "reason" and field["element"]["max_length"] == 1000

    def reason_submission(user: str, text: str) -> dict:
        payload = submission(approval.id, user, {"reason": {"value": {"type": "plain_text_input", "value": text}}})
        payload["view"]["callback_id"] = "airlock_deny_reason"
        return payload

    for user, text, error in (("U0CAROL", "   ", "say why"), ("U0CAROL", "x" * 1001, "1000"), ("U0MALLORY", "no", "")):
        body = await (await send(airlock, reason_submission(user, text))).json()
        assert body["response_action"] == "errors" and error in body["errors"]["reason"], body
    assert (await status_of(airlock, approval.id)).status == PENDING

    resp = await send(airlock, reason_submission("U0CAROL", "backup not verified"))
    assert resp.status == 200 and await resp.read() == b""
    done = await resolved(airlock, approval.id)
    assert (done.status, done.resolved_by, done.reason, done.surface) == (
        "denied",
        "carol",
        "backup not verified",
        "slack",
    )
    [update] = await fake.wait_for("chat.update")
    assert "Denied by carol: backup not verified" in text_of(update)
    assert await airlock.executions() == 0


async def test_an_approval_with_edits_says_so(airlock: Airlock, fake: FakeSlack) -> None:
    await slack_channel(airlock, fake)
    await airlock.add_policy(channels=["slack"], allow_edits=True)
    approval = await held(airlock, fake)
    arguments = {**approval.action["arguments"], "database": "staging-replica"}
    await airlock.mesh.resolver.resolve(
        ResolveRequest(
            ref=approval.id,
            resolution={"decision": "approve", "arguments": arguments},
            surface="api",
            principal=Principal(sub="bob", tenant="default", roles=frozenset({"approver"})),
        )
    )
    [update] = await fake.wait_for("chat.update")
    assert "Approved by bob with edits via api" in text_of(update)
    assert "staging-replica" not in text_of(update)


async def test_an_escalation_marks_the_message_and_posts_it_once_where_it_escalates(
    tmp_path: Path, fake: FakeSlack
) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock) as airlock:
        await slack_channel(airlock, fake)
        await slack_channel(airlock, fake, name="slack-oncall", channel="#oncall", signing_secret=OTHER_SECRET)
        await airlock.add_policy(
            channels=["slack"], approvals_required=2, escalate_after="10m", escalate_to=["slack-oncall"]
        )
        approval = await held(airlock, fake)
        stamp = {"stamp": str(int(clock.now))}
        await clicked(airlock, click("approve", approval.id, "U0BOB", fake.response_url("e0")), **stamp)
        await fake.wait_for("chat.update")
        clock.advance(601)
        stamp = {"stamp": str(int(clock.now))}
        assert await airlock.mesh.expiry.escalate_due() == 1
        assert await airlock.mesh.expiry.escalate_due() == 0
        oncall = await posted(airlock, approval.id, "slack-oncall")
        await fake.wait_for("chat.update", 2)
        await drained(airlock)
        posts = fake.of("chat.postMessage")
        assert [p.args["channel"] for p in posts] == ["#approvals", "#oncall"]
        escalated_post = posts[1]
        assert escalated_post.args["text"].startswith("Escalated: Approval required")
        [standing] = [t for t in section_texts(escalated_post) if "*Escalated*" in t]
        assert "*1 of 2 approvals*: bob" in standing
        assert [b["action_id"] for b in buttons_of(escalated_post)][:2] == ["approve", "deny"]
        own = fake.of("chat.update")[1]
        assert own.args["ts"] == "1700000000.000100" and any("*Escalated*" in t for t in section_texts(own))

        # a click on the escalated message counts, verified by that channel's own signing secret
        payload = click("approve", approval.id, "U0CAROL", fake.response_url("e1"))
        await clicked(airlock, payload, secret=OTHER_SECRET, **stamp)
        done = await resolved(airlock, approval.id)
        assert [(a["by"], a["surface"]) for a in done.approvals] == [("bob", "slack"), ("carol", "slack")]
        await drained(airlock)
        assert fake.replies("e1") == [] and oncall["ts"] != (await posted(airlock, approval.id))["ts"]
        assert len([p for p in fake.of("chat.postMessage") if p.args["channel"] == "#oncall"]) == 1
        assert await airlock.executions() == 1
