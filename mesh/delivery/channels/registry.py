"""The channel types a server knows, by name."""

from __future__ import annotations

from mesh.core.kernel import Clock
from mesh.delivery.channels.base import ChannelType
from mesh.delivery.channels.email import EmailChannel
from mesh.delivery.channels.slack import SlackChannel
from mesh.delivery.channels.webhook import WebhookChannel
from mesh.store import Store


def channel_types(store: Store, clock: Clock) -> dict[str, ChannelType]:
    """Built with what sending needs (a Slack channel keeps the message it posted, to update it later)."""
    types: list[ChannelType] = [WebhookChannel(), EmailChannel(), SlackChannel(store, clock)]
    return {t.name: t for t in types}
