"""Baseline (the floor): a bare aiohttp handler that parses the same JSON-RPC ``message/send`` and answers
a completed Task. No auth, no policies, no store. ``python -m bench.floor_server --port N``."""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime

import orjson
from aiohttp import web


def _error(request_id: object, code: int, message: str) -> web.Response:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def handle(request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(None, -32700, "Parse error")
    if not isinstance(body, dict):
        return _error(None, -32600, "Invalid Request")
    request_id = body.get("id")
    if body.get("jsonrpc") != "2.0" or body.get("method") != "message/send":
        return _error(request_id, -32601, "Method not found")
    message = (body.get("params") or {}).get("message")
    if not isinstance(message, dict) or not isinstance(message.get("parts"), list):
        return _error(request_id, -32602, "Invalid params")
    task_id, context_id = str(uuid.uuid4()), message.get("contextId") or str(uuid.uuid4())
    now = datetime.fromtimestamp(time.time(), UTC).isoformat().replace("+00:00", "Z")
    task = {
        "kind": "task",
        "id": task_id,
        "contextId": context_id,
        "status": {
            "state": "completed",
            "timestamp": now,
            "message": {
                "kind": "message",
                "role": "agent",
                "messageId": str(uuid.uuid4()),
                "taskId": task_id,
                "contextId": context_id,
                "parts": [{"kind": "text", "text": "ok"}],
            },
        },
        "history": [{**message, "taskId": task_id, "contextId": context_id}],
    }
    return web.Response(
        body=orjson.dumps({"jsonrpc": "2.0", "id": request_id, "result": task}), content_type="application/json"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/", handle)
    app.router.add_get("/healthz", lambda _r: web.json_response({"status": "ok"}))
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
