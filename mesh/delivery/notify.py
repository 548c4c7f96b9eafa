"""Approval notifications: one outbox row per channel and event, sent by the channel's type.

A row names the approval, the channel and the event, nothing more: what is sent is read and built when it
is sent (the approval as it is then, secrets unsealed then, the callback token derived then), so the outbox
holds no secret and a retry never sends a stale or a leaked credential.
"""

from __future__ import annotations

from dataclasses import replace

import aiohttp

from mesh.core.config import MeshConfig
from mesh.core.events import EventBus
from mesh.core.kernel import Clock
from mesh.credentials import callback_token, signed_link, unseal
from mesh.delivery.channels.base import ChannelType, Links, Notice
from mesh.delivery.channels.registry import channel_types
from mesh.delivery.outbox import DeliveryFailed, OutboxWorker, Sender, Undeliverable
from mesh.store import PENDING, ApprovalRecord, ChannelRecord, OutboxRecord, Store

KIND = "notify"
WAKE_ON = frozenset(
    {"approval.created", "approval.resolved", "approval.expired", "approval.progress", "approval.escalated"}
)


def links_of(approval: ApprovalRecord, config: MeshConfig) -> Links:
    """Where a person acts on ``approval``; one-click links only for a yes/no that still waits."""
    base = config.gateway_url
    links = Links(
        resolve_url=f"{base}/messages/{approval.task_id}/resolve",
        callback_token=callback_token(config.callback_key, approval.id),
        dashboard_url=f"{base}/dashboard/approvals/{approval.id}",
    )
    key = config.signing_key
    if key is not None and approval.kind == "approval" and approval.status == PENDING:
        exp = int(approval.expires_at)
        links = replace(
            links,
            approve_url=signed_link(base, key, approval.id, "approve", exp),
            deny_url=signed_link(base, key, approval.id, "deny", exp),
        )
    return links


def unsealed(channel: ChannelRecord, secrets: frozenset[str], key: bytes) -> ChannelRecord:
    config = dict(channel.config)
    for name in secrets & config.keys():
        if isinstance(config[name], str):
            config[name] = unseal(key, config[name])
    return replace(channel, config=config)


def notification_sender(store: Store, config: MeshConfig, types: dict[str, ChannelType]) -> Sender:
    async def send(row: OutboxRecord, http: aiohttp.ClientSession) -> None:
        data = row.payload
        approval, channel = await store.approval_and_channel(data["approval_id"], data["tenant"], data["channel"])
        if approval is None:
            # approvals are never deleted: a row claimed in the same commit group as its hold can be read
            # before that group is visible to other connections, so it is tried again, not given up
            raise DeliveryFailed("approval not visible yet")
        if channel is None:
            raise Undeliverable("channel gone")
        kind = types.get(channel.type)
        if kind is None:
            raise Undeliverable(f"no channel type {channel.type!r}")
        try:
            opened = unsealed(channel, kind.secrets, config.callback_key)
        except ValueError as exc:
            raise Undeliverable(str(exc)) from None
        notice = Notice(
            event=data["event"],
            delivery_id=f"msg_{row.id}",
            at=float(data.get("at") or approval.updated_at),
            approval=approval,
            channel=opened,
            links=links_of(approval, config),
        )
        await kind.send(notice, http)

    return send


def notification_worker(store: Store, clock: Clock, events: EventBus, config: MeshConfig) -> OutboxWorker:
    sender = notification_sender(store, config, channel_types(store, clock))
    return OutboxWorker(store, clock, events, {KIND: sender}, wake_on=WAKE_ON)
