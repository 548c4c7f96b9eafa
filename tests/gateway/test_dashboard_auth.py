"""The dashboard's sign-in at the HTTP level: sessions by JWT or login link, the cookie, CSRF, and the session
as another way to become the principal on the API's own routes."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.auth import csrf_token
from gateway.cli import main
from gateway.dashboard.sessions import make_link_token, read_link_token
from tests.conftest import GUIDE_POLICY, Airlock, bearer, make_token, start_airlock
from tests.gateway.conftest import Clock

CALLBACK_KEY = b"k" * 32  # what tests.conftest.start_airlock gives the mesh


def login_csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def sign_in(client: TestClient, token: str, **headers: str) -> tuple[int, str]:
    """Post the login form with the page's own CSRF token; (status, session cookie or '')."""
    page = await client.get("/dashboard/login")
    csrf = login_csrf(await page.text())
    resp = await client.post(
        "/dashboard/login", data={"token": token, "csrf_token": csrf}, allow_redirects=False, headers=headers
    )
    cookie = resp.cookies.get("airlock_session")
    return resp.status, cookie.value if cookie else ""


@pytest.fixture
async def held(airlock: Airlock) -> AsyncIterator[dict]:
    await airlock.add_policy()
    task = await airlock.hold(headers=bearer("carol", "agent"))
    yield task


async def test_a_request_without_a_session_is_sent_to_the_login(airlock: Airlock) -> None:
    gw = airlock.gateway
    for path in ("/dashboard", "/dashboard/history", "/dashboard/policies", "/dashboard/cards/x"):
        resp = await gw.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/dashboard/login", path
    page = await gw.get("/dashboard/login")
    assert page.status == 200
    html = await page.text()
    assert 'name="token"' in html and 'type="submit"' in html
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


async def test_sign_in_with_a_jwt_sets_a_strict_httponly_cookie_kept_by_its_hash(airlock: Airlock) -> None:
    gw = airlock.gateway
    page = await gw.get("/dashboard/login")
    csrf = login_csrf(await page.text())
    resp = await gw.post(
        "/dashboard/login",
        data={"token": make_token("alice", "approver"), "csrf_token": csrf},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
    raw = [h for h in resp.headers.getall("Set-Cookie") if h.startswith("airlock_session=")]
    assert len(raw) == 1
    cookie = raw[0].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http on loopback
    token = resp.cookies["airlock_session"].value
    rows = sqlite3.connect(airlock.home / "airlock.db").execute("SELECT token_hash, sub FROM dashboard_sessions")
    assert list(rows) == [(hashlib.sha256(token.encode()).hexdigest(), "alice")]
    db = b"".join(p.read_bytes() for p in sorted(Path(airlock.home).glob("airlock.db*")))
    assert token.encode() not in db
    queue = await gw.get("/dashboard")
    assert queue.status == 200
    assert "Approval Queue" in await queue.text()


async def test_the_cookie_is_secure_behind_https(airlock: Airlock) -> None:
    gw = airlock.gateway
    csrf = login_csrf(await (await gw.get("/dashboard/login")).text())
    resp = await gw.post(
        "/dashboard/login",
        data={"token": make_token("alice", "approver"), "csrf_token": csrf},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert resp.status == 303
    [cookie] = [h for h in resp.headers.getall("Set-Cookie") if h.startswith("airlock_session=")]
    assert "secure" in cookie.lower()


async def test_sign_in_is_refused_without_its_csrf_token_or_with_a_bad_or_weak_token(airlock: Airlock) -> None:
    gw = airlock.gateway
    await gw.get("/dashboard/login")
    resp = await gw.post("/dashboard/login", data={"token": make_token()}, allow_redirects=False)
    assert resp.status == 403
    resp = await gw.post("/dashboard/login", data={"token": make_token(), "csrf_token": "x"}, allow_redirects=False)
    assert resp.status == 403
    assert (await sign_in(gw, "not-a-jwt"))[0] == 401
    assert (await sign_in(gw, make_token("dave", "agent")))[0] == 403
    assert (await sign_in(gw, make_token("eve", "approver", ttl_s=-10)))[0] == 401
    assert "airlock_session" not in {c.key for c in gw.session.cookie_jar}


async def test_the_session_is_the_principal_on_the_api_routes_with_csrf_on_unsafe_methods(
    airlock: Airlock, held: dict
) -> None:
    gw = airlock.gateway
    status, token = await sign_in(gw, make_token("alice", "approver"))
    assert status == 303
    listed = await gw.get("/v1/approvals")
    assert listed.status == 200
    [approval] = (await listed.json())["approvals"]
    url = f"/messages/{approval['id']}/resolve"
    body = {"resolution": {"decision": "approve"}}
    assert (await gw.post(url, json=body)).status == 403  # no CSRF token
    assert (await gw.post(url, json=body, headers={"X-CSRF-Token": "0" * 64})).status == 403
    other = csrf_token("someone-elses-session")
    assert (await gw.post(url, json=body, headers={"X-CSRF-Token": other})).status == 403
    resp = await gw.post(url, json=body, headers={"X-CSRF-Token": csrf_token(token)})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["task"]["status"]["state"] == "completed"
    entries = [e async for e in airlock.mesh.store.iter_audit() if e.kind == "approval.resolved"]
    assert entries[-1].actor == "alice" and entries[-1].detail["surface"] == "dashboard"
    # a Bearer token, when sent, wins over the cookie (and needs no CSRF token)
    resp = await gw.get("/internal/policies", headers=bearer("root", "admin"))
    assert resp.status == 200
    # an approver's session is no admin
    assert (await gw.get("/internal/policies")).status == 403


async def test_logout_ends_the_session(airlock: Airlock) -> None:
    gw = airlock.gateway
    _, token = await sign_in(gw, make_token("alice", "approver"))
    assert (await gw.get("/v1/approvals")).status == 200
    resp = await gw.post("/dashboard/logout", data={"csrf_token": "wrong"}, allow_redirects=False)
    assert resp.status == 403
    resp = await gw.post("/dashboard/logout", data={"csrf_token": csrf_token(token)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/dashboard/login"
    assert await airlock.mesh.store.get_session(hashlib.sha256(token.encode()).hexdigest(), time.time()) is None
    gw.session.cookie_jar.update_cookies({"airlock_session": token})  # a copy kept by someone
    resp = await gw.get("/v1/approvals")
    assert resp.status == 401 and "session has ended" in (await resp.json())["error"]["message"]
    assert (await gw.get("/dashboard", allow_redirects=False)).status == 303


async def test_the_session_ends_when_the_token_expires(tmp_path: Path) -> None:
    clock = Clock()
    async with start_airlock(tmp_path, clock=clock) as airlock:
        gw = airlock.gateway
        _, token = await sign_in(gw, make_token("alice", "approver", ttl_s=120))
        session = await airlock.mesh.store.get_session(hashlib.sha256(token.encode()).hexdigest(), clock())
        assert session is not None and 100 < session.expires_at - time.time() <= 120
        assert (await gw.get("/v1/approvals")).status == 200
        clock.advance(121)
        assert (await gw.get("/v1/approvals")).status == 401
        assert (await gw.get("/dashboard", allow_redirects=False)).status == 303


async def test_a_login_link_signs_in_once(airlock: Airlock) -> None:
    gw = airlock.gateway
    link = make_link_token(CALLBACK_KEY, "alice", roles=["approver", "admin"])
    page = await gw.get(f"/dashboard/login/link?t={link}")
    assert page.status == 200
    html = await page.text()
    assert "Sign in as alice" in html
    csrf = login_csrf(html)
    resp = await gw.post("/dashboard/login/link", data={"t": link, "csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303 and "airlock_session" in resp.cookies
    assert (await gw.get("/internal/policies")).status == 200  # an admin's session
    # replayed: the page still opens (a GET uses nothing up), the sign-in is refused
    csrf = login_csrf(await (await gw.get(f"/dashboard/login/link?t={link}")).text())
    again = await gw.post("/dashboard/login/link", data={"t": link, "csrf_token": csrf}, allow_redirects=False)
    assert again.status == 401 and "used already" in await again.text()


async def test_a_login_link_is_no_bearer_token_and_a_bearer_token_no_link(airlock: Airlock) -> None:
    gw = airlock.gateway
    link = make_link_token(CALLBACK_KEY, "alice", roles=["admin"])
    resp = await gw.get("/v1/approvals", headers={"Authorization": f"Bearer {link}"})
    assert resp.status == 401
    assert (await gw.get(f"/dashboard/login/link?t={make_token()}")).status == 401
    expired = make_link_token(CALLBACK_KEY, "alice", now=time.time() - 601)
    page = await gw.get(f"/dashboard/login/link?t={expired}")
    assert page.status == 401 and "expired" in await page.text()
    forged = make_link_token(b"x" * 32, "alice")
    assert (await gw.get(f"/dashboard/login/link?t={forged}")).status == 401
    with pytest.raises(ValueError):
        make_link_token(CALLBACK_KEY, "alice", roles=["agent"])


def test_airlock_login_link_prints_a_url_the_home_s_key_signs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path))
    monkeypatch.delenv("AIRLOCK_GATEWAY_URL", raising=False)
    assert main(["login-link", "--sub", "alice", "--role", "admin", "--gateway-url", "https://air.example/"]) == 0
    printed = capsys.readouterr()
    url = printed.out.strip()
    assert url.startswith("https://air.example/dashboard/login/link?t=")
    # a link signed with a key the command had to make is one no running server accepts: it says so
    assert "warning: created a new key" in printed.err and str((tmp_path / "callback.key").resolve()) in printed.err
    key = (tmp_path / "callback.key").read_bytes().strip()
    claims = read_link_token(key, url.split("t=", 1)[1])
    assert (claims.sub, claims.tenant, claims.roles) == ("alice", "default", ("admin",))
    assert claims.expires_at - time.time() <= 600
    assert os.stat(tmp_path / "callback.key").st_mode & 0o077 == 0
    with pytest.raises(SystemExit):
        main(["login-link", "--sub", "alice", "--role", "agent"])


async def test_an_approver_streams_the_tenant_s_approval_events_only(airlock: Airlock) -> None:
    await airlock.add_policy(GUIDE_POLICY)
    resp = await airlock.gateway.get("/v1/events/stream", headers=bearer("carol", "approver"))
    assert resp.status == 200
    task = await airlock.hold(headers=bearer("dave", "agent"))
    text = ""
    deadline = time.monotonic() + 5
    while "approval.created" not in text and time.monotonic() < deadline:
        text += (await resp.content.readany()).decode()
    assert "event: approval.created" in text and task["id"] in text
    assert "task.updated" not in text
    resp.close()


async def test_what_an_agent_or_user_wrote_is_escaped_in_the_pages(airlock: Airlock) -> None:
    await airlock.add_policy()
    evil = "Delete expired <img src=x onerror=alert(1)> records"
    task = await airlock.hold(evil, headers=bearer("carol", "agent"))
    gw = airlock.gateway
    await sign_in(gw, make_token("alice", "approver"))
    queue = await (await gw.get("/dashboard")).text()
    assert "<img src=x" not in queue and "&lt;img src=x onerror=alert(1)&gt;" in queue
    approval = task["metadata"]["airlock"]["approvalId"]
    fragment = await gw.get(f"/dashboard/cards/{approval}")
    assert fragment.status == 200
    html = await fragment.text()
    assert f'data-approval-id="{approval}"' in html and "<img src=x" not in html
    assert (await gw.get("/dashboard/cards/no-such-id")).status == 404


async def test_history_and_policies_pages(airlock: Airlock) -> None:
    await airlock.add_policy()
    task = await airlock.hold(headers=bearer("carol", "agent"))
    resp = await airlock.resolve(task["id"], {"decision": "deny"}, headers=bearer("bob", "approver"))
    assert resp.status == 200
    gw = airlock.gateway
    await sign_in(gw, make_token("alice", "approver"))
    approval = task["metadata"]["airlock"]["approvalId"]
    history = await (await gw.get("/dashboard/history")).text()
    assert f'<tr data-approval-id="{approval}">' in history and "denied" in history and "bob" in history
    assert approval not in await (await gw.get("/dashboard/history?outcome=approved")).text()
    assert approval in await (await gw.get("/dashboard/history?who=BO&surface=api")).text()
    assert (await gw.get("/dashboard/policies")).status == 403  # an approver's session
    await sign_in(gw, make_token("root", "admin"))
    policies = await (await gw.get("/dashboard/policies")).text()
    assert 'data-policy="bulk_ops_approval"' in policies and "Always allow" in policies


async def test_with_auth_off_the_dashboard_is_the_local_operator_s(tmp_path: Path) -> None:
    async with start_airlock(tmp_path, auth=False) as airlock:
        resp = await airlock.gateway.get("/dashboard", allow_redirects=False)
        assert resp.status == 200
        assert "operator · default" in await resp.text()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=x", b"token=abc"),  # no such boundary in the body
        ("application/x-www-form-urlencoded", b"token=\xff\xfe"),  # not UTF-8
    ],
)
@pytest.mark.parametrize("path", ["/dashboard/login", "/dashboard/login/link?t=abc.def"])
async def test_a_form_that_cannot_be_read_is_a_400_not_a_500(
    airlock: Airlock, caplog: pytest.LogCaptureFixture, path: str, content_type: str, body: bytes
) -> None:
    resp = await airlock.gateway.post(path, data=body, headers={"Content-Type": content_type})
    assert resp.status == 400, await resp.text()
    assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text
