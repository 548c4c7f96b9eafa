"""REST error bodies: ``{"error": {"code", "message"}}`` with the right status, never a traceback."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from mesh.errors import MeshError

log = logging.getLogger("airlock.gateway")

REASONS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(status: int, message: str, *, code: str | None = None, field: str | None = None) -> web.Response:
    err: dict[str, Any] = {"code": code or REASONS.get(status, "error"), "message": message}
    if field:
        err["field"] = field
    return json_response({"error": err}, status=status)


class ApiError(Exception):
    """Raised by route code for a plain REST failure."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


MAX_ID = 2**63 - 1  # the largest id or cursor a database integer holds
INTEGER = re.compile(r"-?[0-9]{1,30}")  # ASCII digits only: int() would also take "1_0", " 1" and other scripts


def query_int(raw: str | None, name: str, default: int, *, minimum: int = 0, maximum: int = MAX_ID) -> int:
    """An integer from a query string or header, bounded: past ``maximum`` it is the caller's error (400),
    never a database's overflow (500). Absent is ``default``; present, it must be written as an integer
    (an empty value is refused, as the OpenAPI document says)."""
    if raw is None:
        return default
    if not INTEGER.fullmatch(raw):
        raise ApiError(400, f"{name} must be an integer", field=name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ApiError(400, f"{name} must be an integer from {minimum} to {maximum}", field=name)
    return value


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, field=exc.field)
    except MeshError as exc:
        return error_response(exc.status, exc.message, code=exc.code, field=exc.field)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "request body too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason or "error")
        if "Allow" in exc.headers:  # a 405 names the methods the path takes (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except ConnectionResetError:  # the client went away mid-request (e.g. mid-body): nobody to answer
        log.debug("client went away during %s %s", request.method, request.path)
        return error_response(400, "the client closed the connection")
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error", code="internal")


def is_json_type(media_type: str) -> bool:
    """``application/json`` or a ``+json`` type (aiohttp lowercases it and drops the parameters)."""
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    try:
        raw = await request.read()
    except web.RequestPayloadError:  # e.g. a Content-Encoding the body does not decode with
        raise ApiError(400, "request body could not be read (bad encoding)") from None
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "request body must be JSON")
    if not is_json_type(request.content_type):
        raise ApiError(415, "request body must be sent as Content-Type: application/json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "request body is not valid JSON") from None


async def read_form(request: web.Request) -> dict[str, str]:
    """A posted form's text fields (uploads are dropped); a body that is not the form it says it is — a
    multipart body without its boundary, bytes that are not UTF-8, a body cut short — is the caller's 400."""
    try:
        form = await request.post()
    except (ValueError, web.RequestPayloadError):
        raise ApiError(400, "request body could not be read as a form") from None
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def read_object(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    body = await read_json(request, allow_empty=allow_empty)
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body
