"""Request authentication for the gateway's routes (JWT → principal, role checks)."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import ApiError
from gateway.keys import VERIFIER
from mesh.auth import AuthError, Principal

# With ``--auth none`` (development only) the gateway's caller is a local operator.
OPERATOR = Principal(sub="operator", tenant="default", roles=frozenset({"approver", "admin"}))


def bearer(request: web.Request) -> Principal:
    """The caller's principal; 401 when the token is missing or bad."""
    verifier = request.app[VERIFIER]
    if verifier is None:
        return OPERATOR
    try:
        return verifier.verify_header(request.headers.get("Authorization"))
    except AuthError as exc:
        raise ApiError(401, str(exc)) from None


def has_bearer(request: web.Request) -> bool:
    return bool(request.headers.get("Authorization"))


def require(request: web.Request, *roles: str) -> Principal:
    """The caller's principal, which must hold one of ``roles`` (403 otherwise)."""
    principal = bearer(request)
    if roles and request.app[VERIFIER] is not None and not principal.has(*roles):
        raise ApiError(403, f"this route needs one of the roles: {', '.join(roles)}")
    return principal
