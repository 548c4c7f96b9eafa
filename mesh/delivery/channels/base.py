"""What every channel type shares: the notice it sends, and the contract a type keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from mesh.store import ApprovalRecord, ChannelRecord

REQUESTED = "approval.requested"
INPUT_REQUESTED = "input.requested"
RESOLVED = "approval.resolved"
EXPIRED = "approval.expired"
PROGRESS = "approval.progress"  # a hold that needs several approvals got one more
ESCALATED = "approval.escalated"  # a hold still pending at its policy's escalate_after
EVENTS = (REQUESTED, RESOLVED, EXPIRED, INPUT_REQUESTED, PROGRESS, ESCALATED)
"""Every event a channel can take. A channel takes all of them unless its ``events`` names some; input
requests reach only the channels that opted in (``config.input_requests``)."""


@dataclass(frozen=True, slots=True)
class Links:
    """Where a person acts on an approval. The callback token and the signed links are credentials: a
    channel hands them only to a receiver that must be able to resolve (a webhook, a mail to approvers)."""

    resolve_url: str
    callback_token: str
    dashboard_url: str
    approve_url: str | None = None
    deny_url: str | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """One delivery: ``delivery_id`` is the same on every retry of it, so a receiver can drop duplicates."""

    event: str
    delivery_id: str
    at: float
    approval: ApprovalRecord
    channel: ChannelRecord  # its config with secrets unsealed
    links: Links


class ChannelType(Protocol):
    name: str
    config_schema: dict[str, Any]
    secrets: frozenset[str]
    """Config keys whose values are sealed at rest and masked in every listing."""

    def check(self, config: dict[str, Any], *, signing: bool) -> None:
        """Checks beyond the schema; raises ``ValueError`` naming the field (``field: message``)."""

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> None:
        """Deliver; raise ``DeliveryFailed`` to be tried again, ``Undeliverable`` when it never can be."""
