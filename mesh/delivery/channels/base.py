"""What every channel type shares: the notice it sends, and the contract a type keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from mesh.store import ApprovalRecord, ChannelRecord, iso

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


def changed_arguments(approval: ApprovalRecord) -> list[str] | None:
    """The names of the arguments an approver changed when approving with edits (None when the call ran as
    asked). Names only, never values: an argument may be a secret, and a channel tells people, not programs
    that need the call."""
    if approval.edited_action is None:
        return None
    before = approval.action.get("arguments") or {}
    after = approval.edited_action.get("arguments") or {}
    return sorted(k for k in before.keys() | after.keys() if k not in before or k not in after or before[k] != after[k])


def approvers(approval: ApprovalRecord) -> list[dict[str, Any]]:
    """Who approved, in order, as ``{by, at, surface}``: the quorum's approvals as recorded, or for a hold one
    person approved, that person (so every approved hold says who let it go ahead the same way)."""
    if approval.approvals:
        return [{"by": a.get("by"), "at": a.get("at"), "surface": a.get("surface")} for a in approval.approvals]
    if approval.status == "approved" and approval.resolved_by:
        return [{"by": approval.resolved_by, "at": iso(approval.resolved_at), "surface": approval.surface}]
    return []


def approver_names(approval: ApprovalRecord) -> list[str]:
    return [str(a["by"]) for a in approvers(approval) if a.get("by")]


class ChannelType(Protocol):
    name: str
    config_schema: dict[str, Any]
    secrets: frozenset[str]
    """Config keys whose values are sealed at rest and masked in every listing."""

    def check(self, config: dict[str, Any], *, signing: bool) -> None:
        """Checks beyond the schema; raises ``ValueError`` naming the field (``field: message``)."""

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> None:
        """Deliver; raise ``DeliveryFailed`` to be tried again, ``Undeliverable`` when it never can be."""
