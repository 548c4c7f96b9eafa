"""Prometheus metrics for both apps, on the default registry (``GET /metrics`` exposes them).

Counters count what this process did since it started (the usual Prometheus model: sum over replicas);
the pending and audit-head gauges are read from the store on every scrape, so every replica reports the same number.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from mesh.store import Store

log = logging.getLogger("airlock.metrics")

STARTED_AT = time.time()

PENDING_APPROVALS = Gauge("airlock_pending_approvals", "Approvals and input requests waiting for a person")
DECISIONS = Counter("airlock_policy_decisions_total", "Policy decisions made, by enforcement", ["enforcement"])
RESOLUTIONS = Counter(
    "airlock_resolutions_total",
    "Held actions that ended, by outcome and the surface that ended them",
    ["outcome", "surface"],
)
PARTIAL_APPROVALS = Counter(
    "airlock_partial_approvals_total",
    "Approvals of holds that need several approvers, given before the last one needed, by surface",
    ["surface"],
)
ESCALATIONS = Counter("airlock_escalations_total", "Holds still pending at their policy's escalate_after")
DECISIONS_PRUNED = Counter(
    "airlock_decision_actions_pruned_total", "Decisions' kept actions dropped past --decision-retention"
)
AUDIT_HEAD_SEQ = Gauge(
    "airlock_audit_head_seq",
    "The audit trail's head: the seq of its last entry, as kept beside it (a falling value means lost entries)",
)
REQUEST_LATENCY = Histogram(
    "airlock_http_request_duration_seconds",
    "Time to answer an HTTP request, by app and route",
    ["app", "route", "method"],
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@functools.lru_cache(maxsize=1024)
def child(metric: MetricWrapperBase, *values: str) -> Any:
    """``metric.labels(*values)``, looked up once: ``labels()`` takes a lock and builds its key on every call,
    and the hot paths count on every request."""
    return metric.labels(*values)


def latency_middleware(app_name: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """Times every answered request. Streams (Server-Sent Events) are left out: their duration is how long
    the client stayed, not how long the server took."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        streamed = False
        try:
            response = await handler(request)
            streamed = not isinstance(response, web.Response)
            return response
        finally:
            if not streamed:
                child(REQUEST_LATENCY, app_name, route_of(request), request.method).observe(
                    time.perf_counter() - start
                )

    return middleware


def route_of(request: web.Request) -> str:
    """The route's template (``/v1/approvals/{id}``), never the raw path, so labels stay few."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical


async def render(store: Store, now: float | None = None) -> web.Response:
    """The exposition text, with the pending gauge refreshed from the store first."""
    try:
        pending: int | None = await store.count_pending(time.time() if now is None else now)
    except Exception:
        log.warning("could not count pending approvals for /metrics", exc_info=True)
        pending = None
    if pending is not None:
        PENDING_APPROVALS.set(pending)
    try:
        head = await store.audit_head()
    except Exception:
        log.warning("could not read the audit head for /metrics", exc_info=True)
    else:
        AUDIT_HEAD_SEQ.set(head.seq if head else 0)
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
