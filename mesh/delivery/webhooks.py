"""Approval notifications to webhook channels, delivered by the outbox worker.

The callback token is derived at send time from the server key — the outbox never stores it.
"""

from __future__ import annotations

from mesh.core.config import MeshConfig
from mesh.core.events import EventBus
from mesh.core.kernel import Clock
from mesh.credentials import callback_token, signed_link
from mesh.delivery.outbox import Builder, Delivery, OutboxWorker, Undeliverable
from mesh.store import OutboxRecord, Store, iso

KIND = "notify"


def notification_builder(store: Store, config: MeshConfig, signing_key: bytes | None) -> Builder:
    """Builds approval notifications; with a signing key they also carry one-click approve/deny links."""

    async def build(row: OutboxRecord) -> Delivery:
        data = row.payload
        approval, channel = await store.approval_and_channel(data["approval_id"], data["tenant"], data["channel"])
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
            "resolve_url": f"{config.gateway_url}/messages/{approval.task_id}/resolve",
            "callback_token": callback_token(config.callback_key, approval.id),
        }
        if signing_key is not None and approval.kind == "approval":  # approve/deny means nothing to a form
            exp = int(approval.expires_at)
            body["approve_url"] = signed_link(config.gateway_url, signing_key, approval.id, "approve", exp)
            body["deny_url"] = signed_link(config.gateway_url, signing_key, approval.id, "deny", exp)
        return Delivery(url=channel.config["url"], body=body)

    return build


def notification_worker(
    store: Store, clock: Clock, events: EventBus, config: MeshConfig, signing_key: bytes | None
) -> OutboxWorker:
    builders = {KIND: notification_builder(store, config, signing_key)}
    return OutboxWorker(store, clock, events, builders, wake_on=frozenset({"approval.created"}))
