"""The mesh's HTTP face: A2A JSON-RPC on ``POST /`` and ``POST /send``, and the agent card.

One handler method per A2A operation, chosen from the static table of :mod:`mesh.a2a.dispatch`; every
failure is a JSON-RPC error in an HTTP 200 body with the request id echoed (401 only for a missing or
bad token). Anything else on this port (an unknown path, a method a route does not take) is answered
as JSON too, never as plain text.

Before any of that, :mod:`mesh.limits` applies: a caller past ``--rate-limit`` is answered HTTP ``429`` with
``Retry-After`` and a JSON-RPC error (``-32029``, id null: the body is not read), and a declared
``Content-Length`` over the limit is answered ``413`` before the body is read. A client that goes away
in the middle of its body is logged at debug level, not as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from a2ui import EXTENSION_URI, HEADER_NAMES, capabilities_activate, requested_in_headers
from mesh import metrics
from mesh.a2a.card import agent_card
from mesh.a2a.dispatch import Dispatch, dispatch_table
from mesh.a2a.handler import RequestHandler
from mesh.auth import ANONYMOUS, AuthError, TokenVerifier
from mesh.delivery.outbox import worker_ctx
from mesh.delivery.push import push_worker
from mesh.limits import VERIFIED, RateLimiter, RequestLimits, limits_middleware
from mesh.tasks.service import REQUESTED_EXTENSIONS
from mesh.wire import jsonrpc as rpc
from mesh.wiring import MESH, Mesh

log = logging.getLogger("airlock.mesh.http")

VERIFIER_KEY = web.AppKey("verifier", TokenVerifier | None)
PUBLIC_URL_KEY = web.AppKey("public_url", str)
DISPATCH = web.AppKey("dispatch", Dispatch)

MAX_BODY = 1024 * 1024
KEEPALIVE_S = 15.0


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def stream_response(
    request: web.Request, request_id: rpc.Id, events: AsyncIterator[Any], headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Send each result as one SSE event, then close. An error (before or during) is the last event.

    A client that goes away stops only its stream, never the task (the handler runs the work apart).
    While nothing happens a comment line goes out every ``KEEPALIVE_S``, so a stream whose client left
    (a held task can wait for hours) notices and ends instead of lingering.
    """
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **(headers or {})}
    )
    await resp.prepare(request)
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for result in events:
                await queue.put(("result", result))
        except rpc.RpcError as exc:
            await queue.put(("error", exc))
        except Exception:
            log.exception("internal error in a JSON-RPC stream")
            await queue.put(("error", rpc.RpcError(rpc.INTERNAL_ERROR, "Internal error")))
        await queue.put(("end", None))

    producer = asyncio.create_task(pump())
    try:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):  # wait_for may swallow a cancel (Python 3.11)
                    kind, item = await queue.get()
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if kind == "end":
                break
            if kind == "error":
                await resp.write(_sse(rpc.error_response(request_id, item)))
            else:
                await resp.write(_sse(rpc.result_response(request_id, item)))
        await resp.write_eof()
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
    return resp


def activated_extensions(request: web.Request, params: object) -> frozenset[str]:
    """The extensions this request activates, of those the mesh supports (only A2UI v0.9): named in the
    activation header (either spelling), or, the A2UI extension's own way, by ``a2uiClientCapabilities``
    in the message's (or the request's) metadata."""
    header = [value for name in HEADER_NAMES for value in request.headers.getall(name, [])]
    if requested_in_headers(header):
        return frozenset({EXTENSION_URI})
    if isinstance(params, dict):
        message = params.get("message")
        if capabilities_activate(params.get("metadata")) or (
            isinstance(message, dict) and capabilities_activate(message.get("metadata"))
        ):
            return frozenset({EXTENSION_URI})
    return frozenset()


def extension_headers(activated: frozenset[str]) -> dict[str, str]:
    """The response names the extensions it used, under both header spellings (v1.0 and v0.3)."""
    if not activated:
        return {}
    value = ", ".join(sorted(activated))
    return {name: value for name in HEADER_NAMES}


async def handle_rpc(request: web.Request) -> web.StreamResponse:
    dispatch = request.app[DISPATCH]
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return too_large(request)
    media_type = request.content_type  # aiohttp lowercases it and drops the parameters
    if media_type != "application/json" and not (media_type.startswith("application/") and media_type[-5:] == "+json"):
        err = rpc.RpcError(rpc.INVALID_REQUEST, "Invalid Request: Content-Type must be application/json")
        return _json(rpc.error_response(None, err))
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _json(rpc.error_response(None, rpc.RpcError(rpc.PARSE_ERROR, "Parse error: invalid JSON")))
    request_id = rpc.safe_id(body)
    if rpc.too_deep(body, raw=raw):
        err = rpc.RpcError(rpc.INVALID_PARAMS, f"Invalid params: nested deeper than {rpc.MAX_DEPTH} levels")
        return _json(rpc.error_response(request_id, err))
    verifier = request.app[VERIFIER_KEY]
    principal = ANONYMOUS
    if verifier is not None:
        try:
            principal = request.get(VERIFIED) or verifier.verify_header(request.headers.get("Authorization"))
        except AuthError as exc:
            err = rpc.RpcError(rpc.UNAUTHENTICATED, f"Unauthorized: {exc}")
            return _json(rpc.error_response(request_id, err), status=401)
    activated = frozenset[str]()
    token = None
    try:
        request_id, method, params = rpc.parse_envelope(body)
        activated = activated_extensions(request, params)
        token = REQUESTED_EXTENSIONS.set(activated)
        streamer = dispatch.streams.get(method)
        if streamer is not None:
            return await stream_response(
                request, request_id, streamer(principal, params), extension_headers(activated)
            )
        handler = dispatch.methods.get(method)
        if handler is None:
            raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"Method not found: {method}")
        result = await handler(principal, params)
    except rpc.RpcError as exc:
        return _json(rpc.error_response(request_id, exc))
    except Exception:
        log.exception("internal error in JSON-RPC request")
        return _json(rpc.error_response(request_id, rpc.RpcError(rpc.INTERNAL_ERROR, "Internal error")))
    finally:
        if token is not None:
            REQUESTED_EXTENSIONS.reset(token)
    response = _json(rpc.result_response(request_id, result))
    response.headers.update(extension_headers(activated))
    return response


async def handle_card(request: web.Request) -> web.Response:
    mesh = request.app[MESH]
    return _json(agent_card(mesh.agents, request.app[PUBLIC_URL_KEY], auth=request.app[VERIFIER_KEY] is not None))


async def handle_metrics(request: web.Request) -> web.Response:
    mesh = request.app[MESH]
    return await metrics.render(mesh.store, mesh.clock())


async def handle_health(request: web.Request) -> web.Response:
    ok = await request.app[MESH].store.ping()
    return _json({"status": "ok" if ok else "unavailable"}, status=200 if ok else 503)


def too_large(request: web.Request) -> web.Response:
    err = rpc.RpcError(rpc.INVALID_REQUEST, f"Invalid Request: body larger than {MAX_BODY} bytes")
    return _json(rpc.error_response(None, err), status=413)


def too_many(request: web.Request, retry_after: int) -> web.Response:
    """HTTP 429 with ``Retry-After``, and a JSON-RPC error a client can read (id null: the body is unread)."""
    err = rpc.RpcError(
        rpc.RATE_LIMITED,
        f"Too many requests: retry after {retry_after}s",
        {"status": 429, "retryAfter": retry_after},
    )
    response = _json(rpc.error_response(None, err), status=429)
    response.headers["Retry-After"] = str(retry_after)
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    """An HTTP error outside JSON-RPC (no such path, a method the path does not take) as a JSON body."""
    try:
        return await handler(request)
    except ConnectionResetError:  # the client went away mid-request (e.g. mid-body): nobody to answer
        log.debug("client went away during %s %s", request.method, request.path)
        return web.Response(status=400)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status, "error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        body = {"error": {"code": code, "message": exc.reason or "error"}}
        return web.Response(
            body=orjson.dumps(body), status=exc.status, content_type="application/json", headers=headers
        )


def create_mesh_app(mesh: Mesh, verifier: TokenVerifier | None, public_url: str) -> web.Application:
    rate = mesh.config.rate_limit
    limits = RequestLimits(max_body=MAX_BODY, rate=RateLimiter(rate) if rate is not None else None)
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[
            limits_middleware(limits, verifier, too_large=too_large, too_many=too_many),
            json_errors,
            metrics.latency_middleware("mesh"),
        ],
    )
    app[MESH] = mesh
    app[VERIFIER_KEY] = verifier
    app[PUBLIC_URL_KEY] = public_url
    app[DISPATCH] = dispatch_table(RequestHandler(mesh.tasks, mesh.pushes, mesh.store, mesh.events))
    app.router.add_post("/", handle_rpc)
    app.router.add_post("/send", handle_rpc)
    app.router.add_get("/.well-known/agent-card.json", handle_card)
    app.router.add_get("/.well-known/agent.json", handle_card)
    app.router.add_get("/healthz", handle_health)
    app.router.add_get("/metrics", handle_metrics)
    app.cleanup_ctx.append(worker_ctx(lambda: push_worker(mesh.store, mesh.clock, mesh.events, mesh.config)))
    app.on_shutdown.append(_end_streams)
    return app


async def _end_streams(app: web.Application) -> None:
    """Streams (message/stream, tasks/resubscribe) end when the server shuts down, instead of keeping it up
    until the shutdown's deadline: their clients resubscribe to the next server."""
    app[MESH].events.close()
