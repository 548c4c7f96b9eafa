"""Email channels: a text and HTML mail per event, sent over SMTP to a list of people.

``approval.requested`` for a yes/no hold carries the signed approve and deny links (each opens a confirmation
page: a mail scanner that fetches a link resolves nothing) and the dashboard link. A form that asks for more
than a yes or no, and an agent's request for values, get only the dashboard link: a mail never carries the
callback token, and nothing a person typed into a form. A hold that needs several approvers (a policy's
``approvals_required``) says so, and its mail has the deny link alone: a link names no one, so it cannot count
towards a quorum, and each approval is given signed in to the dashboard. ``approval.escalated`` mails the
request, marked "Escalated", to the policy's ``escalate_to`` lists. ``approval.resolved`` and
``approval.expired`` send a short mail in the same thread ("Approved by alice via api.", "Denied by bob via
dashboard." and its reason, "Expired: nobody decided in time.") so the list knows it is done.

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
from mesh.delivery.channels.base import (
    ESCALATED,
    EXPIRED,
    INPUT_REQUESTED,
    PROGRESS,
    REQUESTED,
    RESOLVED,
    Links,
    Notice,
    approver_names,
    changed_arguments,
)
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
    asked = f"Approval required: {what}" if approval.kind == "approval" else f"Input requested: {what}"
    return f"Escalated: {asked}" if notice.event == ESCALATED else asked


def quorum(approval: ApprovalRecord) -> int:
    """How many approvers a hold needs (1 for most; a request for values is answered once)."""
    return approval.approvals_required if approval.kind == "approval" else 1


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
    if approval.pending and quorum(approval) > 1:
        names = approver_names(approval)
        given = f"; {len(names)} so far: {one_line(', '.join(names))}" if names else ""
        rows.append(("Approvals", f"needs {quorum(approval)} approvals{given}"))
    return [(label, value) for label, value in rows if value]


def outcome_of(notice: Notice) -> str:
    """How it ended, in one sentence: "Approved by alice via api." or "Expired: nobody decided in time.\""""
    approval = notice.approval
    if notice.event == EXPIRED or approval.status == "expired":
        return f"Expired: nobody decided by {when(approval.resolved_at or approval.expires_at)}."
    verb = VERBS.get(approval.status, one_line(approval.status).capitalize())
    several = approval.status == "approved" and quorum(approval) > 1 and bool(approval.approvals)
    if several:  # a quorum: each approved where they were
        by, via = f" by {one_line(', '.join(approver_names(approval)))}", ""
    else:
        by = f" by {one_line(approval.resolved_by)}" if approval.resolved_by else ""
        via = f" via {one_line(approval.surface).replace('_', ' ')}" if approval.surface else ""
    edits = " with edits" if approval.status == "approved" and approval.edited_action is not None else ""
    at = f" at {when(approval.resolved_at)}" if approval.resolved_at else ""
    return f"{verb}{by}{edits}{via}{at}."


def details_of(notice: Notice) -> list[tuple[str, str]]:
    """What an ending mail says beside the outcome: a denial's reason (the approver wrote it for the list to
    read) and the names of the arguments an edit changed (never their values)."""
    approval = notice.approval
    if notice.event != RESOLVED:
        return []
    rows: list[tuple[str, str]] = []
    if approval.reason:
        rows.append(("Reason", paragraph(approval.reason, 1000)))
    changed = changed_arguments(approval)
    if changed:
        rows.append(("Changed arguments", one_line(", ".join(changed), 1000)))
    return rows


def asks(notice: Notice) -> bool:
    """Whether the mail asks for a decision: a request, or an escalated request still waiting."""
    return notice.event in (REQUESTED, INPUT_REQUESTED) or (notice.event == ESCALATED and notice.approval.pending)


def links_for(notice: Notice) -> tuple[str | None, str | None]:
    """The signed approve and deny links, only for a yes/no hold that still waits (never for a form with
    fields: a link could not carry its values). A link names no one, so it cannot count towards a quorum:
    a hold that needs several approvers gets the deny link alone (one "no" ends it; each "yes" is a person
    signed in to the dashboard)."""
    links: Links = notice.links
    if notice.event not in (REQUESTED, ESCALATED) or not asks(notice) or not yes_no(notice.approval):
        return None, None
    approve = links.approve_url if quorum(notice.approval) == 1 else None
    return approve, links.deny_url


def dashboard_note(notice: Notice) -> str | None:
    """Why a request mail has no approve and deny links (None when it has them, or tells of an end)."""
    if not asks(notice) or all(links_for(notice)):
        return None
    if notice.approval.kind != "approval":
        return "The agent asks for values: answer in the dashboard."
    if not yes_no(notice.approval):
        return "This request asks for more than a yes or no: answer it in the dashboard."
    if quorum(notice.approval) > 1:
        return (
            f"This request needs {quorum(notice.approval)} approvals, each given signed in: approve it in the "
            "dashboard (a link in a mail names no one, so it cannot count)."
        )
    return "Decide in the dashboard."


def text_body(notice: Notice) -> str:
    approval = notice.approval
    lines = [subject_of(notice), ""]
    if notice.event in (RESOLVED, EXPIRED):
        lines += [outcome_of(notice), ""]
    for label, value in details_of(notice):
        lines += [f"{label}:", *(f"  {line}" for line in value.splitlines()), ""]
    if notice.event == ESCALATED:
        lines += [escalation_of(notice), ""]
    lines += [f"{label}: {value}" for label, value in summary_of(approval)]
    message = paragraph(approval.user_input or "")
    if asks(notice) and message:
        lines += ["", "Message:", *(f"  {line}" for line in message.splitlines())]
    approve, deny = links_for(notice)
    if approve:
        lines += ["", "Approve (opens a page to confirm):", approve]
    if deny:
        lines += ["", "Deny (opens a page to confirm):", deny]
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
    for label, value in details_of(notice):
        text = "<br>".join(_e(line) for line in value.splitlines())
        parts.append(f"<p style='margin:0 0 12px'><strong>{_e(label)}:</strong> {text}</p>")
    if notice.event == ESCALATED:
        parts.append(f"<p style='font-size:16px;margin:0 0 12px'><strong>{_e(escalation_of(notice))}</strong></p>")
    rows = "".join(
        f"<tr><td style='padding:2px 12px 2px 0;color:#555'>{_e(label)}</td><td>{_e(value)}</td></tr>"
        for label, value in summary_of(approval)
    )
    parts.append(f"<table style='border-collapse:collapse;margin:0 0 12px'>{rows}</table>")
    message = paragraph(approval.user_input or "")
    if asks(notice) and message:
        quoted = "<br>".join(_e(line) for line in message.splitlines())
        parts.append(
            "<blockquote style='margin:0 0 16px;padding:8px 12px;border-left:3px solid #ccc;color:#333'>"
            f"{quoted}</blockquote>"
        )
    approve, deny = links_for(notice)
    if approve or deny:
        buttons = f"<a href='{_e(approve)}' style='{BUTTON.format(colour='#1a7f37')}'>Approve</a>" if approve else ""
        buttons += f"<a href='{_e(deny)}' style='{BUTTON.format(colour='#b42318')}'>Deny</a>" if deny else ""
        parts.append(
            f"<p style='margin:0 0 8px'>{buttons}</p>"
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


def escalation_of(notice: Notice) -> str:
    """What an escalation mail says first: since when the hold waits, or that it ended meanwhile."""
    approval = notice.approval
    if not approval.pending:
        return "Escalated, and decided since: nothing more to do."
    return f"Escalated: waiting since {when(approval.created_at)}, nobody decided yet."


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
    # the request starts the thread; so does an escalation to a list that never had the request
    starts = notice.event in (REQUESTED, INPUT_REQUESTED) or (
        notice.event == ESCALATED and notice.channel.name not in approval.channels
    )
    if starts:
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
        if notice.event == PROGRESS:
            return  # a list hears of a hold's start and end; each approval is in the dashboard and its history
        if notice.event == ESCALATED and not escalation_mail(notice):
            return
        await deliver(notice.channel.config, compose(notice))


def escalation_mail(notice: Notice) -> bool:
    """Whether an escalation is mailed to this channel: only to the policy's ``escalate_to`` lists (the hold's
    own lists had the request; a Slack message is updated, a mail cannot be), and only while it still waits."""
    approval = notice.approval
    return notice.channel.name in approval.escalate_to and approval.pending
