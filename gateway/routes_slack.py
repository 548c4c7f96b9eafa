"""Slack's interactivity endpoint: ``POST /webhooks/receive/slack``, where Slack sends the clicks on the
buttons of a Slack channel's messages and the submissions of its modals.

A request counts only when its ``X-Slack-Signature`` (``v0=`` HMAC-SHA256 of
``v0:{X-Slack-Request-Timestamp}:{body}``) verifies under the signing secret of one of the server's Slack
channels, within five minutes of its timestamp; otherwise ``401`` and nothing happens. The verified
channel decides the tenant, and its ``users`` who the Slack user is: an Airlock subject that resolves as an
approver, through the one resolve path (surface ``slack``), so a requester never approves its own hold and a
click on a hold that needs several approvers counts as that subject's approval. A hold escalated to a
channel (a policy's ``escalate_to``) may be resolved from the message posted there too.

Slack wants an answer within three seconds, so a click is answered at once and resolved in the
background; a click that lost, or that came from someone not in ``users``, is told so privately through
the click's ``response_url``. How the hold ended reaches the channel's message through the outbox
(``approval.resolved``), whichever surface resolved it. Values typed into a modal are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import orjson
from aiohttp import web
from pydantic import ValidationError as PydanticError
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier

from a2ui import DECISION_FIELD, sensitive_fields
from gateway.errors import ApiError, json_response
from gateway.keys import MESH
from gateway.models.base import parse
from gateway.models.slack import SlackInteraction, SlackPayload, SlackView
from mesh.approvals.resolve import ResolveRequest
from mesh.auth import Principal
from mesh.core.kernel import Clock
from mesh.delivery.channels import slack
from mesh.delivery.notify import unsealed
from mesh.delivery.outbox import DeliveryFailed, Undeliverable
from mesh.errors import Conflict, Forbidden, Gone, InvalidInput, MeshError, NotFound
from mesh.store import ApprovalRecord, ChannelRecord
from mesh.wiring import Mesh

log = logging.getLogger("airlock.gateway.slack")

routes = web.RouteTableDef()

PATH = "/webhooks/receive/slack"
APPROVER = frozenset({"approver"})
VIEWS_OPEN_TIMEOUT_S = 2  # a trigger id lives three seconds
DRAIN_S = 5.0


@dataclass
class Inbound:
    """What the endpoint keeps for the app's life: a session for its own calls to Slack (``response_url``,
    ``views.open``) and the background resolves still running."""

    http: aiohttp.ClientSession | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


SLACK = web.AppKey("slack_inbound", Inbound)


def setup(app: web.Application) -> None:
    """Add the route and what it needs (call before the app starts)."""
    app.add_routes(routes)
    app[SLACK] = Inbound()
    app.cleanup_ctx.append(_session)


async def _session(app: web.Application) -> AsyncIterator[None]:
    inbound = app[SLACK]
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as inbound.http:
        yield
        if inbound.tasks:  # let resolves under way finish, then stop what is left
            await asyncio.wait(set(inbound.tasks), timeout=DRAIN_S)
        for task in set(inbound.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    inbound.http = None


class _MeshClock(SlackClock):
    """The server's clock, for the five-minute window."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock()


# ------------------------------------------------------------------------------------------ the route


@routes.post(PATH)
async def receive(request: web.Request) -> web.StreamResponse:
    mesh = request.app[MESH]
    try:
        raw = await request.read()
    except web.RequestPayloadError:
        raise ApiError(400, "request body could not be read (bad encoding)") from None
    channels = await verified_channels(mesh, raw, request.headers)
    if not channels:
        raise ApiError(401, "the Slack signature is missing, not valid, or more than 5 minutes old")
    payload = _payload(raw)
    kind = payload.type
    if kind == "block_actions":
        return await _block_actions(request, mesh, channels, payload)
    if kind == "view_submission":
        return await _view_submission(request, mesh, channels, payload)
    return web.Response(status=200)  # view_closed and the rest: nothing to do


async def verified_channels(mesh: Mesh, raw: bytes, headers: Any) -> list[ChannelRecord]:
    """The Slack channels (of any tenant, secrets unsealed) whose signing secret signed this body."""
    stamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not stamp.isdigit() or not signature.startswith("v0="):
        return []
    clock = _MeshClock(mesh.clock)
    found: list[ChannelRecord] = []
    for channel in await mesh.store.channels_of_type(slack.NAME):
        try:
            opened = unsealed(channel, slack.SECRETS, mesh.config.callback_key)
        except ValueError:
            log.warning("slack channel %s of tenant %s: its secrets do not unseal", channel.name, channel.tenant)
            continue
        secret = opened.config.get("signing_secret")
        if isinstance(secret, str) and secret and SignatureVerifier(secret, clock).is_valid(raw, stamp, signature):
            found.append(opened)
    return found


def _payload(raw: bytes) -> SlackPayload:
    try:
        form = parse(SlackInteraction, {k: v[0] for k, v in parse_qs(raw.decode(), strict_parsing=True).items()})
        decoded = orjson.loads(form.payload)
    except (UnicodeDecodeError, ValueError, orjson.JSONDecodeError):
        raise ApiError(400, "the body must be form-encoded with a JSON payload", field="payload") from None
    if not isinstance(decoded, dict):
        raise ApiError(400, "payload must be a JSON object", field="payload")
    try:
        return SlackPayload.model_validate(decoded)
    except PydanticError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise ApiError(400, f"payload.{where}: {exc.errors()[0]['msg']}", field="payload") from None


@dataclass(frozen=True, slots=True)
class Click:
    """Who asked for what on which approval, as a verified channel sees it."""

    approval: ApprovalRecord
    channel: ChannelRecord
    subject: str | None  # the Airlock subject the Slack user is; None: not an approver here

    @property
    def principal(self) -> Principal:
        assert self.subject is not None
        return Principal(sub=self.subject, tenant=self.channel.tenant, roles=APPROVER)


async def _click(mesh: Mesh, channels: list[ChannelRecord], approval_id: Any, user: str | None) -> Click | None:
    """The approval and the verified channel it was announced on (None when there is none: an unknown id,
    or another tenant's approval)."""
    if not isinstance(approval_id, str) or not approval_id:
        return None
    approval = await mesh.store.get_approval(approval_id)
    if approval is None:
        return None
    # the hold's own channels, and once it escalated the policy's escalate_to: each was sent the buttons
    shown_on = [*approval.channels, *(approval.escalate_to if approval.escalated_at is not None else ())]
    for channel in channels:
        if channel.tenant == approval.tenant and channel.name in shown_on:
            users = channel.config.get("users")
            subject = users.get(user) if isinstance(users, dict) and user else None
            return Click(approval, channel, subject if isinstance(subject, str) and subject else None)
    return None


def _spawn(request: web.Request, work: Coroutine[Any, Any, None]) -> None:
    inbound = request.app[SLACK]
    task = asyncio.create_task(work)
    inbound.tasks.add(task)
    task.add_done_callback(inbound.tasks.discard)


# ------------------------------------------------------------------------------------------ clicks


async def _block_actions(
    request: web.Request, mesh: Mesh, channels: list[ChannelRecord], payload: SlackPayload
) -> web.StreamResponse:
    action = payload.action
    action_id, user, response_url = action.action_id, payload.user_id, payload.response_url or None
    if action_id in (slack.APPROVE, slack.DENY):
        _spawn(request, _decide(request.app, mesh, channels, action_id, action.value, user, response_url))
    elif action_id in (slack.OPEN_FORM, slack.DENY_WITH_REASON):
        await _open_form(request, mesh, channels, action.value, user, response_url, payload.trigger_id, action_id)
    return web.Response(status=200)  # the dashboard link, and anything else, needs no more


async def _decide(
    app: web.Application,
    mesh: Mesh,
    channels: list[ChannelRecord],
    decision: str,
    approval_id: Any,
    user: str | None,
    response_url: str | None,
) -> None:
    """In the background: resolve a click on approve or deny; tell the clicker privately when it did not."""
    inbound = app[SLACK]
    try:
        click = await _click(mesh, channels, approval_id, user)
        if click is None:
            await _reply(inbound, response_url, slack.NOTHING_HERE)
            return
        if click.subject is None:
            await _reply(inbound, response_url, slack.NOT_APPROVER)
            return
        refusal = await _resolve(mesh, click, {DECISION_FIELD: decision})
        if refusal is not None:
            await _reply(inbound, response_url, refusal)
    except Exception:
        log.exception("a Slack click could not be handled")


async def _resolve(mesh: Mesh, click: Click, resolution: dict[str, Any]) -> str | None:
    """Resolve through the one resolve path as the click's subject; None when it did, else what to tell the
    person (never a value they entered)."""
    request = ResolveRequest(
        ref=click.approval.id, resolution=resolution, surface=slack.SURFACE, principal=click.principal
    )
    try:
        await mesh.resolver.resolve(request)
    except Conflict:
        latest = await mesh.store.get_approval(click.approval.id)
        return slack.already(latest, click.subject) if latest is not None else slack.NOTHING_HERE
    except Gone:
        return slack.EXPIRED_TEXT
    except Forbidden as exc:
        return f"You cannot resolve this one: {exc.message}."
    except InvalidInput as exc:
        return f"This was not resolved: {exc.message}."
    except NotFound:
        return slack.NOTHING_HERE
    except MeshError as exc:
        log.warning("a Slack resolve of approval %s failed: %s", click.approval.id, exc.code)
        return "This could not be resolved; try again, or use the dashboard."
    return None


async def _reply(inbound: Inbound, response_url: str | None, text: str) -> None:
    """An answer only the person who clicked sees, through the click's ``response_url``."""
    if response_url is None or urlparse(response_url).scheme not in ("http", "https") or inbound.http is None:
        return
    body = {"response_type": "ephemeral", "replace_original": False, "text": text}
    try:
        async with inbound.http.post(response_url, json=body, allow_redirects=False) as resp:
            if not 200 <= resp.status < 300:
                log.warning("Slack's response_url answered HTTP %s", resp.status)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("Slack's response_url could not be reached: %s", type(exc).__name__)


async def _open_form(
    request: web.Request,
    mesh: Mesh,
    channels: list[ChannelRecord],
    approval_id: Any,
    user: str | None,
    response_url: str | None,
    trigger_id: Any,
    action_id: str = slack.OPEN_FORM,
) -> None:
    """Open the modal at once (its trigger id expires in three seconds): the form's, or for "Deny with
    reason…" the one asking why; a refusal is told privately."""
    inbound = request.app[SLACK]
    click = await _click(mesh, channels, approval_id, user)
    asks_reason = action_id == slack.DENY_WITH_REASON
    refusal: str | None = None
    if click is None:
        refusal = slack.NOTHING_HERE
    elif click.subject is None:
        refusal = slack.NOT_APPROVER
    elif sensitive_fields(click.approval.form) and not asks_reason:  # a reason is no value of the form
        refusal = slack.USE_DASHBOARD
    elif not click.approval.pending:
        refusal = slack.already(click.approval)
    elif click.approval.expires_at <= mesh.clock():
        refusal = slack.EXPIRED_TEXT
    if refusal is not None or click is None:
        _spawn(request, _reply(inbound, response_url, refusal or slack.NOTHING_HERE))
        return
    if not isinstance(trigger_id, str) or not trigger_id or inbound.http is None:
        return
    client = slack.web_client(click.channel.config, inbound.http)
    view = slack.reason_modal(click.approval) if asks_reason else slack.form_modal(click.approval)
    try:
        async with asyncio.timeout(VIEWS_OPEN_TIMEOUT_S):
            await slack.call("views.open", client.views_open(trigger_id=trigger_id, view=view))
    except (DeliveryFailed, Undeliverable, aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning(
            "the form of approval %s could not be opened in Slack: %s",
            click.approval.id,
            str(exc) or type(exc).__name__,
        )


# ------------------------------------------------------------------------------------------ modals


async def _view_submission(
    request: web.Request, mesh: Mesh, channels: list[ChannelRecord], payload: SlackPayload
) -> web.StreamResponse:
    view = payload.view or SlackView()
    if view.callback_id == slack.REASON_CALLBACK:
        return await _reason_submission(request, mesh, channels, payload, view)
    if view.callback_id != slack.FORM_CALLBACK:
        return web.Response(status=200)
    user = payload.user_id
    click = await _click(mesh, channels, view.private_metadata, user)
    if click is None:
        log.warning("a Slack form was submitted for an approval that is not this channel's")
        return web.Response(status=200)
    form = click.approval.form
    first = next((f["id"] for f in form.get("props", {}).get("fields", [])), DECISION_FIELD)
    refusal: str | None = None
    if click.subject is None:
        refusal = slack.NOT_APPROVER
    elif sensitive_fields(form):
        refusal = slack.USE_DASHBOARD
    elif not click.approval.pending:
        refusal = slack.already(click.approval)
    if refusal is not None:
        return _errors({first: refusal})
    values, errors = slack.modal_values(form, (view.state or {}).get("values"))
    if errors:
        return _errors(errors)
    _spawn(request, _submit(request.app, mesh, click, values, user))
    return web.Response(status=200)  # closes the modal


async def _reason_submission(
    request: web.Request, mesh: Mesh, channels: list[ChannelRecord], payload: SlackPayload, view: SlackView
) -> web.StreamResponse:
    """A "Deny with reason" modal: deny the hold with the reason typed, through the one resolve path."""
    user = payload.user_id
    click = await _click(mesh, channels, view.private_metadata, user)
    if click is None:
        log.warning("a Slack reason was submitted for an approval that is not this channel's")
        return web.Response(status=200)
    refusal: str | None = None
    if click.subject is None:
        refusal = slack.NOT_APPROVER
    elif not click.approval.pending:
        refusal = slack.already(click.approval)
    if refusal is not None:
        return _errors({slack.REASON_BLOCK: refusal})
    reason, errors = slack.reason_value((view.state or {}).get("values"))
    if errors:
        return _errors(errors)
    _spawn(request, _submit(request.app, mesh, click, {DECISION_FIELD: "deny", "reason": reason}, user))
    return web.Response(status=200)  # closes the modal


def _errors(errors: dict[str, str]) -> web.Response:
    return json_response({"response_action": "errors", "errors": errors})


async def _submit(app: web.Application, mesh: Mesh, click: Click, values: dict[str, Any], user: str | None) -> None:
    """In the background: resolve with a modal's values; a refusal is told to the person in the channel the
    request was posted to (a modal has no ``response_url``)."""
    try:
        refusal = await _resolve(mesh, click, values)
        if refusal is None or user is None:
            return
        ref = await mesh.store.get_channel_message(click.approval.id, click.channel.name)
        http = app[SLACK].http
        if ref is None or http is None:
            return
        client = slack.web_client(click.channel.config, http)
        await slack.call(
            "chat.postEphemeral", client.chat_postEphemeral(channel=ref["channel"], user=user, text=refusal)
        )
    except (DeliveryFailed, Undeliverable) as exc:
        log.warning("a Slack form's refusal could not be told: %s", exc)
    except Exception:
        log.exception("a Slack form submission could not be handled")
