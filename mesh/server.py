"""The mesh's HTTP face: A2A JSON-RPC on ``POST /`` and ``POST /send``, and the agent card.

One handler method per A2A operation, chosen from a dispatch table by method name; every failure is a
JSON-RPC error in an HTTP 200 body with the request id echoed (401 only for a missing or bad token).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from mesh import jsonrpc as rpc
from mesh.auth import ANONYMOUS, AuthError, Principal, TokenVerifier
from mesh.card import agent_card
from mesh.models import MessageSendParams, TaskIdParams, TaskQueryParams
from mesh.service import Mesh

log = logging.getLogger("airlock.mesh.http")

MESH_KEY = web.AppKey("mesh", Mesh)
VERIFIER_KEY = web.AppKey("verifier", TokenVerifier | None)
PUBLIC_URL_KEY = web.AppKey("public_url", str)

Handler = Callable[[Mesh, Principal, dict[str, Any]], Awaitable[Any]]
MAX_BODY = 1024 * 1024
M = TypeVar("M", bound=BaseModel)


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _params(model: type[M], params: dict[str, Any]) -> M:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"Invalid params: {where}: {first['msg']}") from None


async def on_message_send(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> Any:
    return await mesh.send_message(principal, _params(MessageSendParams, params))


async def on_get_task(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> Any:
    if isinstance(params.get("historyLength"), int) and params["historyLength"] < 0:
        raise rpc.RpcError(rpc.INVALID_PARAMS, "Invalid params: historyLength must be 0 or more")
    query = _params(TaskQueryParams, params)
    return await mesh.get_task(principal, query.id, query.history_length)


async def on_cancel_task(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> Any:
    return await mesh.cancel_task(principal, _params(TaskIdParams, params).id)


METHODS: dict[str, Handler] = {
    "message/send": on_message_send,
    "tasks/get": on_get_task,
    "tasks/cancel": on_cancel_task,
}

# A2A methods this server knows but does not offer (the card says so): the spec's own error, not -32601.
PUSH_METHODS = frozenset(
    {
        "tasks/pushNotificationConfig/set",
        "tasks/pushNotificationConfig/get",
        "tasks/pushNotificationConfig/list",
        "tasks/pushNotificationConfig/delete",
    }
)
STREAM_METHODS = frozenset({"message/stream", "tasks/resubscribe"})


def _unsupported(method: str) -> rpc.RpcError | None:
    if method in PUSH_METHODS:
        return rpc.RpcError(rpc.PUSH_NOT_SUPPORTED, "Push Notification is not supported")
    if method in STREAM_METHODS:
        return rpc.RpcError(rpc.UNSUPPORTED_OPERATION, f"This operation is not supported: {method} (no streaming)")
    return None


async def handle_rpc(request: web.Request) -> web.Response:
    raw = await request.read()
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
        handler = METHODS.get(method)
        if handler is None:
            raise _unsupported(method) or rpc.RpcError(rpc.METHOD_NOT_FOUND, f"Method not found: {method}")
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


async def handle_health(request: web.Request) -> web.Response:
    ok = await request.app[MESH_KEY].store.ping()
    return _json({"status": "ok" if ok else "unavailable"}, status=200 if ok else 503)


@web.middleware
async def body_limit(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        err = rpc.RpcError(rpc.INVALID_REQUEST, f"Invalid Request: body larger than {MAX_BODY} bytes")
        return _json(rpc.error_response(None, err), status=413)


def create_mesh_app(mesh: Mesh, verifier: TokenVerifier | None, public_url: str) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[body_limit])
    app[MESH_KEY] = mesh
    app[VERIFIER_KEY] = verifier
    app[PUBLIC_URL_KEY] = public_url
    app.router.add_post("/", handle_rpc)
    app.router.add_post("/send", handle_rpc)
    app.router.add_get("/.well-known/agent-card.json", handle_card)
    app.router.add_get("/.well-known/agent.json", handle_card)
    app.router.add_get("/healthz", handle_health)
    return app
