"""The Rampart-style surface: ``/v1/approvals`` — list with run groups, create, resolve (by Bearer token
or a signed link), bulk resolve. Same approvals as ``/messages/*``; a resolution through either is
final for both. This surface answers a late resolution with 410 (a replay), as its clients expect."""

from __future__ import annotations

import html
import time
from typing import Any

from aiohttp import web

from gateway.auth import bearer, require
from gateway.errors import ApiError, json_response, read_object
from gateway.keys import MESH, SIGNING_KEY
from gateway.signing import DECISIONS, verify
from mesh.approvals_api import approval_public
from mesh.errors import Conflict, Gone, NotFound
from mesh.resolve import ResolveRequest, find_approval

routes = web.RouteTableDef()


@routes.get("/v1/approvals")
async def list_approvals(request: web.Request) -> web.Response:
    principal = require(request, "approver", "admin")
    mesh = request.app[MESH]
    run_id = request.query.get("run_id") or None
    now = mesh.clock()
    rows, _ = await mesh.store.list_pending(principal.tenant, session_id=None, now=now, limit=1000, offset=0,
                                            run_id=run_id)
    groups = await mesh.store.run_groups(principal.tenant, now)
    if run_id is not None:
        groups = [g for g in groups if g[0] == run_id]
    return json_response({
        "approvals": [approval_public(a) for a in rows],
        "run_groups": [{"run_id": rid, "count": len(ids), "ids": ids} for rid, ids in groups],
    })


@routes.get("/v1/approvals/{id}")
async def get_approval(request: web.Request) -> web.Response:
    principal = require(request, "approver", "admin", "agent")
    approval = await find_approval(request.app[MESH], request.match_info["id"])
    if approval is None or approval.tenant != principal.tenant:
        raise ApiError(404, f"no approval {request.match_info['id']}")
    return json_response(approval_public(approval))


@routes.post("/v1/approvals")
async def create_approval(request: web.Request) -> web.Response:
    principal = require(request, "agent", "admin")
    created, answer = await request.app[MESH].create_approval(principal, await read_object(request))
    return json_response(answer, status=201 if created else 200)


def _signed(request: web.Request) -> tuple[str, int, str] | None:
    """(decision, exp, sig) when the URL carries a signature."""
    q = request.query
    if "sig" not in q:
        return None
    try:
        exp = int(q.get("exp", ""))
    except ValueError:
        raise ApiError(401, "the link's signature is not valid") from None
    return q.get("decision", ""), exp, q["sig"]


def _check_link(request: web.Request, approval_id: str, signed: tuple[str, int, str]) -> str:
    key = request.app[SIGNING_KEY]
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
    approval = await find_approval(request.app[MESH], approval_id)
    if approval is None:
        raise ApiError(404, f"no approval {approval_id}")
    verb = "Approve" if decision == "approve" else "Deny"
    what = html.escape(f"{approval.tool or 'action'}: {approval.user_input}")
    action = html.escape(str(request.rel_url))
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Airlock approval</title></head><body>"
        f"<h1>{verb} this request?</h1><p>{what}</p><p>Status: {html.escape(approval.status)}</p>"
        f"<form method='post' action='{action}'><button type='submit'>{verb}</button></form></body></html>"
    )
    return web.Response(text=body, content_type="text/html")


@routes.post("/v1/approvals/{id}/resolve")
async def resolve_approval(request: web.Request) -> web.Response:
    approval_id = request.match_info["id"]
    mesh = request.app[MESH]
    signed = _signed(request)
    if signed is not None:
        decision = _check_link(request, approval_id, signed)
        raw = await request.read()
        body: dict[str, Any] = {}
        if raw.strip() and request.content_type == "application/json":
            body = await read_object(request)
        if "approved" in body and body["approved"] != (decision == "approve"):
            raise ApiError(401, "the link's signature does not cover that decision")
        if body.get("persist"):
            raise ApiError(400, "a signed link can never persist a rule", field="persist")
        req = ResolveRequest(ref=approval_id, resolution={"decision": decision}, surface="signed_link",
                             preauthorized=True, resolved_by=_resolver(body) or "signed-link")
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
        if persist and approved and not principal.is_admin:
            raise ApiError(403, "persisting a rule needs the admin role", field="persist")
        req = ResolveRequest(ref=approval_id, resolution={"decision": "approve" if approved else "deny"},
                             surface="api", principal=principal, resolved_by=_resolver(body) or "api")
    try:
        outcome = await mesh.resolve(req)
    except Conflict as exc:
        raise Gone(f"{exc.message} (a replay?)") from None
    except NotFound:
        raise ApiError(404, f"no approval {approval_id}") from None
    persisted = False
    if persist and outcome.decision == "approve":
        await mesh.persist_rule(outcome.approval, req.principal.sub if req.principal else "api")
        persisted = True
    return json_response({"id": outcome.approval.id, "status": outcome.approval.status,
                          "approved": outcome.decision == "approve", "persisted": persisted,
                          "task_state": outcome.new_state})


def _resolver(body: dict[str, Any]) -> str | None:
    value = body.get("resolved_by")
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ApiError(400, "resolved_by must be a non-empty string", field="resolved_by")
    return value


@routes.post("/v1/approvals/bulk-resolve")
async def bulk_resolve(request: web.Request) -> web.Response:
    principal = bearer(request)
    body = await read_object(request)
    ids = await request.app[MESH].bulk_resolve(principal, body.get("run_id"), body.get("action"),
                                                body.get("resolved_by"), body.get("ids"))
    return json_response({"resolved": len(ids), "ids": ids})


__all__ = ["DECISIONS", "routes"]
