"""Outbound notifications: the worker that drains the outbox to webhook channels.

Rows are written in the same transaction as the hold, so a crash between commit and send loses nothing:
the next worker run (in this process or another) sends it. The callback token is derived here, at send
time, from the server key — the outbox never stores it. Neither the token nor the payload is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web

from gateway.keys import MESH
from mesh.service import Mesh
from mesh.store import OutboxRecord, iso
from mesh.tokens import callback_token

log = logging.getLogger("airlock.notify")

MAX_ATTEMPTS = 12
POLL_S = 0.5
NEVER = 10 * 365 * 86400.0


def backoff(attempts: int) -> float:
    return float(min(2**attempts, 900))


async def build_payload(mesh: Mesh, row: OutboxRecord) -> tuple[str, dict[str, Any]] | None:
    """The channel URL and body for one row, or None when the approval or channel is gone."""
    data = row.payload
    approval = await mesh.store.get_approval(data["approval_id"])
    channel = await mesh.store.get_channel(data["tenant"], data["channel"])
    if approval is None or channel is None:
        return None
    body = {
        "event": data["event"],
        "message_id": approval.task_id,
        "approval_id": approval.id,
        "tenant_id": approval.tenant,
        "session_id": approval.session_id,
        "policy": approval.policy,
        "tool": approval.tool,
        "user_input": approval.user_input,
        "form": approval.form,
        "expires_at": iso(approval.expires_at),
        "resolve_url": f"{mesh.config.gateway_url}/messages/{approval.task_id}/resolve",
        "callback_token": callback_token(mesh.config.callback_key, approval.id),
    }
    return channel.config["url"], body


class Notifier:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        self.wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, row: OutboxRecord) -> None:
        assert self._session is not None
        now = self.mesh.clock()
        built = await build_payload(self.mesh, row)
        if built is None:
            await self.mesh.store.finish_outbox(
                row.id, ok=False, now=now, error="approval or channel gone", retry_at=now + NEVER
            )
            return
        url, body = built
        try:
            async with self._session.post(url, json=body) as resp:
                ok = 200 <= resp.status < 300
                error = None if ok else f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, error = False, type(exc).__name__
        attempts = row.attempts + 1
        retry = now + (NEVER if attempts >= MAX_ATTEMPTS else backoff(attempts))
        await self.mesh.store.finish_outbox(row.id, ok=ok, now=self.mesh.clock(), error=error, retry_at=retry)
        if not ok:
            log.warning("notification %s failed (attempt %d): %s", row.id, attempts, error)

    async def run_once(self) -> int:
        rows = await self.mesh.store.claim_outbox(self.mesh.clock())
        await asyncio.gather(*(self.deliver(r) for r in rows))
        return len(rows)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as self._session, self.mesh.events.subscribe() as q:
            waker = asyncio.create_task(self._wake_on_events(q))
            try:
                while True:
                    try:
                        await self.run_once()
                    except Exception:
                        log.exception("outbox run failed")
                    self.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), POLL_S)
            finally:
                waker.cancel()

    async def _wake_on_events(self, queue: asyncio.Queue[Any]) -> None:
        while True:
            event = await queue.get()
            if event.kind == "approval.created":
                self.wake.set()


async def notifier_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: run the outbox worker for the app's lifetime."""
    task = asyncio.create_task(Notifier(app[MESH]).run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
