"""Admin routes: ``/internal/policies/*``, ``/internal/plugins``, ``/internal/channels/*``,
``/internal/channel-types``, ``/internal/outbox``."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import require
from gateway.errors import json_response, query_int, read_object
from gateway.keys import MESH
from mesh.policy import available_plugins

routes = web.RouteTableDef()


@routes.post("/internal/policies/new")
async def create_policy(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    policy = await request.app[MESH].policy_admin.create_policy(
        principal.tenant, principal.sub, await read_object(request)
    )
    return json_response(policy, status=201)


@routes.post("/internal/policies/update")
async def update_policy(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    policy = await request.app[MESH].policy_admin.update_policy(
        principal.tenant, principal.sub, await read_object(request)
    )
    return json_response(policy)


@routes.get("/internal/policies")
async def list_policies(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    return json_response({"policies": await request.app[MESH].policy_admin.list_policies(principal.tenant)})


@routes.post("/internal/policies/delete")
async def delete_policy(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    body = await read_object(request)
    await request.app[MESH].policy_admin.delete_policy(principal.tenant, principal.sub, body.get("policy_id"))
    return json_response({"ok": True, "policy_id": body["policy_id"]})


@routes.get("/internal/plugins")
async def list_plugins(request: web.Request) -> web.Response:
    require(request, "admin")
    plugins = [
        {"name": name, "description": cls.description, "config_schema": cls.config_schema}
        for name, cls in sorted(available_plugins().items())
    ]
    return json_response({"plugins": plugins})


@routes.post("/internal/channels/new")
async def create_channel(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    channel = await request.app[MESH].channel_admin.create_channel(
        principal.tenant, principal.sub, await read_object(request)
    )
    return json_response(channel, status=201)


@routes.get("/internal/channels")
async def list_channels(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    return json_response({"channels": await request.app[MESH].channel_admin.list_channels(principal.tenant)})


@routes.post("/internal/channels/delete")
async def delete_channel(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    body = await read_object(request)
    await request.app[MESH].channel_admin.delete_channel(principal.tenant, principal.sub, body.get("name"))
    return json_response({"ok": True, "name": body["name"]})


@routes.post("/internal/channels/update")
async def update_channel(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    channel = await request.app[MESH].channel_admin.update_channel(
        principal.tenant, principal.sub, await read_object(request)
    )
    return json_response(channel)


@routes.get("/internal/channel-types")
async def channel_types(request: web.Request) -> web.Response:
    require(request, "admin")
    return json_response({"types": request.app[MESH].channel_admin.channel_types()})


@routes.get("/internal/outbox")
async def list_outbox(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    state = request.query.get("state", "pending")
    after = query_int(request.query.get("after"), "after", 0)
    limit = query_int(request.query.get("limit"), "limit", 100, minimum=1, maximum=500)
    return json_response(
        await request.app[MESH].outbox_admin.list_entries(principal.tenant, state, after=after, limit=limit)
    )


@routes.post("/internal/outbox/{id}/retry")
async def retry_outbox(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    row_id = query_int(request.match_info["id"], "id", 0, minimum=1)
    await request.app[MESH].outbox_admin.retry(principal.tenant, principal.sub, row_id)
    return json_response({"ok": True, "id": row_id})
