"""Helpers for the gateway tests: a clock the test moves, a real webhook receiver, raw database bytes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.auth import issue_token
from tests.conftest import SECRET, Airlock, listening

STRUCTURED_FIELDS = [
    {"id": "reason", "type": "text", "required": True},
    {"id": "password", "type": "password", "required": True},
    {"id": "count", "type": "number"},
    {"id": "ok", "type": "checkbox"},
    {"id": "env", "type": "select", "options": [{"value": "staging", "label": "Staging"}]},
]


class Clock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def token(sub: str = "alice", *roles: str, tenant: str = "default", ttl_s: int = 3600, secret: bytes = SECRET) -> str:
    return issue_token(secret, sub, tenant=tenant, roles=list(roles) or ["approver", "admin"], ttl_s=ttl_s)


def auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def db_bytes(home: Path) -> bytes:
    """Every byte of the store's files on disk (main file, WAL and shared memory)."""
    data = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = home / f"airlock.db{suffix}"
        if path.exists():
            data += path.read_bytes()
    return data


def assert_error(status: int, body: Any, expected: int, *, field: str | None = None) -> dict[str, Any]:
    """A REST error: the right status and ``{"error": {"code", "message"}}`` (and the field when named)."""
    assert status == expected, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err.get("code"), str) and err["code"], body
    assert isinstance(err.get("message"), str) and err["message"], body
    if field is not None:
        assert err.get("field") == field, body
    return err


async def error_of(resp: Any, expected: int, *, field: str | None = None) -> dict[str, Any]:
    assert resp.content_type == "application/json", await resp.text()
    return assert_error(resp.status, await resp.json(), expected, field=field)


async def pending(airlock: Airlock, headers: dict[str, str], **body: Any) -> tuple[int, Any]:
    resp = await airlock.gateway.post("/messages/pending", json=body, headers=headers)
    return resp.status, await resp.json()


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class Receiver:
    """A real HTTP endpoint on loopback that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[tuple[bytes, dict[str, str]]] = []  # each accepted body as sent, with its headers
        self.calls = 0
        self.fail_first = 0  # answer this many first POSTs with 503
        self.server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        raw = await request.read()
        body = json.loads(raw)
        if self.calls <= self.fail_first:
            return web.json_response({"ok": False}, status=503)
        self.bodies.append(body)
        self.raw.append((raw, dict(request.headers)))
        return web.json_response({"ok": True})

    async def wait(self, count: int = 1, timeout_s: float = 5.0) -> list[dict[str, Any]]:
        await wait_for(lambda: len(self.bodies) >= count, timeout_s)
        return self.bodies


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with listening(Receiver()) as rec:
        yield rec


@pytest.fixture
async def control() -> AsyncIterator[Receiver]:
    """A second receiver, for a channel that should be told: a test waits for it instead of sleeping."""
    async with listening(Receiver()) as rec:
        yield rec
