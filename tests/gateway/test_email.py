"""Email channels against a real SMTP server on loopback: what a mail says and carries, and the signed links it
holds followed the way a person would (a GET shows a page and resolves nothing; the page's button resolves
once; a late press is told who was first). The pages are HTML for a browser and JSON for an API client."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mesh.credentials import callback_token, signed_link
from mesh.delivery.channels.email import one_line
from tests.conftest import GUIDE_POLICY, Airlock, bearer, start_airlock
from tests.gateway.conftest import STRUCTURED_FIELDS, Clock, error_of, wait_for
from tests.mesh.approvals.test_input_requests import ask_credentials

KEY = b"0123456789abcdef0123456789abcdef"
ADMIN = bearer("root", "admin", "approver")
USERNAME = "mailer"
PASSWORD = "smtp-Pa55word-9d2f71c4e8"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
TEXT = 'Delete all expired records <b>now</b> & "quickly"'


# ---------------------------------------------------------------- a real SMTP server on loopback


@dataclass
class Mailbox:
    """What an aiosmtpd server on 127.0.0.1 accepted, with switches to make it refuse."""

    messages: list[tuple[Envelope, EmailMessage, bytes]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    refuse_recipients: bool = False
    fail_data: int = 0  # answer this many DATA commands with a temporary failure
    port: int = 0

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list) -> str:
        if self.refuse_recipients:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fail_data > 0:
            self.fail_data -= 1
            return "451 4.3.0 try again later"
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed, raw))
        return "250 OK"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        ok = (data.login, data.password) == (USERNAME.encode(), PASSWORD.encode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

    async def wait(self, count: int = 1, timeout_s: float = 5.0) -> list[EmailMessage]:
        await wait_for(lambda: len(self.messages) >= count, timeout_s)
        return [m for _, m, _ in self.messages]


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    box = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(box, hostname="mail.test", authenticator=box.authenticate, auth_require_tls=False),
        "127.0.0.1",
        0,
    )
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def signing(tmp_path: Path) -> AsyncIterator[Airlock]:
    async with start_airlock(tmp_path, signing_key=KEY) as instance:
        yield instance


def mail_config(box: Mailbox, **changes: Any) -> dict[str, Any]:
    config = {
        "smtp_host": "127.0.0.1",
        "smtp_port": box.port,
        "from": "Airlock <airlock@example.com>",
        "to": ["ops@example.com", "oncall@example.com"],
        "starttls": False,  # the test server offers no TLS; a loopback relay may log in without it
        "username": USERNAME,
        "password": PASSWORD,
    }
    return {k: v for k, v in {**config, **changes}.items() if v is not None}


async def with_mail(airlock: Airlock, box: Mailbox, policy: dict[str, Any] | None = None, **config: Any) -> None:
    body = {"name": "mail", "type": "email", "config": mail_config(box, **config)}
    resp = await airlock.gateway.post("/internal/channels/new", json=body, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    if policy is not False:
        await airlock.add_policy(policy, channels=["mail"])


def parts_of(mail: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts, decoded."""
    assert mail.get_content_type() == "multipart/alternative"
    text, page = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and page is not None
    return text.get_content(), page.get_content()


def urls_in(text: str) -> list[str]:
    return re.findall(r"https?://\S+", text)


def hrefs_in(page: str) -> list[str]:
    return [unescape(h) for h in re.findall(r"href='([^']+)'", page)]


class FormReader(HTMLParser):
    """A page's form as a browser would submit it: its action and its fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action, self.method = a.get("action"), a.get("method")
        elif tag == "input" and a.get("name"):
            self.fields[a["name"] or ""] = a.get("value") or ""


def form_of(page: str) -> FormReader:
    reader = FormReader()
    reader.feed(page)
    assert reader.action is not None and reader.method == "post", page
    return reader


async def task_state(airlock: Airlock, task_id: str) -> str:
    got = await airlock.rpc({"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task_id}})
    return got["result"]["status"]["state"]


def page_headers_ok(resp: Any) -> None:
    assert resp.content_type == "text/html"
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """What the server logged (the test SMTP server's own session log left out)."""
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail."))


# ---------------------------------------------------------------- configuration


async def test_an_email_channel_needs_a_server_that_signs_links(airlock: Airlock, mailbox: Mailbox) -> None:
    body = {"name": "mail", "type": "email", "config": mail_config(mailbox)}
    err = await error_of(await airlock.gateway.post("/internal/channels/new", json=body, headers=ADMIN), 400)
    assert "--sign" in err["message"] and err["field"].startswith("config")
    assert PASSWORD not in json.dumps(err)
    listed = await (await airlock.gateway.get("/internal/channels", headers=ADMIN)).json()
    assert listed["channels"] == []


async def test_the_password_is_sealed_and_masked(signing: Airlock, mailbox: Mailbox) -> None:
    body = {"name": "mail", "type": "email", "config": mail_config(mailbox, input_requests=True)}
    resp = await signing.gateway.post("/internal/channels/new", json=body, headers=ADMIN)
    made = await resp.json()
    assert resp.status == 201 and made["config"]["password"] == "********"
    listed = await (await signing.gateway.get("/internal/channels", headers=ADMIN)).json()
    [channel] = listed["channels"]
    assert channel["type"] == "email" and channel["config"]["password"] == "********"
    assert channel["config"]["username"] == USERNAME and channel["config"]["input_requests"] is True
    assert PASSWORD not in json.dumps(listed)
    with sqlite3.connect(signing.home / "airlock.db") as conn:
        [(stored,)] = conn.execute("SELECT config FROM channels").fetchall()
    assert PASSWORD not in stored and "sealed:v1:" in stored
    types = {
        t["type"]: t
        for t in (await (await signing.gateway.get("/internal/channel-types", headers=ADMIN)).json())["types"]
    }
    assert types["email"]["secrets"] == ["password"]
    assert set(types["email"]["config_schema"]["required"]) == {"smtp_host", "smtp_port", "from", "to"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"to": []}, "config.to"),
        ({"to": ["not an address"]}, "config.to.0"),
        ({"to": None}, "config.to"),
        ({"smtp_port": 70000}, "config.smtp_port"),
        ({"smtp_host": "mail.example.com\r\nRCPT TO:<x@y.z>"}, "config.smtp_host"),
        ({"from": "nobody"}, "config.from"),
        ({"from": "a@b.example\r\nBcc: x@y.z"}, "config.from"),
        ({"password": None}, "config.password"),
        ({"username": None}, "config.username"),
        ({"smtp_host": "smtp.example.com"}, "config.starttls"),  # a password in clear over the network
        ({"colour": "red"}, "config"),
    ],
)
async def test_a_bad_email_config_is_400_naming_the_field(
    signing: Airlock, mailbox: Mailbox, changes: dict[str, Any], field: str
) -> None:
    body = {"name": "mail", "type": "email", "config": mail_config(mailbox, **changes)}
    err = await error_of(await signing.gateway.post("/internal/channels/new", json=body, headers=ADMIN), 400)
    assert err["field"] == field, err
    assert PASSWORD not in json.dumps(err)


def test_a_name_never_splits_a_header() -> None:
    assert one_line("bulk\r\nBcc: eve@example.com\x00") == "bulk Bcc: eve@example.com"
    assert len(one_line("x" * 500)) == 200


# ---------------------------------------------------------------- a yes/no hold: the mail and its links


async def test_a_hold_mails_links_a_person_follows_to_approve_once(
    signing: Airlock, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await with_mail(signing, mailbox)
    task = await signing.hold(TEXT)
    [mail] = await mailbox.wait(1)
    envelope, _, raw = mailbox.messages[0]
    approval = await signing.mesh.store.latest_approval(task["id"])
    assert approval is not None
    base = signing.mesh.config.gateway_url

    assert mail["Subject"] == f"Approval required: bulk_delete_expired ({GUIDE_POLICY['name']})"
    assert mail["From"] == "Airlock <airlock@example.com>"
    assert set(envelope.rcpt_tos) == {"ops@example.com", "oncall@example.com"}
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mailbox.logins == [(USERNAME.encode(), PASSWORD.encode())]  # logged in with the unsealed password
    text, page = parts_of(mail)
    for part in (text, page):
        assert "bulk_delete_expired" in part and "staging-db" in part and GUIDE_POLICY["name"] in part
        assert "UTC" in part  # the expiry
    assert TEXT in text
    assert "&lt;b&gt;now&lt;/b&gt; &amp; &quot;quickly&quot;" in page and "<b>now</b>" not in page  # escaped

    approve = [u for u in urls_in(text) if "decision=approve" in u]
    deny = [u for u in urls_in(text) if "decision=deny" in u]
    dashboard = f"{base}/dashboard/approvals/{approval.id}"
    assert len(approve) == 1 and len(deny) == 1 and dashboard in urls_in(text)
    assert approve[0].startswith(f"{base}/v1/approvals/{approval.id}/resolve?")
    assert set(hrefs_in(page)) == {approve[0], deny[0], dashboard}

    token = callback_token(signing.mesh.config.callback_key, approval.id)
    for secret in (token, PASSWORD):
        assert secret not in raw.decode() and secret not in text and secret not in page

    # a GET (what a mail scanner does, and what a click does) shows the page and resolves nothing
    session = signing.gateway.session
    for _ in range(2):
        resp = await session.get(approve[0], headers=BROWSER)
        assert resp.status == 200
        page_headers_ok(resp)
        confirm = await resp.text()
    assert "Approve this request?" in confirm and "bulk_delete_expired" in confirm
    assert "&lt;b&gt;now&lt;/b&gt;" in confirm and "<b>now</b>" not in confirm
    assert await task_state(signing, task["id"]) == "input-required"
    assert await signing.executions() == 0

    # its button posts the form as a browser would, and that resolves
    form = form_of(confirm)
    target = urlsplit(approve[0])
    assert unescape(form.action or "") == f"{target.path}?{target.query}"
    resp = await session.post(f"{base}{unescape(form.action or '')}", data=form.fields, headers=BROWSER)
    assert resp.status == 200
    page_headers_ok(resp)
    done = await resp.text()
    assert '<h1 class="good">Approved</h1>' in done and "completed" in done
    assert await task_state(signing, task["id"]) == "completed"
    assert await signing.executions() == 1

    # pressed again, or the other link: an HTML 410 that says who was first
    for url in (approve[0], deny[0]):
        resp = await session.post(url, data=form.fields, headers=BROWSER)
        assert resp.status == 410
        page_headers_ok(resp)
        late = await resp.text()
        assert "already approved by signed-link via signed link" in late and "<form" not in late
    assert await signing.executions() == 1
    # an API client still gets JSON
    await error_of(await session.post(approve[0]), 410)

    # the list is told it is done, in the same thread, with no link that acts
    _, done_mail = await mailbox.wait(2)
    assert done_mail["Subject"] == f"Approved: bulk_delete_expired ({GUIDE_POLICY['name']})"
    assert done_mail["In-Reply-To"] == mail["Message-ID"]
    done_text, done_page = parts_of(done_mail)
    assert "Approved by signed-link via signed link" in done_text and "Approved by signed-link" in done_page
    assert "sig=" not in done_text and "sig=" not in done_page

    logged = log_text(caplog)
    for secret in (token, PASSWORD):
        assert secret not in logged


async def test_a_deny_link_denies_and_the_agent_never_runs(signing: Airlock, mailbox: Mailbox) -> None:
    await with_mail(signing, mailbox)
    task = await signing.hold()
    [mail] = await mailbox.wait(1)
    text, _ = parts_of(mail)
    [deny] = [u for u in urls_in(text) if "decision=deny" in u]
    session = signing.gateway.session
    confirm = await (await session.get(deny, headers=BROWSER)).text()
    assert "Deny this request?" in confirm
    form = form_of(confirm)
    resp = await session.post(deny, data=form.fields)  # the page's own form: a page, whatever it accepts
    assert resp.status == 200
    page_headers_ok(resp)
    assert '<h1 class="bad">Denied</h1>' in await resp.text()
    assert await task_state(signing, task["id"]) == "rejected"
    assert await signing.executions() == 0
    _, done_mail = await mailbox.wait(2)
    assert done_mail["Subject"].startswith("Denied: ")
    assert "Denied by signed-link via signed link" in parts_of(done_mail)[0]


async def test_a_bad_link_is_an_html_401_for_a_browser_and_json_for_an_api(signing: Airlock, mailbox: Mailbox) -> None:
    await with_mail(signing, mailbox)
    task = await signing.hold()
    [mail] = await mailbox.wait(1)
    [approve] = [u for u in urls_in(parts_of(mail)[0]) if "decision=approve" in u]
    parts = urlsplit(approve)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    forged = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode({**query, 'sig': '0' * len(query['sig'])})}"
    session = signing.gateway.session
    for resp in (
        await session.get(forged, headers=BROWSER),
        await session.post(forged, headers=BROWSER),
        await session.post(forged, data={"via": "page"}),
    ):
        assert resp.status == 401
        page_headers_ok(resp)
        assert "This link is not valid" in await resp.text()
    await error_of(await session.post(forged), 401)
    await error_of(await session.post(forged, json={}), 401)
    await error_of(await session.get(forged), 401)
    assert await task_state(signing, task["id"]) == "input-required"


async def test_an_expired_hold_and_an_old_link_are_html_410_pages(tmp_path: Path, mailbox: Mailbox) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, signing_key=KEY, clock=clock, timeout_s=600) as airlock:
        await with_mail(airlock, mailbox)
        first = await airlock.hold()
        [mail] = await mailbox.wait(1)
        [approve] = [u for u in urls_in(parts_of(mail)[0]) if "decision=approve" in u]
        session = airlock.gateway.session

        # an old link for a hold that still waits: the link is gone, the hold is not
        second = await airlock.hold()
        await mailbox.wait(2)
        waiting = await airlock.mesh.store.latest_approval(second["id"])
        assert waiting is not None
        old = signed_link(airlock.mesh.config.gateway_url, KEY, waiting.id, "approve", int(time.time()) - 5)
        resp = await session.post(old, data={"via": "page"})
        assert resp.status == 410
        page_headers_ok(resp)
        assert "This link has expired" in await resp.text()
        assert await task_state(airlock, second["id"]) == "input-required"

        clock.advance(601)
        await airlock.mesh.expiry.expire_due()
        resp = await session.get(approve, headers=BROWSER)
        assert resp.status == 200 and "<form" not in (confirm := await resp.text()) and "Expired" in confirm
        resp = await session.post(approve, headers=BROWSER)
        assert resp.status == 410
        page_headers_ok(resp)
        assert "expired before anyone decided" in await resp.text()
        await error_of(await session.post(approve), 410)
        assert await airlock.executions() == 0

        mails = await mailbox.wait(4)
    expired = {m["Subject"] for m in mails[2:]}
    assert expired == {f"Expired: bulk_delete_expired ({GUIDE_POLICY['name']})"}
    text, _ = parts_of(mails[2])
    assert "Expired: nobody decided by" in text and "sig=" not in text
    assert first["id"] != second["id"]


# ---------------------------------------------------------------- forms and input requests: the dashboard only


async def test_a_form_with_fields_gets_only_the_dashboard_link(signing: Airlock, mailbox: Mailbox) -> None:
    policy = {
        **GUIDE_POLICY,
        "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 10, "fields": STRUCTURED_FIELDS}},
    }
    await with_mail(signing, mailbox, policy)
    task = await signing.hold()
    [mail] = await mailbox.wait(1)
    approval = await signing.mesh.store.latest_approval(task["id"])
    assert approval is not None
    assert mail["Subject"] == f"Approval required: bulk_delete_expired ({GUIDE_POLICY['name']})"
    text, page = parts_of(mail)
    dashboard = f"{signing.mesh.config.gateway_url}/dashboard/approvals/{approval.id}"
    assert urls_in(text) == [dashboard] and hrefs_in(page) == [dashboard]
    token = callback_token(signing.mesh.config.callback_key, approval.id)
    for part in (text, page, mailbox.messages[0][2].decode()):
        assert "sig=" not in part and "/resolve" not in part and token not in part
    assert "more than a yes or no" in text

    # a signed link made some other way opens a page with no button: a link cannot carry the values
    link = signed_link(signing.mesh.config.gateway_url, KEY, approval.id, "approve", int(time.time()) + 600)
    confirm = await (await signing.gateway.session.get(link, headers=BROWSER)).text()
    assert "<form" not in confirm and "dashboard" in confirm
    assert await task_state(signing, task["id"]) == "input-required"


async def test_an_input_request_gets_only_the_dashboard_link(signing: Airlock, mailbox: Mailbox) -> None:
    await with_mail(signing, mailbox, policy=False, input_requests=True)
    task = await ask_credentials(signing)
    [mail] = await mailbox.wait(1)
    request_id = task["metadata"]["airlock"]["inputRequestId"]
    assert mail["Subject"] == "Input requested: Production database credentials (staging-db)"
    text, page = parts_of(mail)
    dashboard = f"{signing.mesh.config.gateway_url}/dashboard/approvals/{request_id}"
    assert urls_in(text) == [dashboard] and hrefs_in(page) == [dashboard]
    token = callback_token(signing.mesh.config.callback_key, request_id)
    for part in (text, page, mailbox.messages[0][2].decode()):
        assert token not in part and "sig=" not in part
    assert "asks for values" in text


# ---------------------------------------------------------------- failures


async def test_a_temporary_smtp_failure_is_tried_again(
    tmp_path: Path, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mailbox.fail_data = 1
    clock = Clock()
    async with start_airlock(tmp_path, signing_key=KEY, clock=clock) as airlock:
        await with_mail(airlock, mailbox)
        await airlock.hold()
        for _ in range(100):
            if mailbox.messages:
                break
            clock.advance(3)  # past the backoff
            await asyncio.sleep(0.1)
        [mail] = await mailbox.wait(1)
    assert mail["Subject"].startswith("Approval required: ")
    with sqlite3.connect(tmp_path / "airlock.db") as conn:
        [(attempts,)] = conn.execute("SELECT attempts FROM outbox WHERE kind = 'notify'").fetchall()
    assert attempts == 2
    logged = log_text(caplog)
    assert "failed, attempt 1: SMTP 451 (SMTPDataError)" in logged and PASSWORD not in logged


async def test_every_recipient_refused_is_a_dead_letter(
    signing: Airlock, mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mailbox.refuse_recipients = True
    await with_mail(signing, mailbox)
    await signing.hold()

    async def dead() -> list[dict]:
        page = await signing.gateway.get("/internal/outbox?state=dead", headers=ADMIN)
        return (await page.json())["entries"]

    for _ in range(100):
        if await dead():
            break
        await asyncio.sleep(0.05)
    [entry] = await dead()
    assert entry["last_error"] == "SMTP 550: every recipient refused" and entry["attempts"] == 1
    assert mailbox.messages == []
    assert PASSWORD not in log_text(caplog)

    # once the list is fixed, the dead letter is sent again
    mailbox.refuse_recipients = False
    resp = await signing.gateway.post(f"/internal/outbox/{entry['id']}/retry", headers=ADMIN)
    assert resp.status == 200
    await mailbox.wait(1)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"password": "not-the-Pa55word-1b7e"}, "SMTP 535 (SMTPAuthenticationError)"),
        # starttls left out and a password set: STARTTLS or nothing, and this server offers none
        ({"starttls": None}, "SMTPException"),
    ],
)
async def test_a_login_that_fails_is_retried_and_never_logs_the_password(
    signing: Airlock, mailbox: Mailbox, caplog: pytest.LogCaptureFixture, changes: dict[str, Any], error: str
) -> None:
    caplog.set_level(logging.DEBUG)
    await with_mail(signing, mailbox, **changes)
    await signing.hold()

    async def failed() -> list[dict]:
        page = await signing.gateway.get("/internal/outbox", headers=ADMIN)
        return [e for e in (await page.json())["entries"] if e["attempts"] >= 1]

    for _ in range(100):
        if await failed():
            break
        await asyncio.sleep(0.05)
    [entry] = await failed()
    assert entry["last_error"] == error
    assert mailbox.messages == []
    if changes.get("starttls", False) is None:
        assert mailbox.logins == []  # the password never crossed in clear
    logged = log_text(caplog)
    for password in (PASSWORD, changes.get("password") or PASSWORD):
        assert password not in logged and password not in json.dumps(entry)


# ---------------------------------------------------------------- decisions beyond yes and no


async def drained(airlock: Airlock) -> None:
    """Every outbox row delivered (or dead): nothing more will reach the mailbox."""
    deadline = time.monotonic() + 10
    while await airlock.mesh.store.list_outbox("default", "pending"):
        assert time.monotonic() < deadline, "the outbox never drained"
        await asyncio.sleep(0.05)


async def test_a_hold_needing_two_approvals_mails_the_deny_link_alone(signing: Airlock, mailbox: Mailbox) -> None:
    await with_mail(signing, mailbox, {**GUIDE_POLICY, "approvals_required": 2})
    task = await signing.hold()
    [mail] = await mailbox.wait(1)
    text, page = parts_of(mail)
    for part in (text, page):
        assert "needs 2 approvals" in part
        assert "each given signed in" in part and "dashboard" in part
    assert [u for u in urls_in(text) if "decision=approve" in u] == []
    assert not [h for h in hrefs_in(page) if "decision=approve" in h] and ">Approve<" not in page
    [deny] = [u for u in urls_in(text) if "decision=deny" in u]
    assert deny in hrefs_in(page)

    # one approval signed in, then the mailed deny link still ends it: a "no" needs no quorum
    assert (await signing.resolve(task["id"], {"decision": "approve"}, bearer("bob", "approver"))).status == 200
    resp = await signing.gateway.session.post(deny)
    assert resp.status == 200, await resp.text()
    assert await task_state(signing, task["id"]) == "rejected"
    _, done = await mailbox.wait(2)
    assert done["Subject"].startswith("Denied:") and "Denied by signed-link" in parts_of(done)[0]
    assert await signing.executions() == 0


async def test_a_quorum_approval_mail_names_every_approver(signing: Airlock, mailbox: Mailbox) -> None:
    await with_mail(signing, mailbox, {**GUIDE_POLICY, "approvals_required": 2})
    task = await signing.hold()
    await mailbox.wait(1)
    for who in ("bob", "carol"):
        assert (await signing.resolve(task["id"], {"decision": "approve"}, bearer(who, "approver"))).status == 200
    _, done = await mailbox.wait(2)
    await drained(signing)
    assert len(mailbox.messages) == 2  # progress is no mail: the list hears of the start and of the end
    text, page = parts_of(done)
    assert "Approved by bob, carol at" in text and "Approved by bob, carol" in page


async def test_a_denials_reason_is_in_the_mail_that_ends_the_thread(signing: Airlock, mailbox: Mailbox) -> None:
    await with_mail(signing, mailbox)
    task = await signing.hold()
    [asked] = await mailbox.wait(1)
    assert "needs" not in parts_of(asked)[0]  # one approver: nothing said of a quorum, both links
    assert len([u for u in urls_in(parts_of(asked)[0]) if "decision=" in u]) == 2
    reason = 'Backup <not> verified & "freeze" on'
    resp = await signing.resolve(task["id"], {"decision": "deny", "reason": reason}, bearer("carol", "approver"))
    assert resp.status == 200, await resp.text()
    _, done = await mailbox.wait(2)
    assert done["In-Reply-To"] == asked["Message-ID"]
    text, page = parts_of(done)
    assert "Denied by carol via api" in text and f"Reason:\r\n  {reason}" in text
    assert "Backup &lt;not&gt; verified &amp; &quot;freeze&quot; on" in page and "<not>" not in page


async def test_an_escalation_mails_the_request_once_to_the_escalation_list(tmp_path: Path, mailbox: Mailbox) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock, signing_key=KEY) as airlock:
        oncall = {"name": "mail-oncall", "type": "email", "config": mail_config(mailbox, to=["lead@example.com"])}
        resp = await airlock.gateway.post("/internal/channels/new", json=oncall, headers=ADMIN)
        assert resp.status == 201, await resp.text()
        await with_mail(airlock, mailbox, {**GUIDE_POLICY, "escalate_after": "10m", "escalate_to": ["mail-oncall"]})
        task = await airlock.hold(TEXT)
        [asked] = await mailbox.wait(1)
        clock.advance(601)
        assert await airlock.mesh.expiry.escalate_due() == 1
        assert await airlock.mesh.expiry.escalate_due() == 0
        await mailbox.wait(2)
        await drained(airlock)
        clock.advance(60)
        assert await airlock.mesh.expiry.escalate_due() == 0
        await drained(airlock)
        assert len(mailbox.messages) == 2  # the hold's own list is not mailed again
        envelope, escalated, raw = mailbox.messages[1]
        approval = await airlock.mesh.store.latest_approval(task["id"])
        assert approval is not None
        token = callback_token(airlock.mesh.config.callback_key, approval.id)
    assert envelope.rcpt_tos == ["lead@example.com"]
    assert escalated["Subject"] == f"Escalated: Approval required: bulk_delete_expired ({GUIDE_POLICY['name']})"
    assert escalated["Message-ID"] != asked["Message-ID"] and escalated["In-Reply-To"] is None
    text, page = parts_of(escalated)
    assert "Escalated: waiting since" in text and "Escalated: waiting since" in page
    assert TEXT in text  # what was asked, for a list that never had the request
    assert len([u for u in urls_in(text) if "decision=" in u]) == 2  # one approver: both links, as requested
    assert token not in raw.decode() and PASSWORD not in raw.decode()
