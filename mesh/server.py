"""The mesh's HTTP face: A2A JSON-RPC on ``POST /`` and ``POST /send``, and the agent card.

One handler method per A2A operation, chosen from a dispatch table by method name; every failure is a
JSON-RPC error in an HTTP 200 body with the request id echoed (401 only for a missing or bad token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from mesh import jsonrpc as rpc
from mesh import metrics
from mesh.auth import ANONYMOUS, AuthError, Principal, TokenVerifier
from mesh.card import agent_card
from mesh.models import MessageSendParams, TaskIdParams, TaskQueryParams
from mesh.push import delivery_ctx
from mesh.service import Mesh

log = logging.getLogger("airlock.mesh.http")

MESH_KEY = web.AppKey("mesh", Mesh)
VERIFIER_KEY = web.AppKey("verifier", TokenVerifier | None)
PUBLIC_URL_KEY = web.AppKey("public_url", str)

Handler = Callable[[Mesh, Principal, dict[str, Any]], Awaitable[Any]]
StreamHandler = Callable[[Mesh, Principal, dict[str, Any]], AsyncIterator[Any]]
MAX_BODY = 1024 * 1024
KEEPALIVE_S = 15.0


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def on_message_send(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> Any:
    return await mesh.send_message(principal, rpc.parse_params(MessageSendParams, params))


async def on_get_task(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> Any:
    query = rpc.parse_params(TaskQueryParams, params)
    return await mesh.get_task(principal, query.id, query.history_length)


async def on_cancel_task(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> Any:
    return await mesh.cancel_task(principal, rpc.parse_params(TaskIdParams, params).id)


METHODS: dict[str, Handler] = {
    "message/send": on_message_send,
    "tasks/get": on_get_task,
    "tasks/cancel": on_cancel_task,
}
STREAM_METHODS: dict[str, StreamHandler] = {}
"""Methods answered as Server-Sent Events: the handler yields JSON-RPC results, one per ``data:`` line."""


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def stream_response(request: web.Request, request_id: rpc.Id, events: AsyncIterator[Any]) -> web.StreamResponse:
    """Send each result as one SSE event, then close. An error (before or during) is the last event.

    A client that goes away stops only its stream, never the task (the handler runs the work apart).
    While nothing happens a comment line goes out every ``KEEPALIVE_S``, so a stream whose client left
    (a held task can wait for hours) notices and ends instead of lingering.
    """
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
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


async def handle_rpc(request: web.Request) -> web.StreamResponse:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        err = rpc.RpcError(rpc.INVALID_REQUEST, f"Invalid Request: body larger than {MAX_BODY} bytes")
        return _json(rpc.error_response(None, err), status=413)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _json(rpc.error_response(None, rpc.RpcError(rpc.PARSE_ERROR, "Parse error: invalid JSON")))
    request_id = rpc.safe_id(body)
    verifier = request.app[VERIFIER_KEY]
    principal = ANONYMOUS
    if verifier is not None:
        try:
            principal = verifier.verify_header(request.headers.get("Authorization"))
        except AuthError as exc:
            err = rpc.RpcError(rpc.UNAUTHENTICATED, f"Unauthorized: {exc}")
            return _json(rpc.error_response(request_id, err), status=401)
    try:
        request_id, method, params = rpc.parse_envelope(body)
        streamer = STREAM_METHODS.get(method)
        if streamer is not None:
            return await stream_response(request, request_id, streamer(request.app[MESH_KEY], principal, params))
        handler = METHODS.get(method)
        if handler is None:
            raise rpc.RpcError(rpc.METHOD_NOT_FOUND, f"Method not found: {method}")
        result = await handler(request.app[MESH_KEY], principal, params)
    except rpc.RpcError as exc:
        return _json(rpc.error_response(request_id, exc))
    except Exception:
        log.exception("internal error in JSON-RPC request")
        return _json(rpc.error_response(request_id, rpc.RpcError(rpc.INTERNAL_ERROR, "Internal error")))
    return _json(rpc.result_response(request_id, result))


async def handle_card(request: web.Request) -> web.Response:
    mesh = request.app[MESH_KEY]
    return _json(agent_card(mesh, request.app[PUBLIC_URL_KEY], auth=request.app[VERIFIER_KEY] is not None))


async def handle_metrics(request: web.Request) -> web.Response:
    mesh = request.app[MESH_KEY]
    return await metrics.render(mesh.store, mesh.clock())


async def handle_health(request: web.Request) -> web.Response:
    ok = await request.app[MESH_KEY].store.ping()
    return _json({"status": "ok" if ok else "unavailable"}, status=200 if ok else 503)


def create_mesh_app(mesh: Mesh, verifier: TokenVerifier | None, public_url: str) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[metrics.latency_middleware("mesh")])
    app[MESH_KEY] = mesh
    app[VERIFIER_KEY] = verifier
    app[PUBLIC_URL_KEY] = public_url
    app.router.add_post("/", handle_rpc)
    app.router.add_post("/send", handle_rpc)
    app.router.add_get("/.well-known/agent-card.json", handle_card)
    app.router.add_get("/.well-known/agent.json", handle_card)
    app.router.add_get("/healthz", handle_health)
    app.router.add_get("/metrics", handle_metrics)
    app.cleanup_ctx.append(delivery_ctx(mesh))
    return app


def _register_operations() -> None:
    """Operations beyond the core three live in modules of their own, each with its tables."""
    from mesh import push, streaming, v1

    for module in (streaming, push, v1):
        METHODS.update(module.METHODS)
        STREAM_METHODS.update(module.STREAM_METHODS)


_register_operations()
