"""The dashboard's pages: sign in and out, the approval queue (and one card of it), history, policies.

Pages are rendered on the server; ``static/dashboard/dashboard.js`` submits a card's form to the same
routes an API client uses (``/messages/{id}/resolve``, ``/v1/approvals/bulk-resolve``,
``/internal/policies/update``) and follows ``/v1/events/stream``, all with the session cookie and the CSRF
token. A request without a session is sent to the login page.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.auth import (
    CSRF_FIELD,
    OPERATOR,
    SESSION_COOKIE,
    SESSION_PRINCIPAL,
    SESSION_TOKEN,
    csrf_token,
    token_hash,
)
from gateway.dashboard.sessions import (
    RESOLVER_ROLES,
    LinkError,
    new_session_token,
    read_link_token,
    token_expiry,
)
from gateway.dashboard.views import card_view, history_rows, policy_rows
from gateway.errors import read_form
from gateway.keys import MESH, VERIFIER
from mesh.auth import AuthError, Principal
from mesh.store import SessionRecord

log = logging.getLogger("airlock.gateway.dashboard")

routes = web.RouteTableDef()
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
LOGIN_CSRF_COOKIE = "airlock_login_csrf"
LOGIN_PATH = "/dashboard/login"
QUEUE_LIMIT = 500
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}


def setup(app: web.Application) -> None:
    """Add the dashboard's routes, templates and static files to the gateway app."""
    if aiohttp_jinja2.APP_KEY not in app:
        aiohttp_jinja2.setup(
            app,
            loader=jinja2.PackageLoader("gateway", "templates"),
            autoescape=jinja2.select_autoescape(["html"], default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
    app.add_routes(routes)
    app.router.add_static("/dashboard/static", STATIC_DIR)


# ---------------------------------------------------------------------------------------------- helpers


def render(request: web.Request, name: str, context: dict[str, Any], status: int = 200) -> web.Response:
    resp = aiohttp_jinja2.render_template(f"dashboard/{name}", request, context, status=status)
    resp.headers.update(PAGE_HEADERS)
    return resp


def _secure(request: web.Request) -> bool:
    """Whether the cookie must be ``Secure``: the page is served over https (directly or behind a proxy that
    says so), or the gateway's public URL is https."""
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https" or request.app[MESH].config.gateway_url.startswith("https://")


def signed_in(request: web.Request) -> tuple[Principal, str]:
    """The page's principal and CSRF token; a request without a session goes to the login page."""
    if request.app[VERIFIER] is None:
        return OPERATOR, ""
    principal = request.get(SESSION_PRINCIPAL)
    token = request.get(SESSION_TOKEN)
    if principal is None or token is None or not principal.has(*RESOLVER_ROLES):
        raise web.HTTPSeeOther(LOGIN_PATH)
    return principal, csrf_token(token)


def page(request: web.Request, principal: Principal, csrf: str, section: str, **extra: Any) -> dict[str, Any]:
    return {"principal": principal, "csrf": csrf, "section": section, "is_admin": principal.is_admin, **extra}


async def start_session(
    request: web.Request, principal: Principal, expires_at: float, location: str = "/dashboard"
) -> web.Response:
    mesh = request.app[MESH]
    now = mesh.clock()
    replaced = request.get(SESSION_TOKEN)
    if replaced is not None:  # signing in over a session ends it
        await mesh.store.delete_session(token_hash(replaced))
    token = new_session_token()
    await mesh.store.create_session(
        SessionRecord(
            token_hash=token_hash(token),
            tenant=principal.tenant,
            sub=principal.sub,
            roles=tuple(sorted(principal.roles)),
            created_at=now,
            expires_at=expires_at,
        ),
        now,
    )
    log.info("dashboard session started for %s (tenant %s)", principal.sub, principal.tenant)
    resp = web.Response(status=303, headers={"Location": location, **PAGE_HEADERS})
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        path="/",
        max_age=max(1, int(expires_at - now)),
    )
    resp.del_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return resp


def login_csrf(request: web.Request) -> tuple[str, bool]:
    """The pre-session CSRF token (a double-submit cookie) and whether it is new."""
    known = request.cookies.get(LOGIN_CSRF_COOKIE)
    if known and known.isascii() and len(known) <= 100:
        return known, False
    return secrets.token_urlsafe(24), True


def _login_page(request: web.Request, name: str, context: dict[str, Any], status: int = 200) -> web.Response:
    csrf, new = login_csrf(request)
    resp = render(request, name, {"csrf": csrf, **context}, status=status)
    if new:
        resp.set_cookie(
            LOGIN_CSRF_COOKIE, csrf, httponly=True, samesite="Strict", secure=_secure(request), path=LOGIN_PATH
        )
    return resp


async def _login_form(request: web.Request) -> dict[str, str] | None:
    """The posted form when its CSRF field matches the login cookie, else None."""
    form = await read_form(request)
    given = form.get(CSRF_FIELD)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if given is None or not cookie or not hmac.compare_digest(given.encode(), cookie.encode()):
        return None
    return form


# ---------------------------------------------------------------------------------------------- signing in


@routes.get("/dashboard/login")
async def login_page(request: web.Request) -> web.Response:
    return _login_page(request, "login.html", {"error": None})


@routes.post("/dashboard/login")
async def login(request: web.Request) -> web.Response:
    verifier = request.app[VERIFIER]
    if verifier is None:
        raise web.HTTPSeeOther("/dashboard")
    form = await _login_form(request)
    if form is None:
        return _login_page(request, "login.html", {"error": "The form expired. Please try again."}, status=403)
    token = form.get("token", "").strip()
    try:
        principal = verifier.verify(token)
    except AuthError:
        return _login_page(request, "login.html", {"error": "That token is not valid or has expired."}, status=401)
    if not principal.has(*RESOLVER_ROLES):
        error = "That token has neither the approver nor the admin role."
        return _login_page(request, "login.html", {"error": error}, status=403)
    return await start_session(request, principal, token_expiry(token))


@routes.get("/dashboard/login/link")
async def link_page(request: web.Request) -> web.Response:
    """What a login link opens: a page with one button (a GET never signs in: link scanners fetch links)."""
    token = request.query.get("t", "")
    try:
        claims = read_link_token(request.app[MESH].config.callback_key, token)
    except LinkError as exc:
        return _login_page(request, "login.html", {"error": str(exc)}, status=401)
    return _login_page(request, "link.html", {"link_token": token, "sub": claims.sub, "tenant": claims.tenant})


@routes.post("/dashboard/login/link")
async def link_login(request: web.Request) -> web.Response:
    mesh = request.app[MESH]
    form = await _login_form(request)
    if form is None:
        return _login_page(request, "login.html", {"error": "The form expired. Open the link again."}, status=403)
    try:
        claims = read_link_token(mesh.config.callback_key, form.get("t", ""))
    except LinkError as exc:
        return _login_page(request, "login.html", {"error": str(exc)}, status=401)
    if not await mesh.store.use_login_link(claims.link_id, mesh.clock(), claims.expires_at):
        error = "This login link was used already; ask for a new one."
        return _login_page(request, "login.html", {"error": error}, status=401)
    principal = Principal(sub=claims.sub, tenant=claims.tenant, roles=frozenset(claims.roles))
    return await start_session(request, principal, time.time() + claims.session_s)


@routes.post("/dashboard/logout")
async def logout(request: web.Request) -> web.Response:
    signed_in(request)  # the middleware checked the CSRF token of this POST
    token = request.get(SESSION_TOKEN)
    if token is not None:
        await request.app[MESH].store.delete_session(token_hash(token))
    resp = web.Response(status=303, headers={"Location": LOGIN_PATH, **PAGE_HEADERS})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


# ---------------------------------------------------------------------------------------------- pages


@routes.get("/dashboard")
async def queue(request: web.Request) -> web.Response:
    principal, csrf = signed_in(request)
    mesh = request.app[MESH]
    now = mesh.clock()
    rows, total = await mesh.store.list_pending(
        principal.tenant, session_id=None, now=now, limit=QUEUE_LIMIT, offset=0
    )
    groups = await mesh.store.run_groups(principal.tenant, now)
    cards = [card_view(a, principal.sub) for a in rows]
    return render(
        request,
        "queue.html",
        page(request, principal, csrf, "queue", cards=cards, total=total, groups=groups, now=now),
    )


@routes.get("/dashboard/cards/{id}")
async def card(request: web.Request) -> web.Response:
    """One pending card as an HTML fragment: the queue adds it when the stream tells of a new hold, and
    fetches it again to bring a card's approvals and its escalation up to date (one renderer, not two)."""
    principal, csrf = signed_in(request)
    mesh = request.app[MESH]
    approval = await mesh.store.get_approval(request.match_info["id"])
    if approval is None or approval.tenant != principal.tenant or not approval.pending:
        raise web.HTTPNotFound()
    if approval.expires_at <= mesh.clock():
        raise web.HTTPNotFound()
    resp = aiohttp_jinja2.render_template(
        "dashboard/card_fragment.html", request, {"c": card_view(approval, principal.sub), "csrf": csrf}
    )
    resp.headers.update(PAGE_HEADERS)
    return resp


@routes.get("/dashboard/history")
async def history(request: web.Request) -> web.Response:
    principal, csrf = signed_in(request)
    filters = {k: request.query.get(k, "").strip()[:200] for k in ("outcome", "surface", "who")}
    rows = await history_rows(request.app[MESH].store, principal.tenant, **filters)
    return render(request, "history.html", page(request, principal, csrf, "history", rows=rows, filters=filters))


@routes.get("/dashboard/policies")
async def policies(request: web.Request) -> web.Response:
    principal, csrf = signed_in(request)
    if not principal.is_admin:
        return render(request, "forbidden.html", page(request, principal, csrf, "policies"), status=403)
    listed = await request.app[MESH].policy_admin.list_policies(principal.tenant)
    return render(
        request, "policies.html", page(request, principal, csrf, "policies", policies=policy_rows(listed))
    )
