"""A fake Slack Web API: a real aiohttp server on loopback that records every call and answers as Slack does.

``api_base`` is what a Slack channel's config points at. Each call is kept with its method name, its
arguments (JSON or form-encoded), its ``Authorization`` header and its raw body. ``/response/<id>`` stands in
for a click's ``response_url`` and keeps what is posted to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.test_utils import TestServer

CHANNEL_ID = "C0APPROVALS"
BOT_TOKEN = "xoxb-1234567890-0987654321-FakeBotTokenValue"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    auth: str | None
    raw: bytes


@dataclass
class Response:
    """What was posted to a ``response_url``."""

    id: str
    body: dict[str, Any]


class FakeSlack:
    def __init__(self, token: str = BOT_TOKEN, channel_id: str = CHANNEL_ID) -> None:
        self.token = token
        self.channel_id = channel_id
        self.calls: list[Call] = []
        self.responses: list[Response] = []
        self.errors: dict[str, str] = {}  # method → the error Slack answers it with (ok: false)
        self.server: TestServer | None = None
        self._ts = itertools.count(100, 100)

    # -------------------------------------------------------------------------- the server

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeSlack]:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/response/{id}", self._response)
        self.server = TestServer(app, host="127.0.0.1", port=0)
        await self.server.start_server()
        try:
            yield self
        finally:
            await self.server.close()

    @property
    def api_base(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/api/"))

    def response_url(self, response_id: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(f"/response/{response_id}"))

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        if request.content_type == "application/json":
            args = json.loads(raw) if raw else {}
        else:
            args = dict(parse_qsl(raw.decode()))
        auth = request.headers.get("Authorization")
        self.calls.append(Call(method=method, args=args, auth=auth, raw=raw))
        if auth != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method in self.errors:
            return web.json_response({"ok": False, "error": self.errors[method]})
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            return web.json_response({"ok": True, "channel": self.channel_id, "ts": ts, "message": {"ts": ts}})
        if method == "chat.update":
            return web.json_response({"ok": True, "channel": args.get("channel"), "ts": args.get("ts")})
        if method == "chat.postEphemeral":
            return web.json_response({"ok": True, "message_ts": f"{time.time():.6f}"})
        if method == "views.open":
            return web.json_response({"ok": True, "view": {"id": "V0MODAL", **(args.get("view") or {})}})
        return web.json_response({"ok": False, "error": "unknown_method"})

    async def _response(self, request: web.Request) -> web.Response:
        self.responses.append(Response(id=request.match_info["id"], body=await request.json()))
        return web.json_response({"ok": True})

    # -------------------------------------------------------------------------- reading what happened

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def replies(self, response_id: str) -> list[dict[str, Any]]:
        return [r.body for r in self.responses if r.id == response_id]

    async def wait(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"the fake Slack did not see it in time; calls: {[c.method for c in self.calls]}")
            await asyncio.sleep(0.02)

    async def wait_for(self, method: str, count: int = 1, timeout_s: float = 10.0) -> list[Call]:
        await self.wait(lambda: len(self.of(method)) >= count, timeout_s)
        return self.of(method)

    async def wait_reply(self, response_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        await self.wait(lambda: bool(self.replies(response_id)), timeout_s)
        return self.replies(response_id)[0]
