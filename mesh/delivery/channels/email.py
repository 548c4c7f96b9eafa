"""Email channels: a text and HTML mail per event, sent over SMTP to a list of people.

``approval.requested`` for a yes/no hold carries the signed approve and deny links (each opens a confirmation
page: a mail scanner that fetches a link resolves nothing) and the dashboard link. A form that asks for more
than a yes or no, and an agent's request for values, get only the dashboard link: a mail never carries the
callback token, and nothing a person typed into a form. ``approval.resolved`` and ``approval.expired`` send a
short mail in the same thread ("Approved by alice via api.", "Expired: nobody decided in time.") so the list
knows it is done.

A failed send (the server is down, a temporary refusal, a timeout) is tried again; a permanent refusal of
every recipient is a dead letter. Neither the password nor a mail's body is ever logged.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import unicodedata
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import aiohttp
import aiosmtplib

from a2ui import EMAIL_PATTERN, field_ids
from mesh.delivery.channels.base import EXPIRED, INPUT_REQUESTED, REQUESTED, RESOLVED, Links, Notice
from mesh.delivery.outbox import DeliveryFailed, Undeliverable
from mesh.store import ApprovalRecord

log = logging.getLogger("airlock.email")

TIMEOUT_S = 15.0
MESSAGE_CHARS = 2000  # of the user's message quoted in a mail
LINE_CHARS = 200  # of a name shown in a subject or a summary line
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "smtp_host": {"type": "string", "pattern": "^[A-Za-z0-9._:\\[\\]-]+$", "minLength": 1, "maxLength": 253},
        "smtp_port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "from": {
            "type": "string",
            "pattern": "^[^\\r\\n]+$",
            "maxLength": 320,
            "description": "the sender: airlock@example.com, or Airlock <airlock@example.com>",
        },
        "to": {
            "type": "array",
            "items": {"type": "string", "pattern": EMAIL_PATTERN, "maxLength": 254},
            "minItems": 1,
            "maxItems": 100,
            "uniqueItems": True,
        },
        "starttls": {
            "type": "boolean",
            "description": "true: STARTTLS or fail; false: never; left out: when the server offers it (always "
            "when logging in)",
        },
        "username": {"type": "string", "minLength": 1, "maxLength": 320},
        "password": {"type": "string", "minLength": 1, "maxLength": 1024},
        "input_requests": {"type": "boolean", "description": "also announce agents' requests for values"},
    },
    "required": ["smtp_host", "smtp_port", "from", "to"],
    "additionalProperties": False,
}

VERBS = {"approved": "Approved", "denied": "Denied", "submitted": "Answered", "canceled": "Canceled"}
_SPACES = re.compile(r"\s+")


# ---------------------------------------------------------------- what a mail says


def one_line(value: object, limit: int = LINE_CHARS) -> str:
    """``value`` as one line of plain text: control characters and line breaks become spaces (a header can
    never be split by what an agent named its tool), cut at ``limit``."""
    text = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in str(value))
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def paragraph(value: object, limit: int = MESSAGE_CHARS) -> str:
    """Free text kept on its lines, without control characters, cut at ``limit``."""
    lines = (one_line(line, limit) for line in str(value).splitlines())
    text = "\n".join(line for line in lines if line)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def yes_no(approval: ApprovalRecord) -> bool:
    """A hold a person answers with approve or deny alone: the only kind a one-click link can resolve."""
    return approval.kind == "approval" and field_ids(approval.form) == ["decision"]


def tool_of(approval: ApprovalRecord) -> str:
    return one_line(approval.tool or "an action")


def agent_of(approval: ApprovalRecord) -> str:
    return one_line(approval.action.get("agent") or "")


def subject_of(notice: Notice) -> str:
    approval = notice.approval
    if approval.kind == "approval":
        what = tool_of(approval) + (f" ({one_line(approval.policy)})" if approval.policy else "")
    else:
        what = one_line(approval.user_input or "Input required") + (
            f" ({agent_of(approval)})" if agent_of(approval) else ""
        )
    if notice.event == RESOLVED:
        return f"{VERBS.get(approval.status, one_line(approval.status).capitalize())}: {what}"
    if notice.event == EXPIRED:
        return f"Expired: {what}"
    if approval.kind == "approval":
        return f"Approval required: {what}"
    return f"Input requested: {what}"


def summary_of(approval: ApprovalRecord) -> list[tuple[str, str]]:
    """The request at a glance. The call's arguments are left out (they may hold anything): the confirmation
    page and the dashboard show the command to whoever opens them."""
    rows = [("Tool", tool_of(approval))] if approval.kind == "approval" else []
    rows += [
        ("Agent", agent_of(approval)),
        ("Policy", one_line(approval.policy or "")),
        ("Requested by", one_line(approval.requested_by or "")),
        ("Expires", when(approval.expires_at)),
    ]
    return [(label, value) for label, value in rows if value]


def outcome_of(notice: Notice) -> str:
    """How it ended, in one sentence: "Approved by alice via api." or "Expired: nobody decided in time.\""""
    approval = notice.approval
    if notice.event == EXPIRED or approval.status == "expired":
        return f"Expired: nobody decided by {when(approval.resolved_at or approval.expires_at)}."
    verb = VERBS.get(approval.status, one_line(approval.status).capitalize())
    by = f" by {one_line(approval.resolved_by)}" if approval.resolved_by else ""
    via = f" via {one_line(approval.surface).replace('_', ' ')}" if approval.surface else ""
    at = f" at {when(approval.resolved_at)}" if approval.resolved_at else ""
    return f"{verb}{by}{via}{at}."


def links_for(notice: Notice) -> tuple[str | None, str | None]:
    """The signed approve and deny links, only for a yes/no hold that still waits (never for a form with
    fields: a link could not carry its values)."""
    links: Links = notice.links
    if notice.event != REQUESTED or not yes_no(notice.approval):
        return None, None
    return links.approve_url, links.deny_url


def dashboard_note(notice: Notice) -> str | None:
    """Why a request mail has no approve and deny links (None when it has them, or tells of an end)."""
    if notice.event not in (REQUESTED, INPUT_REQUESTED) or all(links_for(notice)):
        return None
    if notice.approval.kind != "approval":
        return "The agent asks for values: answer in the dashboard."
    if not yes_no(notice.approval):
        return "This request asks for more than a yes or no: answer it in the dashboard."
    return "Decide in the dashboard."


def text_body(notice: Notice) -> str:
    approval = notice.approval
    lines = [subject_of(notice), ""]
    if notice.event in (RESOLVED, EXPIRED):
        lines += [outcome_of(notice), ""]
    lines += [f"{label}: {value}" for label, value in summary_of(approval)]
    message = paragraph(approval.user_input or "")
    if notice.event in (REQUESTED, INPUT_REQUESTED) and message:
        lines += ["", "Message:", *(f"  {line}" for line in message.splitlines())]
    approve, deny = links_for(notice)
    if approve and deny:
        lines += [
            "",
            "Approve (opens a page to confirm):",
            approve,
            "",
            "Deny (opens a page to confirm):",
            deny,
        ]
    note = dashboard_note(notice)
    if note:
        lines += ["", note]
    lines += ["", "Dashboard:", notice.links.dashboard_url, "", "-- ", "Sent by Airlock. Do not forward this mail."]
    return "\n".join(lines) + "\n"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


BUTTON = (
    "display:inline-block;padding:10px 22px;margin:0 8px 8px 0;border-radius:6px;color:#ffffff;"
    "text-decoration:none;font-weight:600;background:{colour}"
)


def html_body(notice: Notice) -> str:
    approval = notice.approval
    parts = [f"<h2 style='margin:0 0 12px;font-size:20px'>{_e(subject_of(notice))}</h2>"]
    if notice.event in (RESOLVED, EXPIRED):
        parts.append(f"<p style='font-size:16px;margin:0 0 12px'><strong>{_e(outcome_of(notice))}</strong></p>")
    rows = "".join(
        f"<tr><td style='padding:2px 12px 2px 0;color:#555'>{_e(label)}</td><td>{_e(value)}</td></tr>"
        for label, value in summary_of(approval)
    )
    parts.append(f"<table style='border-collapse:collapse;margin:0 0 12px'>{rows}</table>")
    message = paragraph(approval.user_input or "")
    if notice.event in (REQUESTED, INPUT_REQUESTED) and message:
        quoted = "<br>".join(_e(line) for line in message.splitlines())
        parts.append(
            "<blockquote style='margin:0 0 16px;padding:8px 12px;border-left:3px solid #ccc;color:#333'>"
            f"{quoted}</blockquote>"
        )
    approve, deny = links_for(notice)
    if approve and deny:
        parts.append(
            "<p style='margin:0 0 8px'>"
            f"<a href='{_e(approve)}' style='{BUTTON.format(colour='#1a7f37')}'>Approve</a>"
            f"<a href='{_e(deny)}' style='{BUTTON.format(colour='#b42318')}'>Deny</a></p>"
            "<p style='color:#555;font-size:13px;margin:0 0 12px'>Each link opens a page where you confirm.</p>"
        )
    note = dashboard_note(notice)
    if note:
        parts.append(f"<p>{_e(note)}</p>")
    dashboard = _e(notice.links.dashboard_url)
    parts.append(f"<p><a href='{dashboard}'>Open in the dashboard</a></p>")
    parts.append("<p style='color:#777;font-size:12px'>Sent by Airlock. Do not forward this mail.</p>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'></head>"
        "<body style='margin:0;padding:16px;font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;"
        "font-size:15px;line-height:1.45;color:#1f2328'>"
        f"<div style='max-width:560px'>{''.join(parts)}</div></body></html>"
    )


def thread_id(approval: ApprovalRecord, channel: str, domain: str) -> str:
    """The request mail's Message-ID; the mails that tell how it ended answer it, so they share a thread."""
    tag = hashlib.sha256(channel.encode()).hexdigest()[:12]
    return f"<airlock.{approval.id}.{tag}@{domain}>"


def compose(notice: Notice) -> EmailMessage:
    config = notice.channel.config
    approval = notice.approval
    sender = config["from"]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "airlock.invalid"
    msg = EmailMessage()
    msg["Subject"] = subject_of(notice)
    msg["From"] = sender
    msg["To"] = ", ".join(config["to"])
    msg["Date"] = format_datetime(datetime.fromtimestamp(notice.at, UTC))
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    thread = thread_id(approval, notice.channel.name, domain)
    if notice.event in (REQUESTED, INPUT_REQUESTED):
        msg["Message-ID"] = thread
    else:
        msg["Message-ID"] = f"<airlock.{notice.delivery_id}.{approval.id}@{domain}>"
        msg["In-Reply-To"] = thread
        msg["References"] = thread
    msg.set_content(text_body(notice))
    msg.add_alternative(html_body(notice), subtype="html")
    return msg


# ---------------------------------------------------------------- sending


def is_loopback(host: str) -> bool:
    return host.lower() in LOOPBACK or host.startswith("127.")


async def deliver(config: dict[str, Any], message: EmailMessage) -> None:
    """Send ``message``; a temporary failure raises ``DeliveryFailed``, a permanent refusal of every recipient
    ``Undeliverable``. Errors name the SMTP code and the kind of failure, never what the server said back
    (which may echo what was sent)."""
    username = config.get("username")
    starttls = config.get("starttls")
    if starttls is None and username:
        starttls = True  # credentials never cross the network in clear
    try:
        refused, _ = await aiosmtplib.send(
            message,
            hostname=config["smtp_host"],
            port=int(config["smtp_port"]),
            username=username,
            password=config.get("password"),
            start_tls=starttls,
            timeout=TIMEOUT_S,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = sorted({r.code for r in exc.recipients})
        if codes and all(500 <= c < 600 for c in codes):
            raise Undeliverable(f"SMTP {codes[0]}: every recipient refused") from None
        raise DeliveryFailed(f"SMTP {codes[0] if codes else '?'}: recipients refused") from None
    except aiosmtplib.SMTPResponseException as exc:
        raise DeliveryFailed(f"SMTP {exc.code} ({type(exc).__name__})") from None
    except aiosmtplib.SMTPException as exc:
        raise DeliveryFailed(type(exc).__name__) from None
    if refused:
        codes = sorted({r.code for r in refused.values()})
        log.warning("email: %d of %d recipients refused (SMTP %s)", len(refused), len(config["to"]), codes)


class EmailChannel:
    name = "email"
    config_schema = CONFIG_SCHEMA
    secrets = frozenset({"password"})

    def check(self, config: dict[str, Any], *, signing: bool) -> None:
        if not signing:
            raise ValueError(
                "to: an email channel mails signed approve/deny links, and this server signs none: "
                "start it with --sign (or --signing-key FILE)"
            )
        name, address = parseaddr(config["from"])
        if not re.match(EMAIL_PATTERN, address) or "<" in name or ">" in name:
            raise ValueError("from: must be an address, such as airlock@example.com or Airlock <airlock@example.com>")
        if bool(config.get("username")) != bool(config.get("password")):
            missing = "password" if config.get("username") else "username"
            raise ValueError(f"{missing}: username and password go together")
        if config.get("password") and config.get("starttls") is False and not is_loopback(config["smtp_host"]):
            raise ValueError("starttls: a password is sent only over TLS (false is allowed for a loopback relay)")

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> None:
        await deliver(notice.channel.config, compose(notice))
