"""Outbound approval notifications to webhook channels, delivered by the outbox worker.

The callback token is derived at send time from the server key — the outbox never stores it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from gateway.keys import MESH
from gateway.signing import signed_link
from mesh.outbox import Builder, Delivery, OutboxWorker, Undeliverable, running
from mesh.service import Mesh
from mesh.store import OutboxRecord, iso
from mesh.tokens import callback_token


def notification_builder(signing_key: bytes | None) -> Builder:
    """Builds approval notifications; with a signing key they also carry one-click approve/deny links."""

    async def build(mesh: Mesh, row: OutboxRecord) -> Delivery:
        data = row.payload
        approval, channel = await mesh.store.approval_and_channel(data["approval_id"], data["tenant"], data["channel"])
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
        if signing_key is not None and approval.kind == "approval":  # approve/deny means nothing to a form
            exp = int(approval.expires_at)
            body["approve_url"] = signed_link(mesh.config.gateway_url, signing_key, approval.id, "approve", exp)
            body["deny_url"] = signed_link(mesh.config.gateway_url, signing_key, approval.id, "deny", exp)
        return Delivery(url=channel.config["url"], body=body)

    return build


def notifier_ctx(signing_key: bytes | None = None) -> Callable[[web.Application], AsyncIterator[None]]:
    """``cleanup_ctx``: deliver approval notifications for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        builders = {"notify": notification_builder(signing_key)}
        worker = OutboxWorker(app[MESH], builders, wake_on=frozenset({"approval.created"}))
        async with running(worker):
            yield

    return ctx
