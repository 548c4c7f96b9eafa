"""The gateway's limits (:mod:`mesh.limits`): a caller's rate, and attempts with a callback token or a
signed link on one approval.

Those two credentials are guessed against one approval at a time, so they get a limit of their own, keyed
by the approval the request names and lower than a caller's: a flood of guesses from many addresses still
meets it, and a person's one click never does. A request counts as such an attempt when it
- posts to ``/messages/{id}/resolve`` without a Bearer token or a dashboard session (the callback token is
  the only other credential that route takes), or
- opens or posts ``/v1/approvals/{id}/resolve`` with a signature in its query (a signed link).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auth import SESSION_COOKIE
from gateway.errors import error_response
from mesh.auth import TokenVerifier
from mesh.limits import RateLimiter, RequestLimits, limits_middleware
from mesh.wiring import Mesh

CALLBACK_ROUTE = "/messages/{id}/resolve"
LINK_ROUTE = "/v1/approvals/{id}/resolve"


def attempt_key(request: web.Request) -> str | None:
    """The approval a callback-token or signed-link attempt is on, or None when the request is neither."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    template = resource.canonical if resource is not None else None
    if template == CALLBACK_ROUTE:
        if request.method != "POST" or request.headers.get("Authorization") or request.cookies.get(SESSION_COOKIE):
            return None
    elif template != LINK_ROUTE or "sig" not in request.query:
        return None
    return f"approval:{request.match_info.get('id', '')}"


def too_large(request: web.Request) -> web.Response:
    return error_response(413, "request body too large")


def too_many(request: web.Request, retry_after: int) -> web.Response:
    response = error_response(429, f"too many requests; retry after {retry_after}s", code="rate_limited")
    response.headers["Retry-After"] = str(retry_after)
    return response


def gateway_limits(mesh: Mesh, verifier: TokenVerifier | None, max_body: int) -> Any:
    """The middleware for the gateway: put first."""
    config = mesh.config
    extra: tuple[tuple[RateLimiter, Any], ...] = ()
    if config.attempt_limit is not None:
        extra = ((RateLimiter(config.attempt_limit), attempt_key),)
    limits = RequestLimits(
        max_body=max_body,
        rate=RateLimiter(config.rate_limit) if config.rate_limit is not None else None,
        extra=extra,
    )
    return limits_middleware(limits, verifier, too_large=too_large, too_many=too_many)
