"""Signed approval links: one approval, one decision, until a deadline, once; never a rule; a GET only
shows a confirmation page. Webhook payloads carry working links when signing is on."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from mesh.credentials import SigningKeyError, check_key, signature, signed_link, verify
from tests.conftest import GUIDE_POLICY, Airlock, bearer, start_airlock
from tests.gateway.conftest import Receiver, error_of

KEY = b"0123456789abcdef0123456789abcdef"
AGENT = bearer("bot", "agent")
APPROVER = bearer("bob", "approver")
ADMIN = bearer("root", "admin")
CALL = {"tool": "exec", "agent": "deploy-bot", "message": "restart <b>prod</b>", "command": "systemctl restart api"}


@pytest.fixture
async def signing(tmp_path: Path) -> AsyncIterator[Airlock]:
    async with start_airlock(tmp_path, signing_key=KEY) as instance:
        yield instance


async def new_approval(airlock: Airlock, **body: Any) -> dict[str, Any]:
    resp = await airlock.gateway.post("/v1/approvals", json={**CALL, **body}, headers=AGENT)
    answer = await resp.json()
    assert resp.status == 201, answer
    return answer


def link(approval_id: str, decision: str, exp: int | None = None, key: bytes = KEY) -> str:
    """The path and query of a signed link (the test client adds the server)."""
    return signed_link("", key, approval_id, decision, int(time.time()) + 600 if exp is None else exp)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return f"{parts.path}?{urlencode({**query, **changes})}"


async def status_of(airlock: Airlock, approval_id: str) -> dict[str, Any]:
    resp = await airlock.gateway.get(f"/v1/approvals/{approval_id}", headers=APPROVER)
    assert resp.status == 200
    return await resp.json()


def test_the_signature_binds_id_decision_and_deadline() -> None:
    sig = signature(KEY, "a1", "approve", 100)
    assert verify(KEY, "a1", "approve", 100, sig)
    assert not verify(KEY, "a2", "approve", 100, sig)
    assert not verify(KEY, "a1", "deny", 100, sig)
    assert not verify(KEY, "a1", "approve", 101, sig)
    assert not verify(b"another-key-0123456789abcdef", "a1", "approve", 100, sig)
    assert not verify(KEY, "a1", "persist", 100, signature(KEY, "a1", "persist", 100))
    assert not verify(KEY, "a1", "approve", 100, "é" * 64)  # never an exception
    assert check_key(KEY) == KEY
    for short in (b"", b"short"):
        with pytest.raises(SigningKeyError):
            check_key(short)


async def test_an_approve_link_resolves_once_without_a_token(signing: Airlock) -> None:
    approval = await new_approval(signing)
    url = link(approval["id"], "approve")
    resp = await signing.gateway.post(url)
    body = await resp.json()
    assert resp.status == 200, body
    assert (body["id"], body["status"], body["approved"], body["persisted"]) == (
        approval["id"],
        "approved",
        True,
        False,
    )
    one = await status_of(signing, approval["id"])
    assert one["status"] == "approved" and one["resolved_by"] == "signed-link"
    err = await error_of(await signing.gateway.post(url), 410)
    assert err["code"] == "gone"
    await error_of(await signing.gateway.post(link(approval["id"], "deny")), 410)
    assert (await status_of(signing, approval["id"]))["status"] == "approved"


async def test_a_deny_link_denies(signing: Airlock) -> None:
    approval = await new_approval(signing)
    resp = await signing.gateway.post(link(approval["id"], "deny"), json={"resolved_by": "pager"})
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "denied" and body["approved"] is False
    one = await status_of(signing, approval["id"])
    assert (one["status"], one["resolved_by"]) == ("denied", "pager")


async def test_a_tampered_link_is_401_and_resolves_nothing(signing: Airlock) -> None:
    approval = await new_approval(signing)
    other = await new_approval(signing)
    good = link(approval["id"], "deny")
    sig = parse_qs(urlsplit(good).query)["sig"][0]
    flipped_sig = ("0" if sig[0] != "0" else "1") + sig[1:]
    bad_urls = [
        with_query(good, decision="approve"),  # the deny link's signature with the decision flipped
        with_query(good, sig=flipped_sig),
        with_query(good, sig=sig.upper()),
        with_query(good, sig="é" * 64),
        with_query(good, sig=""),
        with_query(good, exp=str(int(parse_qs(urlsplit(good).query)["exp"][0]) + 3600)),
        with_query(good, exp="soon"),
        with_query(good, exp="9" * 5000),
        with_query(good, decision="persist"),
        good.replace(approval["id"], other["id"]),  # another approval
        link(approval["id"], "approve", key=b"not-the-server-key-0123456789ab"),
    ]
    parts = urlsplit(good)
    query = parse_qs(parts.query)
    bad_urls.append(f"{parts.path}?sig={query['sig'][0]}&exp={query['exp'][0]}")  # no decision
    bad_urls.append(f"{parts.path}?sig={query['sig'][0]}&decision=deny")  # no exp
    for url in bad_urls:
        resp = await signing.gateway.post(url)
        err = await error_of(resp, 401)
        assert err["code"] == "unauthorized", url
        await error_of(await signing.gateway.get(url), 401)
    for aid in (approval["id"], other["id"]):
        assert (await status_of(signing, aid))["status"] == "pending"


async def test_a_link_past_its_deadline_is_gone_though_the_approval_waits(signing: Airlock) -> None:
    approval = await new_approval(signing)
    url = link(approval["id"], "approve", exp=int(time.time()) - 5)
    err = await error_of(await signing.gateway.post(url), 410)
    assert err["code"] == "gone"
    await error_of(await signing.gateway.get(url), 410)
    assert (await status_of(signing, approval["id"]))["status"] == "pending"
    # a fresh link for the same approval still works
    assert (await signing.gateway.post(link(approval["id"], "approve"))).status == 200


async def test_a_link_can_never_persist(signing: Airlock) -> None:
    approval = await new_approval(signing)
    url = link(approval["id"], "approve")
    for body in ({"persist": True}, {"approved": True, "persist": True}, {"persist": "true"}):
        await error_of(await signing.gateway.post(url, json=body), 400, field="persist")
    await error_of(await signing.gateway.post(url, data={"persist": "on"}), 400, field="persist")
    await error_of(await signing.gateway.post(with_query(url, persist="true")), 400, field="persist")
    assert (await status_of(signing, approval["id"]))["status"] == "pending"
    policies = await (await signing.gateway.get("/internal/policies", headers=ADMIN)).json()
    assert policies["policies"] == []


async def test_a_link_body_cannot_change_its_decision(signing: Airlock) -> None:
    approval = await new_approval(signing)
    await error_of(await signing.gateway.post(link(approval["id"], "deny"), json={"approved": True}), 401)
    assert (await status_of(signing, approval["id"]))["status"] == "pending"
    headers = {"Content-Type": "application/json"}
    await error_of(await signing.gateway.post(link(approval["id"], "deny"), data=b"[1]", headers=headers), 400)
    await error_of(await signing.gateway.post(link(approval["id"], "deny"), data=b"{", headers=headers), 400)
    assert (await status_of(signing, approval["id"]))["status"] == "pending"


async def test_get_shows_a_confirmation_page_and_never_resolves(signing: Airlock) -> None:
    approval = await new_approval(signing)
    url = link(approval["id"], "approve")
    for _ in range(3):
        resp = await signing.gateway.get(url)
        assert resp.status == 200
        assert resp.content_type == "text/html"
        assert resp.headers["Cache-Control"] == "no-store"
        page = await resp.text()
        assert "<form" in page and "method='post'" in page and "Approve" in page
        assert "systemctl restart api" in page
        assert "<b>prod</b>" not in page and "&lt;b&gt;prod&lt;/b&gt;" in page  # escaped
    head = await signing.gateway.head(url)
    assert head.status == 200
    assert (await status_of(signing, approval["id"]))["status"] == "pending"

    # the page's button POSTs the same link as an empty form, and that resolves
    action = unescape(re.search(r"action='([^']+)'", page).group(1))  # type: ignore[union-attr]
    assert action == url
    resp = await signing.gateway.post(action, data={})
    assert resp.status == 200 and (await resp.json())["status"] == "approved"
    after = await (await signing.gateway.get(url)).text()
    assert "<form" not in after and "approved" in after


async def test_the_page_of_a_deny_link_says_deny(signing: Airlock) -> None:
    approval = await new_approval(signing)
    page = await (await signing.gateway.get(link(approval["id"], "deny"))).text()
    assert "Deny" in page and "<form" in page
    await error_of(await signing.gateway.get(f"/v1/approvals/{approval['id']}/resolve"), 401)
    await error_of(await signing.gateway.get(link("no-such-id", "deny")), 404)


async def test_a_valid_link_for_an_unknown_approval_is_404(signing: Airlock) -> None:
    await error_of(await signing.gateway.post(link("no-such-id", "approve")), 404)


async def test_without_signing_no_link_works(airlock: Airlock) -> None:
    approval = await new_approval(airlock)
    await error_of(await airlock.gateway.post(link(approval["id"], "approve")), 401)
    await error_of(await airlock.gateway.get(link(approval["id"], "approve")), 401)
    assert (await status_of(airlock, approval["id"]))["status"] == "pending"


async def with_webhook(airlock: Airlock, receiver: Receiver) -> None:
    channel = {"name": "ops", "type": "webhook", "config": {"url": receiver.url}}
    resp = await airlock.gateway.post("/internal/channels/new", json=channel, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    await airlock.add_policy(channels=["ops"])


async def test_webhook_payloads_carry_working_links(signing: Airlock, receiver: Receiver) -> None:
    await with_webhook(signing, receiver)
    first = await signing.hold()
    second = await signing.hold()
    bodies = await receiver.wait(2)
    by_task = {b["message_id"]: b for b in bodies}
    base = signing.mesh.config.gateway_url
    for task in (first, second):
        payload = by_task[task["id"]]
        aid = payload["approval_id"]
        for decision in ("approve", "deny"):
            url = payload[f"{decision}_url"]
            assert url.startswith(f"{base}/v1/approvals/{aid}/resolve?")
            query = parse_qs(urlsplit(url).query)
            assert query["decision"] == [decision] and query["sig"] and query["exp"]
            assert int(query["exp"][0]) > time.time()

    session = signing.gateway.session
    page = await session.get(by_task[first["id"]]["approve_url"])
    assert page.status == 200 and page.content_type == "text/html"
    resp = await session.post(by_task[first["id"]]["approve_url"])
    assert resp.status == 200 and (await resp.json())["status"] == "approved"
    resp = await session.post(by_task[second["id"]]["deny_url"])
    assert resp.status == 200 and (await resp.json())["status"] == "denied"
    assert (await session.post(by_task[first["id"]]["deny_url"])).status == 410
    assert (await session.post(by_task[second["id"]]["approve_url"])).status == 410

    states = {}
    for task in (first, second):
        got = await signing.rpc({"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task["id"]}})
        states[task["id"]] = got["result"]["status"]["state"]
    assert states == {first["id"]: "completed", second["id"]: "rejected"}
    assert await signing.executions() == 1
    # the /messages surface sees the same final state
    await error_of(await signing.resolve(first["id"], {"decision": "deny"}), 409)


async def test_without_signing_webhook_payloads_carry_no_links(airlock: Airlock, receiver: Receiver) -> None:
    await with_webhook(airlock, receiver)
    await airlock.hold()
    (payload,) = await receiver.wait(1)
    assert "approve_url" not in payload and "deny_url" not in payload
    assert payload["policy"] == GUIDE_POLICY["name"]
