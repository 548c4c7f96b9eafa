"""Request authentication for the gateway's routes (JWT or dashboard session → principal, role checks).

A caller becomes a principal in one of two ways: a Bearer JWT in the ``Authorization`` header, or the
dashboard's session cookie (:func:`session_middleware` looks the session up by the hash of its token). A
request that carries the cookie and an unsafe method must also carry the session's CSRF token, in the
``X-CSRF-Token`` header or a form's ``csrf_token`` field; without it the request is refused (403).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.errors import ApiError, read_form
from gateway.keys import MESH, VERIFIER
from mesh.auth import AuthError, Principal
from mesh.limits import VERIFIED

# With ``--auth none`` (development only) the gateway's caller is a local operator.
OPERATOR = Principal(sub="operator", tenant="default", roles=frozenset({"approver", "admin"}))

SESSION_COOKIE = "airlock_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# sign-in forms carry a CSRF token of their own (there is no session yet, or one being replaced)
LOGIN_PATHS = frozenset({"/dashboard/login", "/dashboard/login/link"})


def _request_key(name: str, kind: type) -> Any:
    """A typed request key where aiohttp has them (3.14+), else the plain name."""
    maker = getattr(web, "RequestKey", None)
    return maker(name, kind) if maker is not None else name


SESSION_PRINCIPAL = _request_key("airlock_session_principal", Principal)
SESSION_TOKEN = _request_key("airlock_session_token", str)
SESSION_STALE = _request_key("airlock_session_stale", bool)


def token_hash(token: str) -> str:
    """What the store keeps of a session's token."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(session_token: str) -> str:
    """The session's CSRF token: derived from the session's own token, so nothing more is stored and a page
    of another session (or a forged form) cannot know it."""
    return hmac.new(session_token.encode(), b"airlock dashboard csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(session_token).encode(), str(given).encode())


def from_session(request: web.Request) -> bool:
    """Whether the caller became the principal through the dashboard's session cookie."""
    return request.get(SESSION_PRINCIPAL) is not None


def surface_of(request: web.Request) -> str:
    """The surface a resolution came through: ``dashboard`` for a session, ``api`` for a Bearer token."""
    return "dashboard" if from_session(request) else "api"


@web.middleware
async def session_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn the session cookie into the request's principal (a Bearer token, when sent, wins) and check the
    CSRF token of every unsafe request that relies on the cookie."""
    token = request.cookies.get(SESSION_COOKIE)
    if token and not request.headers.get("Authorization") and request.app[VERIFIER] is not None:
        mesh = request.app[MESH]
        session = await mesh.store.get_session(token_hash(token), mesh.clock()) if token.isascii() else None
        if session is None:
            request[SESSION_STALE] = True
        else:
            if request.method not in SAFE_METHODS and request.path not in LOGIN_PATHS:
                given = request.headers.get(CSRF_HEADER)
                if given is None and request.content_type in FORM_TYPES:
                    form = await read_form(request)  # kept by aiohttp: the handler reads the same form again
                    given = form.get(CSRF_FIELD)
                if not csrf_matches(token, given):
                    raise ApiError(403, "missing or invalid CSRF token")
            request[SESSION_TOKEN] = token
            request[SESSION_PRINCIPAL] = Principal(
                sub=session.sub, tenant=session.tenant, roles=frozenset(session.roles)
            )
    return await handler(request)


def bearer(request: web.Request) -> Principal:
    """The caller's principal; 401 when the token is missing or bad (or the session has ended)."""
    verifier = request.app[VERIFIER]
    if verifier is None:
        return OPERATOR
    header = request.headers.get("Authorization")
    if not header:
        principal = request.get(SESSION_PRINCIPAL)
        if principal is not None:
            return principal
        if request.get(SESSION_STALE):
            raise ApiError(401, "the session has ended; sign in again")
    known = request.get(VERIFIED) if header else None  # verified already by the rate limiter
    if isinstance(known, Principal):
        return known
    try:
        return verifier.verify_header(header)
    except AuthError as exc:
        raise ApiError(401, str(exc)) from None


def has_bearer(request: web.Request) -> bool:
    return bool(request.headers.get("Authorization")) or from_session(request)


def require(request: web.Request, *roles: str) -> Principal:
    """The caller's principal, which must hold one of ``roles`` (403 otherwise)."""
    principal = bearer(request)
    if roles and request.app[VERIFIER] is not None and not principal.has(*roles):
        raise ApiError(403, f"this route needs one of the roles: {', '.join(roles)}")
    return principal
