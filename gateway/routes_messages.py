"""The messages API: ``/messages/pending`` lists what waits for a person, ``/messages/{id}/resolve`` resolves
it by task id, with a Bearer token or the single-use ``callback_token`` a notification carried."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.auth import bearer, has_bearer, require, surface_of
from gateway.errors import ApiError, json_response, read_object
from gateway.keys import MESH
from gateway.models.approvals import clip
from gateway.models.base import parse
from gateway.models.messages import PendingRequest
from gateway.models.messages import ResolveRequest as ResolveBody
from mesh.approvals.api import decision_public
from mesh.approvals.resolve import ResolveRequest
from mesh.store import ApprovalRecord, iso

routes = web.RouteTableDef()


@routes.post("/messages/pending")
async def pending(request: web.Request) -> web.Response:
    principal = require(request, "approver", "admin")
    req = parse(PendingRequest, await read_object(request, allow_empty=True))
    tenant = principal.tenant if req.tenant_id is None else req.tenant_id
    if tenant != principal.tenant:
        raise ApiError(403, "tenant_id is not the caller's tenant", field="tenant_id")
    session_id, limit, offset = req.session_id, req.limit, req.offset
    mesh = request.app[MESH]
    rows, total = await mesh.store.list_pending(
        tenant, session_id=session_id, now=mesh.clock(), limit=limit, offset=offset
    )
    tasks = await mesh.store.get_tasks(tenant, sorted({r.task_id for r in rows}))
    return json_response(
        {
            "messages": [_pending_row(r, tasks[r.task_id].to_wire() if r.task_id in tasks else {}) for r in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }
    )


def _pending_row(approval: ApprovalRecord, task: dict[str, Any]) -> dict[str, Any]:
    """One listed hold; a long ``user_input`` is cut (``message_truncated``), GET /v1/approvals/{id} has it all."""
    user_input, truncated = clip(approval.user_input)
    return {
        "message_id": approval.task_id,
        "approval_id": approval.id,
        "kind": approval.kind,
        "session_id": approval.session_id,
        "tenant_id": approval.tenant,
        "state": task.get("status", {}).get("state"),
        "user_input": user_input,
        "message_truncated": truncated,
        "task_data": task,
        "policy": approval.policy,
        "tool": approval.tool,
        "form": approval.form,
        "expires_at": iso(approval.expires_at),
        "created_at": iso(approval.created_at),
        "updated_at": iso(approval.updated_at),
        **decision_public(approval),
    }


@routes.post("/messages/{id}/resolve")
async def resolve(request: web.Request) -> web.Response:
    body = parse(ResolveBody, await read_object(request))
    resolution, token = body.resolution.values(), body.callback_token
    if token is not None and not has_bearer(request):
        req = ResolveRequest(
            ref=request.match_info["id"], resolution=resolution, surface="callback", callback_token=token
        )
    else:
        req = ResolveRequest(
            ref=request.match_info["id"], resolution=resolution, surface=surface_of(request), principal=bearer(request)
        )
    outcome = await request.app[MESH].resolver.resolve(req)
    return json_response(
        {
            "ok": True,
            "message_id": outcome.approval.task_id,
            "approval_id": outcome.approval.id,
            "decision": outcome.decision,
            "new_state": outcome.new_state,
            "task": outcome.task,
        }
    )
