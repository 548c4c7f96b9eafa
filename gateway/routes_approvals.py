"""The approvals API: ``/v1/approvals`` — list with run groups, create, resolve (by Bearer token
or a signed link), bulk resolve. Same approvals as ``/messages/*``; a resolution through either is
final for both. This surface answers a late resolution with 410 (a replay), as its clients expect.

A signed link (mailed by an email channel, sent by a webhook) answers a browser with HTML pages from
``gateway/templates`` — a confirmation page for a GET, then a done, 410 or 401 page — and an API client with
JSON, as before."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from a2ui import field_ids
from gateway.auth import bearer, require
from gateway.errors import ApiError, json_response, read_form, read_object
from gateway.keys import MESH
from gateway.models.approvals import (
    RUN_GROUPS_MAX,
    ApprovalCreate,
    ApprovalListQuery,
    ApprovalResolve,
    BulkResolve,
    SignedLinkQuery,
    SignedLinkResolve,
    clip,
    encode_cursor,
)
from gateway.models.base import parse
from mesh.approvals.api import approval_public, persist_config
from mesh.approvals.resolve import Outcome, ResolveRequest, find_approval
from mesh.credentials import verify
from mesh.errors import Conflict, Gone, MeshError, NotFound
from mesh.store import PENDING, ApprovalRecord

routes = web.RouteTableDef()


def _public(approval: ApprovalRecord, *, listed: bool = False) -> dict[str, Any]:
    """An approval as this API answers it; a listing cuts a long message (the approval itself has it all)."""
    public = approval_public(approval)
    public["message"], public["message_truncated"] = clip(public["message"]) if listed else (public["message"], False)
    return public


@routes.get("/v1/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    """A page of pending approvals. Paged by a keyset cursor (created_at, id), not an offset: a hold made or
    resolved between two pages neither repeats nor hides another one."""
    principal = require(request, "approver", "admin")
    query = parse(ApprovalListQuery, request.query)
    mesh = request.app[MESH]
    now = mesh.clock()
    # one row more than the page says whether there is a next page, without counting the queue
    rows, _ = await mesh.store.list_pending(
        principal.tenant,
        session_id=None,
        now=now,
        limit=query.limit + 1,
        offset=0,
        run_id=query.run_id,
        after=query.cursor,
    )
    page = rows[: query.limit]
    last = page[-1] if len(rows) > query.limit else None
    groups = await mesh.store.run_groups(principal.tenant, now, run_id=query.run_id, limit=RUN_GROUPS_MAX)
    return json_response(
        {
            "approvals": [_public(a, listed=True) for a in page],
            "run_groups": [{"run_id": g.run_id, "count": g.count, "ids": g.ids} for g in groups],
            "next_cursor": encode_cursor(last.created_at, last.id) if last is not None else None,
        }
    )


@routes.get("/v1/approvals/{id:(?!bulk-resolve$)[^{}/]+}")  # bulk-resolve is a POST-only path of its own
async def get_approval(request: web.Request) -> web.Response:
    principal = require(request, "approver", "admin", "agent")
    mesh = request.app[MESH]
    approval = await find_approval(mesh.store, request.match_info["id"])
    if approval is None or approval.tenant != principal.tenant:
        raise ApiError(404, f"no approval {request.match_info['id']}")
    if approval.status == PENDING and approval.expires_at <= mesh.clock():
        # its time passed before the sweeper got to it: never show it as still waiting
        await mesh.expiry.expire(approval)
        approval = await find_approval(mesh.store, approval.id) or approval
    return json_response(_public(approval))


@routes.post("/v1/approvals")
async def create_approval(request: web.Request) -> web.Response:
    principal = require(request, "agent", "admin")
    body = parse(ApprovalCreate, await read_object(request))
    created, answer = await request.app[MESH].approvals.create_approval(principal, **body.model_dump())
    return json_response(answer, status=201 if created else 200)


def _link(request: web.Request) -> SignedLinkQuery:
    """The URL's signed-link query. A value no link carries (an ``exp`` that is no integer, a ``decision``
    that is neither) is a link that was changed: 401, as a bad signature is, never a 400 naming the part."""
    try:
        return parse(SignedLinkQuery, request.query)
    except ApiError:
        raise ApiError(401, "the link's signature is not valid") from None


def _signed(request: web.Request) -> tuple[str, int, str] | None:
    """(decision, exp, sig) when the URL carries a signature."""
    link = _link(request)
    if link.sig is None:
        return None
    if link.decision is None or link.exp is None:
        raise ApiError(401, "the link's signature is not valid")
    return link.decision, link.exp, link.sig


def _check_link(request: web.Request, approval_id: str, signed: tuple[str, int, str]) -> str:
    key = request.app[MESH].config.signing_key
    decision, exp, sig = signed
    if key is None or not verify(key, approval_id, decision, exp, sig):
        raise ApiError(401, "the link's signature is not valid")
    if exp <= time.time():
        raise ApiError(410, "this link has expired")
    return decision


# ---------------------------------------------------------------- the pages a signed link opens

PAGE_HEADERS = {
    # the link is a credential: keep it out of caches and out of Referer headers; and never framed, so no
    # other site can dress the one button up as something else
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
HTML_TYPES = ("text/html", "application/xhtml+xml")
VERBS = {"approve": "Approve", "deny": "Deny"}


def _accepts_html(request: web.Request) -> bool:
    """Whether the client asks for a page (a browser does) rather than JSON; ``*/*`` asks for neither."""
    html_q = json_q = 0.0
    for item in request.headers.get("Accept", "").split(","):
        media, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media in HTML_TYPES:
            html_q = max(html_q, q)
        elif media == "application/json":
            json_q = max(json_q, q)
    return html_q > 0 and html_q >= json_q


async def _from_page(request: web.Request) -> bool:
    """Whether the POST is the confirmation page's button (its form names itself), whatever it accepts."""
    if request.content_type != "application/x-www-form-urlencoded":
        return False
    try:
        form = await read_form(request)
    except ApiError:
        return False
    return form.get("via") == "page"


def _page(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    response.headers.update(PAGE_HEADERS)
    return response


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts is not None else ""


def _shown(approval: ApprovalRecord) -> dict[str, Any]:
    """What a page shows of an approval (the template escapes every value)."""
    public = approval_public(approval)
    return {
        "tool": approval.tool,
        "target": public["command"] or public["path"],
        "agent": public["agent"],
        "policy": approval.policy,
        "requested_by": approval.requested_by,
        "message": approval.user_input,
        "expires": _when(approval.expires_at),
        "status": approval.status,
    }


def yes_no(approval: ApprovalRecord) -> bool:
    """A hold answered by approve or deny alone: the only kind a link's button can resolve."""
    return approval.kind == "approval" and field_ids(approval.form) == ["decision"]


def _ended(approval: ApprovalRecord, now: float) -> tuple[str, str] | None:
    """(headline, sentence) for an approval that no longer waits; None while it does."""
    if approval.status == "expired" or (approval.status == PENDING and approval.expires_at <= now):
        return "Expired", "This request expired before anyone decided. Nothing was run."
    if approval.status == PENDING:
        return None
    by = f" by {approval.resolved_by}" if approval.resolved_by else ""
    via = f" via {approval.surface.replace('_', ' ')}" if approval.surface else ""
    at = f" at {_when(approval.resolved_at)}" if approval.resolved_at else ""
    return f"Already {approval.status}", f"This request was already {approval.status}{by}{via}{at}."


async def _error_page(request: web.Request, approval_id: str, exc: ApiError | MeshError) -> web.Response:
    """A signed link's failure as a page. Only a link whose signature held (a 410, a 400) is told anything
    about its approval."""
    status = exc.status
    approval = None
    if status == 401:
        headline, note = "This link is not valid", "The link is incomplete or was changed. Nothing was done."
    elif status == 404:
        headline, note = "Request not found", "There is no such request. Nothing was done."
    elif status == 410:
        approval = await find_approval(request.app[MESH].store, approval_id)
        ended = _ended(approval, request.app[MESH].clock()) if approval is not None else None
        if ended is not None:
            headline, note = ended
        else:
            headline = "This link has expired"
            note = "Nothing was done. The request may still be waiting: decide in the dashboard."
    else:
        headline, note = "Nothing was done", exc.message[:1].upper() + exc.message[1:] + "."
    context = {"headline": headline, "note": note, "status": status, "approval": approval and _shown(approval)}
    return _page(request, "link_error.html", context, status=status)


@routes.get("/v1/approvals/{id}/resolve")
async def confirm_page(request: web.Request) -> web.Response:
    """What a signed link opens: a page with one button. A GET never resolves (mail scanners fetch links)."""
    approval_id = request.match_info["id"]
    try:
        signed = _signed(request)
        if signed is None:
            raise ApiError(401, "this page needs a signed link")
        decision = _check_link(request, approval_id, signed)
        approval = await find_approval(request.app[MESH].store, approval_id)
        if approval is None:
            raise ApiError(404, f"no approval {approval_id}")
    except ApiError as exc:
        if not _accepts_html(request):
            raise
        return await _error_page(request, approval_id, exc)
    verb = VERBS.get(decision, "Decide")
    ended = _ended(approval, request.app[MESH].clock())
    if ended is not None:
        headline, note = ended
    elif not yes_no(approval):
        headline = "Answer this request in the dashboard"
        note = "It asks for more than a yes or no, which a link cannot carry."
    else:
        headline, note = f"{verb} this request?", ""
    context = {
        "verb": verb,
        "decision": decision,
        "can_decide": ended is None and yes_no(approval),
        "headline": headline,
        "note": note,
        "approval": _shown(approval),
        "action": str(request.rel_url),
    }
    return _page(request, "confirm.html", context)


@routes.post("/v1/approvals/{id}/resolve")
async def resolve_approval(request: web.Request) -> web.Response:
    if "sig" in request.query:
        return await _resolve_by_link(request)
    link = _link(request)
    if link.exp is not None or link.decision is not None:  # half a signed link is no link
        raise ApiError(401, "the link's signature is not valid")
    approval_id = request.match_info["id"]
    mesh = request.app[MESH]
    principal = bearer(request)
    body = parse(ApprovalResolve, await read_object(request))
    approved = body.approved
    persist = body.persist and approved  # a denial never writes a rule
    if persist and not principal.is_admin:
        raise ApiError(403, "persisting a rule needs the admin role", field="persist")
    resolution: dict[str, Any] = {"decision": "approve" if approved else "deny"}
    if body.reason is not None:
        resolution["reason"] = body.reason
    if body.arguments is not None:
        resolution["arguments"] = body.arguments
    req = ResolveRequest(
        ref=approval_id,
        resolution=resolution,
        surface="api",
        principal=principal,
        resolved_by=body.resolved_by,
    )
    if persist:
        # checked before resolving, so a call that cannot become a rule is not approved half-way
        found = await find_approval(mesh.store, approval_id)
        if found is not None and found.tenant == principal.tenant and persist_config(found) is None:
            raise ApiError(400, "persist needs a tool call with one exact command or path", field="persist")
    outcome = await _resolve(request, req)
    persisted = False
    if persist and outcome.approval.status == "approved":
        # a rule only from a hold this approval let through: one approval short of a quorum persists nothing
        await mesh.approvals.persist_rule(outcome.approval, principal.sub)
        persisted = True
    return json_response(_answer(outcome, persisted))


async def _resolve_by_link(request: web.Request) -> web.Response:
    """A signed link's POST: JSON for an API client, a page for a browser (the confirmation page's button, or
    any client that asks for HTML), failures included."""
    approval_id = request.match_info["id"]
    as_page = _accepts_html(request) or await _from_page(request)
    try:
        signed = _signed(request)
        if signed is None:  # not reached: called only for a URL with a signature
            raise ApiError(401, "the link's signature is not valid")
        decision = _check_link(request, approval_id, signed)
        if "persist" in request.query:
            raise ApiError(400, "a signed link can never persist a rule", field="persist")
        body = parse(SignedLinkResolve, await _link_body(request))
        if body.approved is not None and body.approved != (decision == "approve"):
            raise ApiError(401, "the link's signature does not cover that decision")
        req = ResolveRequest(
            ref=approval_id,
            resolution={"decision": decision},
            surface="signed_link",
            preauthorized=True,
            resolved_by=body.resolved_by or "signed-link",
        )
        outcome = await _resolve(request, req)
    except (ApiError, MeshError) as exc:
        if not as_page:
            raise
        return await _error_page(request, approval_id, exc)
    if not as_page:
        return json_response(_answer(outcome, False))
    approved = outcome.decision == "approve"
    if approved:
        note = f"The request was approved and the agent went ahead; its task is now {outcome.new_state}."
    else:
        note = f"The request was denied and nothing was run; the task is now {outcome.new_state}."
    context = {
        "headline": "Approved" if approved else "Denied",
        "tone": "good" if approved else "bad",
        "note": note,
        "approval": _shown(outcome.approval),
    }
    return _page(request, "done.html", context)


async def _resolve(request: web.Request, req: ResolveRequest) -> Outcome:
    try:
        return await request.app[MESH].resolver.resolve(req)
    except Conflict as exc:
        raise Gone(f"{exc.message} (a replay?)") from None
    except NotFound:
        raise ApiError(404, f"no approval {req.ref}") from None


def _answer(outcome: Outcome, persisted: bool) -> dict[str, Any]:
    return {
        "id": outcome.approval.id,
        "status": outcome.approval.status,
        "approved": outcome.decision == "approve",
        "persisted": persisted,
        "task_state": outcome.new_state,
        "approvals_required": outcome.approval.approvals_required,
        "approvals": list(outcome.approval.approvals),
    }


async def _link_body(request: web.Request) -> dict[str, Any]:
    """A signed link's POST needs no body (the confirmation page's button sends an empty form); one may
    carry ``resolved_by``, and is read only to refuse what a link cannot do."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await read_form(request)
        return {k: v for k, v in form.items() if k in ("persist", "resolved_by")}
    return await read_object(request, allow_empty=True)


@routes.post("/v1/approvals/bulk-resolve")
async def bulk_resolve(request: web.Request) -> web.Response:
    principal = bearer(request)
    body = parse(BulkResolve, await read_object(request))
    ids = await request.app[MESH].approvals.bulk_resolve(
        principal, body.run_id, body.action, body.resolved_by, body.ids
    )
    return json_response({"resolved": len(ids), "ids": ids})
