"""The approvals API: ``/v1/approvals`` — list with run groups, create, resolve (by Bearer token
or a signed link), bulk resolve. Same approvals as ``/messages/*``; a resolution through either is
final for both. This surface answers a late resolution with 410 (a replay), as its clients expect."""

from __future__ import annotations

import html
import time
from typing import Any

from aiohttp import web

from gateway.auth import bearer, require
from gateway.errors import ApiError, json_response, read_object
from gateway.keys import MESH
from mesh.approvals.api import approval_public, persist_config
from mesh.approvals.resolve import ResolveRequest, find_approval
from mesh.credentials import verify
from mesh.errors import Conflict, Gone, NotFound
from mesh.store import PENDING

routes = web.RouteTableDef()
LIST_LIMIT = 10_000


@routes.get("/v1/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    principal = require(request, "approver", "admin")
    mesh = request.app[MESH]
    run_id = request.query.get("run_id") or None
    now = mesh.clock()
    rows, _ = await mesh.store.list_pending(
        principal.tenant, session_id=None, now=now, limit=LIST_LIMIT, offset=0, run_id=run_id
    )
    groups = await mesh.store.run_groups(principal.tenant, now)
    if run_id is not None:
        groups = [g for g in groups if g[0] == run_id]
    return json_response(
        {
            "approvals": [approval_public(a) for a in rows],
            "run_groups": [{"run_id": rid, "count": len(ids), "ids": ids} for rid, ids in groups],
        }
    )


@routes.get("/v1/approvals/{id}")
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
    return json_response(approval_public(approval))


@routes.post("/v1/approvals")
async def create_approval(request: web.Request) -> web.Response:
    principal = require(request, "agent", "admin")
    created, answer = await request.app[MESH].approvals.create_approval(principal, await read_object(request))
    return json_response(answer, status=201 if created else 200)


def _signed(request: web.Request) -> tuple[str, int, str] | None:
    """(decision, exp, sig) when the URL carries a signature."""
    q = request.query
    if "sig" not in q:
        return None
    try:
        exp = int(q.get("exp", ""))
    except ValueError:  # also a number too long to convert
        raise ApiError(401, "the link's signature is not valid") from None
    return q.get("decision", ""), exp, q["sig"]


def _check_link(request: web.Request, approval_id: str, signed: tuple[str, int, str]) -> str:
    key = request.app[MESH].config.signing_key
    decision, exp, sig = signed
    if key is None or not verify(key, approval_id, decision, exp, sig):
        raise ApiError(401, "the link's signature is not valid")
    if exp <= time.time():
        raise ApiError(410, "this link has expired")
    return decision


@routes.get("/v1/approvals/{id}/resolve")
async def confirm_page(request: web.Request) -> web.Response:
    """What a signed link opens: a page with one button. A GET never resolves (mail scanners fetch links)."""
    approval_id = request.match_info["id"]
    signed = _signed(request)
    if signed is None:
        raise ApiError(401, "this page needs a signed link")
    decision = _check_link(request, approval_id, signed)
    approval = await find_approval(request.app[MESH].store, approval_id)
    if approval is None:
        raise ApiError(404, f"no approval {approval_id}")
    verb = "Approve" if decision == "approve" else "Deny"
    public = approval_public(approval)
    target = public["command"] or public["path"] or ""
    what = html.escape(f"{approval.tool or 'action'} {target}".strip())
    reason = html.escape(approval.user_input or "")
    action = html.escape(str(request.rel_url), quote=True)
    if approval.status == PENDING:
        form = f"<form method='post' action='{action}'><button type='submit'>{verb}</button></form>"
    else:
        form = "<p>This approval is no longer waiting for a decision.</p>"
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><meta name='referrer' content='no-referrer'>"
        "<title>Airlock approval</title></head><body>"
        f"<h1>{verb} this request?</h1><p><code>{what}</code></p><p>{reason}</p>"
        f"<p>Agent: {html.escape(str(public['agent'] or ''))}</p>"
        f"<p>Status: {html.escape(approval.status)}</p>{form}</body></html>"
    )
    # the link is a credential: keep it out of caches and out of Referer headers
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return web.Response(text=body, content_type="text/html", headers=headers)


@routes.post("/v1/approvals/{id}/resolve")
async def resolve_approval(request: web.Request) -> web.Response:
    approval_id = request.match_info["id"]
    mesh = request.app[MESH]
    signed = _signed(request)
    if signed is not None:
        decision = _check_link(request, approval_id, signed)
        body = await _link_body(request)
        if "persist" in request.query or body.get("persist") not in (None, False):
            raise ApiError(400, "a signed link can never persist a rule", field="persist")
        if "approved" in body and body["approved"] != (decision == "approve"):
            raise ApiError(401, "the link's signature does not cover that decision")
        req = ResolveRequest(
            ref=approval_id,
            resolution={"decision": decision},
            surface="signed_link",
            preauthorized=True,
            resolved_by=_resolver(body) or "signed-link",
        )
        persist = False
    else:
        principal = bearer(request)
        body = await read_object(request)
        approved = body.get("approved")
        if not isinstance(approved, bool):
            raise ApiError(400, "approved must be true or false", field="approved")
        persist = body.get("persist", False)
        if not isinstance(persist, bool):
            raise ApiError(400, "persist must be true or false", field="persist")
        persist = persist and approved  # a denial never writes a rule
        if persist and not principal.is_admin:
            raise ApiError(403, "persisting a rule needs the admin role", field="persist")
        req = ResolveRequest(
            ref=approval_id,
            resolution={"decision": "approve" if approved else "deny"},
            surface="api",
            principal=principal,
            resolved_by=_resolver(body),
        )
        if persist:
            # checked before resolving, so a call that cannot become a rule is not approved half-way
            found = await find_approval(mesh.store, approval_id)
            if found is not None and found.tenant == principal.tenant and persist_config(found) is None:
                raise ApiError(400, "persist needs a tool call with one exact command or path", field="persist")
    try:
        outcome = await mesh.resolver.resolve(req)
    except Conflict as exc:
        raise Gone(f"{exc.message} (a replay?)") from None
    except NotFound:
        raise ApiError(404, f"no approval {approval_id}") from None
    persisted = False
    if persist and outcome.decision == "approve":
        assert req.principal is not None  # a signed link never persists
        await mesh.approvals.persist_rule(outcome.approval, req.principal.sub)
        persisted = True
    return json_response(
        {
            "id": outcome.approval.id,
            "status": outcome.approval.status,
            "approved": outcome.decision == "approve",
            "persisted": persisted,
            "task_state": outcome.new_state,
        }
    )


async def _link_body(request: web.Request) -> dict[str, Any]:
    """A signed link's POST needs no body (the confirmation page's button sends an empty form); one may
    carry ``resolved_by``, and is read only to refuse what a link cannot do."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.post()
        except ValueError:
            raise ApiError(400, "request body could not be read") from None
        return {k: v for k, v in form.items() if k in ("persist", "resolved_by") and isinstance(v, str)}
    return await read_object(request, allow_empty=True)


def _resolver(body: dict[str, Any]) -> str | None:
    value = body.get("resolved_by")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ApiError(400, "resolved_by must be a non-empty string of at most 200 characters", field="resolved_by")
    return value


@routes.post("/v1/approvals/bulk-resolve")
async def bulk_resolve(request: web.Request) -> web.Response:
    principal = bearer(request)
    body = await read_object(request)
    ids = await request.app[MESH].approvals.bulk_resolve(
        principal, body.get("run_id"), body.get("action"), body.get("resolved_by"), body.get("ids")
    )
    return json_response({"resolved": len(ids), "ids": ids})
