"""Outbound approval notifications to webhook channels, delivered by the outbox worker.

The callback token is derived at send time from the server key — the outbox never stores it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway.keys import MESH
from mesh.outbox import Delivery, OutboxWorker, Undeliverable, running
from mesh.service import Mesh
from mesh.store import OutboxRecord, iso
from mesh.tokens import callback_token


async def build_notification(mesh: Mesh, row: OutboxRecord) -> Delivery:
    data = row.payload
    approval = await mesh.store.get_approval(data["approval_id"])
    channel = await mesh.store.get_channel(data["tenant"], data["channel"])
    if approval is None or channel is None:
        raise Undeliverable("approval or channel gone")
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
    return Delivery(url=channel.config["url"], body=body)


async def notifier_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: deliver approval notifications for the app's lifetime."""
    worker = OutboxWorker(app[MESH], {"notify": build_notification}, wake_on=frozenset({"approval.created"}))
    async with running(worker):
        yield
