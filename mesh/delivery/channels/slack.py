"""Slack channels: a hold is posted to a Slack conversation with Block Kit buttons, and the message is
updated once the hold is resolved or expires, whoever resolved it and wherever.

Out: ``approval.requested`` (and ``input.requested`` for a channel that opted in) becomes a
``chat.postMessage`` saying what is asked, with ``approve`` / ``deny`` buttons whose ``value`` is the
approval id; a form with inputs beyond the decision gets an ``open_form`` button that opens a modal of those
inputs, unless a field is sensitive (a password): such a form is filled in on the dashboard, never in Slack,
and the message links there. The channel and ``ts`` Slack answered are kept
(:meth:`~mesh.store.Tx.put_channel_message`), so ``approval.resolved`` and ``approval.expired`` become a
``chat.update`` of that message: buttons gone, who decided and through which surface.

In: Slack's clicks and modal submissions come back to the gateway (``gateway/routes_slack.py``), which
verifies them with the channel's signing secret and resolves through the one resolve path; this module
builds what that route shows (the modal) and reads what it gets back (the modal's values).

Nothing that resolves is ever sent to Slack: no callback token, no signed link, no sensitive value. The bot
token travels only in the ``Authorization`` header of calls to ``api_base``.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from a2ui import (
    DECISION_FIELD,
    WHITESPACE,
    ResolutionError,
    field_ids,
    has_decision,
    sensitive_fields,
    validate_resolution,
)
from a2ui.fields import is_required
from mesh.core.kernel import Clock
from mesh.delivery.channels.base import (
    ESCALATED,
    EXPIRED,
    INPUT_REQUESTED,
    PROGRESS,
    REQUESTED,
    RESOLVED,
    Notice,
    approver_names,
)
from mesh.delivery.outbox import DeliveryFailed, Undeliverable
from mesh.store import ApprovalRecord, Store, iso

NAME = "slack"
SURFACE = "slack"
DEFAULT_API_BASE = "https://slack.com/api/"
SECRETS = frozenset({"bot_token", "signing_secret"})

APPROVE, DENY, OPEN_FORM, DASHBOARD = "approve", "deny", "open_form", "dashboard"
DENY_WITH_REASON = "deny_with_reason"
ACTIONS_BLOCK = "airlock_actions"
FORM_CALLBACK = "airlock_form"
REASON_CALLBACK = "airlock_deny_reason"
REASON_BLOCK = "reason"
REASON_MAX = 1000  # what the resolve path takes as a denial's reason
VALUE_ACTION = "value"
"""The ``action_id`` of every input of a modal; its ``block_id`` is the form field's id."""

NOT_APPROVER = "You are not an approver here."
NOTHING_HERE = "There is nothing to resolve here."
EXPIRED_TEXT = "This request has expired."
USE_DASHBOARD = "This form asks for a secret: fill it in on the dashboard, never in Slack."

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "bot_token": {
            "type": "string",
            "pattern": "^xoxb-[A-Za-z0-9-]+$",
            "maxLength": 500,
            "description": "the app's Bot User OAuth Token (xoxb-…), with the chat:write scope",
        },
        "signing_secret": {
            "type": "string",
            "pattern": "^[A-Za-z0-9]{16,128}$",
            "description": "the app's Signing Secret: clicks are verified with it",
        },
        "channel": {
            "type": "string",
            "pattern": "^#?[A-Za-z0-9._-]{1,80}$",
            "description": "the conversation requests are posted to (its id, C…, or #name); invite the bot to it",
        },
        "users": {
            "type": "object",
            "propertyNames": {"pattern": "^[UW][A-Z0-9]{2,30}$"},
            "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 200},
            "maxProperties": 10000,
            "description": "Slack user id → Airlock subject, who resolves as an approver; others resolve nothing",
        },
        "api_base": {
            "type": "string",
            "pattern": f"^https?://[^/?#{WHITESPACE}]+",
            "maxLength": 2048,
            "description": f"Slack's Web API (default {DEFAULT_API_BASE})",
        },
        "input_requests": {"type": "boolean", "description": "also announce agents' requests for values"},
    },
    "required": ["bot_token", "signing_secret", "channel", "users"],
    "additionalProperties": False,
}

# Slack errors that another attempt will not cure: the row is a dead letter, retried by an admin once the
# channel's config (or the bot's membership of the conversation) is fixed.
PERMANENT = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "not_allowed_token_type",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "restricted_action",
        "invalid_blocks",
        "invalid_arguments",
        "msg_too_long",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
    }
)

OUTCOMES = {"approved": "Approved", "denied": "Denied", "submitted": "Answered", "canceled": "Canceled"}
EMOJI = {"approved": ":white_check_mark:", "denied": ":no_entry:", "submitted": ":memo:", "expired": ":hourglass:"}
ALREADY = {"approved": "approved", "denied": "denied", "submitted": "answered", "canceled": "canceled"}


def web_client(config: dict[str, Any], http: aiohttp.ClientSession) -> AsyncWebClient:
    """The official client over ``http`` (a session the caller owns, whose timeout applies), calling the
    channel's ``api_base``; no retries of its own (the outbox retries)."""
    return AsyncWebClient(
        token=config["bot_token"],
        base_url=config.get("api_base") or DEFAULT_API_BASE,
        session=http,
        retry_handlers=[],
    )


async def call(method: str, request: Awaitable[AsyncSlackResponse]) -> dict[str, Any]:
    """Await one Web API call; a refusal Slack will repeat is :class:`Undeliverable`, anything else
    :class:`DeliveryFailed`. Neither names more than Slack's error code (never the token or the body)."""
    try:
        response = await request
    except SlackApiError as exc:
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        error = data.get("error")
        if isinstance(error, str) and error in PERMANENT:
            raise Undeliverable(f"Slack {method}: {error}") from None
        raise DeliveryFailed(f"Slack {method}: {error or f'HTTP {exc.response.status_code}'}") from None
    except (SlackClientError, ValueError) as exc:  # ValueError: an answer that is not JSON
        raise DeliveryFailed(f"Slack {method}: {type(exc).__name__}") from None
    return response.data if isinstance(response.data, dict) else {}


# ------------------------------------------------------------------------------------------ Block Kit


def escape(text: str) -> str:
    """Text a person or an agent wrote, shown as mrkdwn: no mention, link or formatting can ride along."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain(text: str, limit: int = 2000) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": False}


def slack_date(ts: float) -> str:
    """A time each reader sees in their own zone (the ISO form where a client cannot render it)."""
    return f"<!date^{int(ts)}^{{date_short_pretty}} at {{time}}|{iso(ts)}>"


def extra_fields(form: dict[str, Any]) -> list[dict[str, Any]]:
    """The form's inputs beyond the approve/deny decision."""
    return [f for f in form.get("props", {}).get("fields", []) if f.get("id") != DECISION_FIELD]


def quick_decision(approval: ApprovalRecord) -> bool:
    """Whether approve and deny alone answer the form (nothing else it asks for is required)."""
    return has_decision(approval.form) and not any(is_required(f) for f in extra_fields(approval.form))


def outcome(approval: ApprovalRecord) -> str:
    """How it ended, said on the message: ``Approved by alice via slack``, ``Denied by bob via api``,
    ``Approved by alice, bob`` (a quorum: each approved where they were), ``Approved by alice with edits via
    api``, ``Denied by bob: <reason>`` (the reason is what the surface would have said), ``Expired``."""
    if approval.status == "expired":
        return "Expired"
    words = [OUTCOMES.get(approval.status, approval.status.capitalize())]
    quorum = approval.status == "approved" and approval.approvals_required > 1 and bool(approval.approvals)
    if quorum:
        words.append(f"by {', '.join(approver_names(approval))}")
    elif approval.resolved_by:
        words.append(f"by {approval.resolved_by}")
    if approval.status == "approved" and approval.edited_action is not None:
        words.append("with edits")
    if approval.surface and not quorum and not approval.reason:
        words.append(f"via {approval.surface}")
    said = " ".join(words)
    return f"{said}: {approval.reason}" if approval.reason else said


def standing(approval: ApprovalRecord) -> str | None:
    """Where a pending hold stands, said under its buttons: ``Needs 2 approvals`` or ``1 of 2 approvals:
    alice``, and ``Escalated`` once its policy's time for that came (None when there is nothing to say)."""
    said: list[str] = []
    if approval.escalated_at is not None:
        said.append(":rotating_light: *Escalated*: still waiting since " + slack_date(approval.created_at))
    if approval.approvals_required > 1:
        names = approver_names(approval)
        if names:
            said.append(f"*{len(names)} of {approval.approvals_required} approvals*: {escape(', '.join(names))}")
        else:
            said.append(f"*Needs {approval.approvals_required} approvals*")
    return "\n".join(said) or None


def already(approval: ApprovalRecord, subject: str | None = None) -> str:
    """What a click that lost is told (an approver whose approval of a quorum hold is in already, so)."""
    if approval.status == "expired":
        return EXPIRED_TEXT
    if approval.pending and subject is not None and approval.approved_by(subject):
        return f"Already approved by you ({len(approval.approvals)} of {approval.approvals_required} approvals)."
    text = f"Already {ALREADY.get(approval.status, approval.status)}"
    return f"{text} by {approval.resolved_by}" if approval.resolved_by else text


def headline(approval: ApprovalRecord) -> str:
    if approval.kind == "input":
        title = approval.form.get("props", {}).get("title")
        return f"Input requested: {title}" if title else "Input requested"
    return f"Approval required: {approval.tool}" if approval.tool else "Approval required"


def message(approval: ApprovalRecord, dashboard_url: str, *, final: bool) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and the blocks of an approval's message: what is asked, then the buttons — or, once
    it is over (``final``), how it ended and no buttons."""
    head = headline(approval)
    agent = approval.action.get("agent") if isinstance(approval.action, dict) else None
    facts = [
        ("Tool", f"`{escape(clip(approval.tool, 500))}`" if approval.tool else None),
        ("Agent", escape(clip(agent, 500)) if isinstance(agent, str) and agent else None),
        ("Policy", escape(clip(approval.policy, 500)) if approval.policy else None),
        ("Expires", slack_date(approval.expires_at)),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(head, 150)},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in facts if value],
        },
    ]
    if approval.user_input:
        quoted = clip("\n".join(f">{line}" for line in escape(approval.user_input).splitlines()), 2900)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Message*\n{quoted}"}})
    description = approval.form.get("props", {}).get("description")
    if approval.kind == "input" and isinstance(description, str) and description:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": escape(clip(description, 2900))}})
    if final:
        said = clip(outcome(approval), 2900)
        emoji = EMOJI.get(approval.status, ":information_source:")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} *{escape(said)}*"}})
        text = f"{escape(head)}: {escape(said)}"
    else:
        where = standing(approval)
        if where:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": where}})
        blocks.extend(buttons(approval, dashboard_url))
        text = escape(head)
        if approval.escalated_at is not None:
            text = f"Escalated: {text}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Airlock · approval `{approval.id}`"}]})
    return text, blocks


def buttons(approval: ApprovalRecord, dashboard_url: str) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = []
    if quick_decision(approval):
        elements += [
            {
                "type": "button",
                "action_id": APPROVE,
                "text": plain("Approve"),
                "style": "primary",
                "value": approval.id,
            },
            {"type": "button", "action_id": DENY, "text": plain("Deny"), "style": "danger", "value": approval.id},
        ]
        if approval.kind == "approval" and REASON_BLOCK not in field_ids(approval.form):
            # a form with its own "reason" field keeps it as a value: the resolve path would not read it as one
            label = plain("Deny with reason…")
            elements.append({"type": "button", "action_id": DENY_WITH_REASON, "text": label, "value": approval.id})
    sensitive = bool(sensitive_fields(approval.form))
    asks = bool(extra_fields(approval.form)) or not has_decision(approval.form)
    if asks and not sensitive:
        label = "Fill in the form…" if has_decision(approval.form) else "Answer…"
        elements.append({"type": "button", "action_id": OPEN_FORM, "text": plain(label), "value": approval.id})
    blocks: list[dict[str, Any]] = []
    if sensitive:
        # the link names the card only; the dashboard asks the person to sign in
        elements.append(
            {
                "type": "button",
                "action_id": DASHBOARD,
                "text": plain("Open in the dashboard"),
                "url": dashboard_url,
                "value": approval.id,
            }
        )
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": USE_DASHBOARD}]})
    if elements:
        blocks.insert(0, {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements})
    return blocks


# ------------------------------------------------------------------------------------------ the modal


def form_modal(approval: ApprovalRecord) -> dict[str, Any]:
    """The modal ``open_form`` opens: an input per field of the form (never for a form with a sensitive
    field), ``private_metadata`` the approval id."""
    if sensitive_fields(approval.form):
        raise ValueError("a form with a sensitive field is never filled in Slack")
    props = approval.form.get("props", {})
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(headline(approval))}*"}}
    ]
    description = props.get("description")
    if isinstance(description, str) and description:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape(clip(description, 2900))}]})
    blocks += [input_block(f) for f in props.get("fields", [])]
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "private_metadata": approval.id,
        "title": plain(props.get("title") or "Airlock", 24),
        "submit": plain("Submit"),
        "close": plain("Cancel"),
        "blocks": blocks,
    }


def reason_modal(approval: ApprovalRecord) -> dict[str, Any]:
    """The modal "Deny with reason…" opens: one text input, ``private_metadata`` the approval id. Its
    submission denies the hold with that reason, which the hold's messages, mail and webhooks then show."""
    return {
        "type": "modal",
        "callback_id": REASON_CALLBACK,
        "private_metadata": approval.id,
        "title": plain("Deny", 24),
        "submit": plain("Deny"),
        "close": plain("Cancel"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(headline(approval))}*"}},
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": plain("Reason"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": VALUE_ACTION,
                    "multiline": True,
                    "max_length": REASON_MAX,
                },
            },
        ],
    }


def reason_value(state: Any) -> tuple[str | None, dict[str, str]]:
    """The reason a submitted "Deny with reason" modal carries, or the error Slack shows under its input."""
    block = state.get(REASON_BLOCK) if isinstance(state, dict) else None
    entry = block.get(VALUE_ACTION) if isinstance(block, dict) else None
    raw = entry.get("value") if isinstance(entry, dict) else None
    reason = raw.strip() if isinstance(raw, str) else ""
    if not reason:
        return None, {REASON_BLOCK: "say why it is denied"}
    if len(reason) > REASON_MAX:
        return None, {REASON_BLOCK: f"at most {REASON_MAX} characters"}
    return reason, {}


def _option(option: dict[str, Any]) -> dict[str, Any]:
    return {"text": plain(option.get("label") or option["value"], 75), "value": option["value"]}


def input_block(field: dict[str, Any]) -> dict[str, Any]:
    kind, default = field["type"], field.get("default")
    element: dict[str, Any]
    if kind in ("text", "email"):
        element = {"type": "plain_text_input" if kind == "text" else "email_text_input"}
        if kind == "text" and field.get("maxLength"):
            element["max_length"] = min(field["maxLength"], 3000)
        if isinstance(default, str) and default:
            element["initial_value"] = default
    elif kind == "number":
        element = {"type": "number_input", "is_decimal_allowed": True}
        for key, slack_key in (("min", "min_value"), ("max", "max_value"), ("default", "initial_value")):
            if key in field:
                element[slack_key] = str(field[key])
    elif kind == "checkbox":
        element = {
            "type": "checkboxes",
            "options": [{"text": plain(field.get("label") or field["id"], 75), "value": "true"}],
        }
        if default is True:
            element["initial_options"] = element["options"]
    elif kind in ("action", "select"):
        options = [_option(o) for o in field["options"]]
        radio = kind == "action" and len(options) <= 10
        element = {"type": "radio_buttons" if radio else "static_select", "options": options}
        if not radio:
            element["placeholder"] = plain("Choose…")
        chosen = [o for o in options if o["value"] == default]
        if chosen:
            element["initial_option"] = chosen[0]
    else:
        raise ValueError(f"a {kind} field is never filled in Slack")
    element["action_id"] = VALUE_ACTION
    placeholder = field.get("placeholder")
    if isinstance(placeholder, str) and placeholder and kind in ("text", "email", "number"):
        element["placeholder"] = plain(placeholder, 150)
    block: dict[str, Any] = {
        "type": "input",
        "block_id": field["id"],
        "label": plain(field.get("label") or field["id"], 2000),
        # an unticked box is an answer (false), so a checkbox is never required in Slack
        "optional": kind == "checkbox" or not is_required(field),
        "element": element,
    }
    description = field.get("description")
    if isinstance(description, str) and description:
        block["hint"] = plain(description, 2000)
    return block


def _number(raw: str) -> int | float | None:
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def modal_values(form: dict[str, Any], state: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The values a submitted modal carries (``view.state.values``), read field by field of ``form`` — so
    nothing the form does not ask for is taken — and checked against the form. Returns the values and, when
    they do not fit, the errors Slack shows under each input (``{block_id: message}``); messages never echo
    a value."""
    state = state if isinstance(state, dict) else {}
    fields = form.get("props", {}).get("fields", [])
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in fields:
        fid, kind = field["id"], field["type"]
        block = state.get(fid)
        entry = block.get(VALUE_ACTION) if isinstance(block, dict) else None
        entry = entry if isinstance(entry, dict) else {}
        if kind == "checkbox":
            values[fid] = bool(entry.get("selected_options"))
        elif kind in ("action", "select"):
            option = entry.get("selected_option")
            if isinstance(option, dict) and isinstance(option.get("value"), str):
                values[fid] = option["value"]
        else:
            raw = entry.get("value")
            if not isinstance(raw, str) or raw == "":
                continue
            if kind == "number":
                number = _number(raw.strip())
                if number is None:
                    errors[fid] = f"field '{fid}' must be a number"
                    continue
                values[fid] = number
            else:
                values[fid] = raw
    if not errors:
        try:
            values = validate_resolution(form, values)
        except ResolutionError as exc:
            ids = [f["id"] for f in fields]
            where = exc.field if exc.field in ids else (ids[0] if ids else DECISION_FIELD)
            errors[where] = str(exc)
    return values, errors


# ------------------------------------------------------------------------------------------ the type


class SlackChannel:
    name = NAME
    config_schema = CONFIG_SCHEMA
    secrets = SECRETS

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def check(self, config: dict[str, Any], *, signing: bool) -> None:
        return None

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> None:
        if notice.event in (REQUESTED, INPUT_REQUESTED):
            await self._post(notice, http)
        elif notice.event in (RESOLVED, EXPIRED):
            await self._update(notice, http)
        elif notice.event == PROGRESS:
            await self._refresh(notice, http)
        elif notice.event == ESCALATED:
            await self._escalate(notice, http)

    async def _refresh(self, notice: Notice, http: aiohttp.ClientSession) -> None:
        """Show where a quorum hold stands on the message that asked it ("1 of 2 approvals: alice"), buttons
        kept for the approvals still needed. A channel that has no message of the hold (it takes no requests)
        has nothing to update: progress is not an outcome it must be told of."""
        approval, channel = notice.approval, notice.channel
        ref = await self._store.get_channel_message(approval.id, channel.name)
        if ref is None:
            if channel.takes(REQUESTED):
                raise DeliveryFailed("the request's Slack message is not posted yet")
            return
        await self._rewrite(notice, http, ref)

    async def _escalate(self, notice: Notice, http: aiohttp.ClientSession) -> None:
        """An escalation: the hold's own message now says "Escalated"; a channel of the policy's
        ``escalate_to`` that never had the request gets it, marked "Escalated", buttons and all (a click there
        resolves like one on the first message: the route knows escalation channels)."""
        approval, channel = notice.approval, notice.channel
        ref = await self._store.get_channel_message(approval.id, channel.name)
        if ref is None:
            if channel.name in approval.channels and channel.takes(REQUESTED):
                raise DeliveryFailed("the request's Slack message is not posted yet")
            await self._post(notice, http)
            return
        await self._rewrite(notice, http, ref)

    async def _rewrite(self, notice: Notice, http: aiohttp.ClientSession, ref: dict[str, Any]) -> None:
        """Update a posted message to the hold as it is now (final once it is over)."""
        if ref.get("final"):
            return  # posted when it was already over: it says so
        approval = notice.approval
        text, blocks = message(approval, notice.links.dashboard_url, final=not approval.pending)
        client = web_client(notice.channel.config, http)
        await call("chat.update", client.chat_update(channel=ref["channel"], ts=ref["ts"], text=text, blocks=blocks))

    async def _post(self, notice: Notice, http: aiohttp.ClientSession, *, final: bool | None = None) -> None:
        """Post the request (already in its final state when it is over by now), and keep where it went."""
        approval, channel = notice.approval, notice.channel
        if await self._store.get_channel_message(approval.id, channel.name) is not None:
            return  # an earlier attempt posted it; only its outcome was lost
        final = not approval.pending if final is None else final
        text, blocks = message(approval, notice.links.dashboard_url, final=final)
        config = channel.config
        client = web_client(config, http)
        answer = await call(
            "chat.postMessage",
            client.chat_postMessage(
                channel=config["channel"], text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
            ),
        )
        if not isinstance(answer.get("channel"), str) or not isinstance(answer.get("ts"), str):
            raise DeliveryFailed("Slack chat.postMessage: no channel or ts in the answer")
        ref: dict[str, Any] = {"channel": answer["channel"], "ts": answer["ts"]}
        if final:
            ref["final"] = True
        async with self._store.transaction() as tx:
            await tx.put_channel_message(approval.id, approval.tenant, channel.name, ref, self._clock())

    async def _update(self, notice: Notice, http: aiohttp.ClientSession) -> None:
        """Show how the request ended on the message that asked it."""
        approval, channel = notice.approval, notice.channel
        ref = await self._store.get_channel_message(approval.id, channel.name)
        if ref is None:
            asked = INPUT_REQUESTED if approval.kind == "input" else REQUESTED
            if channel.takes(asked):
                raise DeliveryFailed("the request's Slack message is not posted yet")
            # a channel that takes only outcomes gets each as a message of its own
            await self._post(notice, http, final=True)
            return
        if ref.get("final"):
            return  # posted when it was already over: it says so
        text, blocks = message(approval, notice.links.dashboard_url, final=True)
        client = web_client(channel.config, http)
        await call("chat.update", client.chat_update(channel=ref["channel"], ts=ref["ts"], text=text, blocks=blocks))
