"""Admin routes: ``/internal/policies/*`` (dry-run included), ``/internal/plugins``, ``/internal/channels/*``,
``/internal/channel-types``, ``/internal/outbox``.

Bodies and query strings are parsed with the models of :mod:`gateway.models.admin` (a 400 names the field);
the mesh then checks what needs it (a policy's channels and plugin config, a channel's config for its type)."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import require
from gateway.errors import json_response, query_int, read_object
from gateway.keys import MESH
from gateway.models.admin import (
    ChannelCreate,
    ChannelDelete,
    ChannelUpdate,
    OutboxQuery,
    PageQuery,
    PolicyCreate,
    PolicyDelete,
    PolicyDryRun,
    PolicyUpdate,
    encode_cursor,
)
from gateway.models.base import parse
from mesh.policy import available_plugins

routes = web.RouteTableDef()


def next_cursor(after: str | None) -> str | None:
    return encode_cursor(after) if after is not None else None


@routes.post("/internal/policies/new")
async def create_policy(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    body = parse(PolicyCreate, await read_object(request))
    policy = await request.app[MESH].policy_admin.create_policy(
        principal.tenant, principal.sub, body.model_dump(exclude_unset=True)
    )
    return json_response(policy, status=201)


@routes.post("/internal/policies/update")
async def update_policy(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    body = parse(PolicyUpdate, await read_object(request))
    policy = await request.app[MESH].policy_admin.update_policy(
        principal.tenant, principal.sub, body.model_dump(exclude_unset=True)
    )
    return json_response(policy)


@routes.post("/internal/policies/dry-run")
async def dry_run_policy(request: web.Request) -> web.Response:
    """What a policy (new, or in place of one) would have decided of the tenant's recorded calls; nothing is
    saved."""
    principal = require(request, "admin")
    body = parse(PolicyDryRun, await read_object(request))
    result = await request.app[MESH].policy_admin.dry_run(
        principal.tenant,
        body.policy.model_dump(exclude_unset=True),
        replaces=body.replaces,
        since=body.since,
        limit=body.limit,
    )
    return json_response(result)


@routes.get("/internal/policies")
async def list_policies(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    query = parse(PageQuery, request.query)
    page, after = await request.app[MESH].policy_admin.page_policies(
        principal.tenant, limit=query.limit, after=query.cursor
    )
    return json_response({"policies": page, "next_cursor": next_cursor(after)})


@routes.post("/internal/policies/delete")
async def delete_policy(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    body = parse(PolicyDelete, await read_object(request))
    await request.app[MESH].policy_admin.delete_policy(principal.tenant, principal.sub, body.policy_id)
    return json_response({"ok": True, "policy_id": body.policy_id})


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
    body = parse(ChannelCreate, await read_object(request))
    channel = await request.app[MESH].channel_admin.create_channel(
        principal.tenant, principal.sub, body.model_dump(exclude_unset=True)
    )
    return json_response(channel, status=201)


@routes.get("/internal/channels")
async def list_channels(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    query = parse(PageQuery, request.query)
    page, after = await request.app[MESH].channel_admin.page_channels(
        principal.tenant, limit=query.limit, after=query.cursor
    )
    return json_response({"channels": page, "next_cursor": next_cursor(after)})


@routes.post("/internal/channels/delete")
async def delete_channel(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    body = parse(ChannelDelete, await read_object(request))
    await request.app[MESH].channel_admin.delete_channel(principal.tenant, principal.sub, body.name)
    return json_response({"ok": True, "name": body.name})


@routes.post("/internal/channels/update")
async def update_channel(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    body = parse(ChannelUpdate, await read_object(request))
    channel = await request.app[MESH].channel_admin.update_channel(
        principal.tenant, principal.sub, body.model_dump(exclude_unset=True)
    )
    return json_response(channel)


@routes.get("/internal/channel-types")
async def channel_types(request: web.Request) -> web.Response:
    require(request, "admin")
    return json_response({"types": request.app[MESH].channel_admin.channel_types()})


@routes.get("/internal/outbox")
async def list_outbox(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    query = parse(OutboxQuery, request.query)
    return json_response(
        await request.app[MESH].outbox_admin.list_entries(
            principal.tenant, query.state, after=query.after, limit=query.limit
        )
    )


@routes.post("/internal/outbox/{id}/retry")
async def retry_outbox(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    row_id = query_int(request.match_info["id"], "id", 0, minimum=1)  # a path segment, not a query string
    await request.app[MESH].outbox_admin.retry(principal.tenant, principal.sub, row_id)
    return json_response({"ok": True, "id": row_id})
