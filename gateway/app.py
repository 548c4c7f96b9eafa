"""The gateway application factory: routes for people and admins over one mesh."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway import (
    openapi,
    routes_admin,
    routes_agents,
    routes_approvals,
    routes_messages,
    routes_observe,
    routes_slack,
)
from gateway.auth import session_middleware
from gateway.dashboard import routes as dashboard
from gateway.errors import errors_middleware, json_response
from gateway.keys import MESH, VERIFIER
from gateway.limits import gateway_limits
from mesh.auth import TokenVerifier
from mesh.delivery.notify import notification_worker
from mesh.delivery.outbox import worker_ctx
from mesh.metrics import latency_middleware
from mesh.wiring import Mesh

MAX_BODY = 1024 * 1024


async def healthz(request: web.Request) -> web.Response:
    ok = await request.app[MESH].store.ping()
    return json_response({"status": "ok" if ok else "unavailable"}, status=200 if ok else 503)


def create_gateway_app(mesh: Mesh, verifier: TokenVerifier | None, *, notifications: bool = True) -> web.Application:
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[
            gateway_limits(mesh, verifier, MAX_BODY),
            latency_middleware("gateway"),
            errors_middleware,
            session_middleware,
        ],
    )
    app[MESH] = mesh
    app[VERIFIER] = verifier
    aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("gateway", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    app.add_routes(routes_messages.routes)
    app.add_routes(routes_admin.routes)
    app.add_routes(routes_agents.routes)
    app.add_routes(routes_approvals.routes)
    routes_observe.setup(app)
    routes_slack.setup(app)
    dashboard.setup(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi.openapi)
    if notifications:
        app.cleanup_ctx.append(
            worker_ctx(lambda: notification_worker(mesh.store, mesh.clock, mesh.events, mesh.config))
        )
    return app
