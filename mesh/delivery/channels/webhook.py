"""Webhook channels: a JSON POST per event, signed per the Standard Webhooks specification.

The receiver checks ``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 over ``id.timestamp.body`` under the
channel's ``whsec_`` secret) with any Standard Webhooks library; ``webhook-id`` is the delivery's id, the
same on every retry, so a receiver drops what it has seen. The body of ``approval.requested`` carries the
callback token and the resolve URL (and signed approve/deny links when the server signs links): the
receiver is trusted to resolve, which is what a webhook channel is for. No other event carries a credential:
``approval.progress`` and ``approval.escalated`` tell where a hold stands (an escalation's receiver acts on
it in the dashboard or over the API with its own credentials), ``approval.resolved`` how it ended — who
approved, a denial's reason, and the names (never the values) of the arguments an approver edited.
"""

from __future__ import annotations

import base64
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from standardwebhooks.webhooks import Webhook

from a2ui import WHITESPACE
from mesh.delivery.channels.base import (
    ESCALATED,
    EXPIRED,
    INPUT_REQUESTED,
    PROGRESS,
    REQUESTED,
    RESOLVED,
    Notice,
    approvers,
    changed_arguments,
)
from mesh.delivery.outbox import Delivery, post_json
from mesh.store import ApprovalRecord, iso

DECISIONS = {"approved": "approve", "denied": "deny", "submitted": "submit", "canceled": "cancel"}

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "url": {"type": "string", "pattern": f"^https?://[^/?#{WHITESPACE}]+", "maxLength": 2048},
        "secret": {
            "type": "string",
            "pattern": "^whsec_[A-Za-z0-9+/]+={0,2}$",
            "minLength": 30,
            "maxLength": 200,
            "description": "whsec_ and the base64 of 24 to 64 random bytes; made for you when left out",
        },
        "input_requests": {"type": "boolean", "description": "also announce agents' requests for values"},
    },
    "required": ["url"],
    "additionalProperties": False,
}


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def body_of(notice: Notice) -> dict[str, Any]:
    """What the receiver gets: ``type`` and ``timestamp`` always, then what the event tells of."""
    approval = notice.approval
    body: dict[str, Any] = {
        "type": notice.event,
        "timestamp": iso(notice.at),
        "event": notice.event,
        "approval_id": approval.id,
        "message_id": approval.task_id,
        "tenant_id": approval.tenant,
        "policy": approval.policy,
        "tool": approval.tool,
    }
    if notice.event in (REQUESTED, INPUT_REQUESTED):
        body.update(requested(approval, notice))
        if approval.approvals_required > 1:
            body["approvals_required"] = approval.approvals_required
    elif notice.event == RESOLVED:
        body.update(
            decision=DECISIONS.get(approval.status, approval.status),
            status=approval.status,
            resolved_by=approval.resolved_by,
            surface=approval.surface,
            resolved_at=iso(approval.resolved_at),
            approvals=approvers(approval),
            approvals_required=approval.approvals_required,
        )
        if approval.reason:
            body["reason"] = approval.reason
        changed = changed_arguments(approval)
        if changed is not None:
            body.update(edited=True, changed_arguments=changed)
    elif notice.event == PROGRESS:
        body.update(progress(approval))
    elif notice.event == ESCALATED:
        body.update(
            progress(approval),
            escalated_at=iso(approval.escalated_at),
            escalate_to=list(approval.escalate_to),
            # what was asked, for a receiver that never had the request: the request's fields, no credential
            session_id=approval.session_id,
            user_input=approval.user_input,
            form=approval.form,
            expires_at=iso(approval.expires_at),
            dashboard_url=notice.links.dashboard_url,
        )
    elif notice.event == EXPIRED:
        body.update(status=approval.status, expired_at=iso(approval.resolved_at or approval.expires_at))
    return body


def progress(approval: ApprovalRecord) -> dict[str, Any]:
    """Where a hold stands: its status (``pending`` unless it ended before this was sent) and the approvals
    given so far against those it needs. Who approved is told; what they entered never is."""
    return {
        "status": approval.status,
        "approvals": approvers(approval),
        "approvals_required": approval.approvals_required,
    }


def requested(approval: ApprovalRecord, notice: Notice) -> dict[str, Any]:
    links = notice.links
    out: dict[str, Any] = {
        "session_id": approval.session_id,
        "user_input": approval.user_input,
        "form": approval.form,
        "expires_at": iso(approval.expires_at),
        "resolve_url": links.resolve_url,
        "callback_token": links.callback_token,
        "dashboard_url": links.dashboard_url,
    }
    if links.approve_url is not None and links.deny_url is not None:
        out["approve_url"], out["deny_url"] = links.approve_url, links.deny_url
    return out


def signature_headers(secret: str, delivery_id: str, at: float, payload: bytes) -> dict[str, str]:
    stamp = datetime.fromtimestamp(int(at), UTC)
    return {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery_id, stamp, payload),
    }


class WebhookChannel:
    name = "webhook"
    config_schema = CONFIG_SCHEMA
    secrets = frozenset({"secret"})

    def check(self, config: dict[str, Any], *, signing: bool) -> None:
        return None

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> None:
        config = notice.channel.config
        payload = orjson.dumps(body_of(notice))
        headers: dict[str, str] = {}
        secret = config.get("secret")
        if secret:
            # stamped when this attempt leaves, not when the event happened: receivers refuse old timestamps
            headers = signature_headers(secret, notice.delivery_id, time.time(), payload)
        await post_json(http, Delivery(url=config["url"], body={}, headers=headers), data=payload)
