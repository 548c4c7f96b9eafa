"""JSON-RPC 2.0 envelopes and the A2A error codes.

Handlers raise :class:`RpcError`; the server turns it into an HTTP 200 body with the request id echoed,
which is what A2A clients and the conformance kit expect.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHENTICATED = -32000
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005
INVALID_AGENT_RESPONSE = -32006
EXTENDED_CARD_NOT_CONFIGURED = -32007
# Airlock's own, in the range JSON-RPC leaves to the server (-32000 to -32099), clear of A2A's
RATE_LIMITED = -32029  # HTTP 429: too many requests from this caller; data carries retryAfter (seconds)
QUEUE_FULL = -32053  # the tenant's approval queue is full (--max-pending): the call was not held

Id = str | int | None
M = TypeVar("M", bound=BaseModel)


class RpcError(Exception):
    """An error that becomes a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def task_not_found(task_id: str) -> RpcError:
    return RpcError(TASK_NOT_FOUND, f"Task not found: {task_id}")


def error_response(request_id: Id, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.to_dict()}


def result_response(request_id: Id, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def parse_envelope(body: Any) -> tuple[Id, str, dict[str, Any]]:
    """Check a decoded request object; return (id, method, params) or raise RpcError.

    The id is echoed even when the rest is invalid, so the caller can match the error to its request.
    """
    if isinstance(body, list):
        raise RpcError(INVALID_REQUEST, "Invalid Request: batches are not supported; send one request per call")
    if not isinstance(body, dict):
        raise RpcError(INVALID_REQUEST, "Invalid Request: the body must be a JSON object")
    request_id = body.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
        raise RpcError(INVALID_REQUEST, "Invalid Request: id must be a string, a number or null")
    if body.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"')
    method = body.get("method")
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, 'Invalid Request: "method" must be a non-empty string')
    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, "Invalid params: params must be an object")
    return request_id, method, params


MAX_DEPTH = 64
"""How deeply a request may nest objects and arrays. A2A messages need a handful of levels; a deeper body
is refused before anything reads it, so no validator or agent recurses through it."""


def too_deep(body: Any, limit: int = MAX_DEPTH, raw: bytes | None = None) -> bool:
    """True when ``body`` nests objects or arrays more than ``limit`` levels deep (checked without recursion).

    ``raw``, the JSON text ``body`` was parsed from, settles most bodies without a walk: every level opens
    with a ``{`` or a ``[``, so a text holding no more of them than ``limit`` cannot nest deeper."""
    if raw is not None and raw.count(b"{") + raw.count(b"[") <= limit:
        return False
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))
    return False


def safe_id(body: Any) -> Id:
    """The request id to echo when the envelope itself is broken (null unless usable)."""
    if isinstance(body, dict):
        rid = body.get("id")
        if isinstance(rid, str | int) and not isinstance(rid, bool):
            return rid
    return None


def parse_params(model: type[M], params: dict[str, Any]) -> M:
    """Validate params into a wire model; the first problem becomes -32602 naming where it is."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise RpcError(INVALID_PARAMS, f"Invalid params: {where}: {first['msg']}") from None
