"""Admin routes for downstream A2A agents: ``/internal/agents/*``."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import require
from gateway.errors import json_response, read_object
from gateway.keys import MESH

routes = web.RouteTableDef()


@routes.post("/internal/agents/new")
async def create_agent(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    agent = await request.app[MESH].agent_admin.add_agent(principal.tenant, principal.sub, await read_object(request))
    return json_response(agent, status=201)


@routes.get("/internal/agents")
async def get_agents(request: web.Request) -> web.Response:
    require(request, "admin")
    return json_response({"agents": await request.app[MESH].agent_admin.list_agents()})


@routes.post("/internal/agents/delete")
async def remove_agent(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    body = await read_object(request)
    await request.app[MESH].agent_admin.delete_agent(principal.tenant, principal.sub, body.get("name"))
    return json_response({"ok": True, "name": body["name"]})
