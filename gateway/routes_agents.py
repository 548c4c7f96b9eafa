"""Admin routes for downstream A2A agents: ``/internal/agents/*``, parsed with :mod:`gateway.models.admin`."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import require
from gateway.errors import json_response, read_object
from gateway.keys import MESH
from gateway.models.admin import AgentCreate, AgentDelete, PageQuery, encode_cursor
from gateway.models.base import parse

routes = web.RouteTableDef()


@routes.post("/internal/agents/new")
async def create_agent(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    body = parse(AgentCreate, await read_object(request))
    agent = await request.app[MESH].agent_admin.add_agent(principal.tenant, principal.sub, body.model_dump())
    return json_response(agent, status=201)


@routes.get("/internal/agents")
async def get_agents(request: web.Request) -> web.Response:
    require(request, "admin")
    query = parse(PageQuery, request.query)
    page, after = await request.app[MESH].agent_admin.page_agents(limit=query.limit, after=query.cursor)
    return json_response({"agents": page, "next_cursor": encode_cursor(after) if after is not None else None})


@routes.post("/internal/agents/delete")
async def remove_agent(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    body = parse(AgentDelete, await read_object(request))
    await request.app[MESH].agent_admin.delete_agent(principal.tenant, principal.sub, body.name)
    return json_response({"ok": True, "name": body.name})
