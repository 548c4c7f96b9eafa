"""Watching a deployment: the event stream, status, metrics and the audit trail.

``GET /v1/events/stream`` reads the durable event log, not the in-process bus: the bus only wakes the
stream up early, so an event is never lost or reordered, and ``Last-Event-ID`` resumes exactly after the
last event a client saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import orjson
from aiohttp import web

from gateway.auth import require
from gateway.errors import json_response, query_int
from gateway.keys import MESH, VERIFIER
from gateway.models.base import parse
from gateway.models.observe import AuditQuery, EventsQuery
from mesh import metrics
from mesh.core.events import Event
from mesh.store import Store, iso
from mesh.store.base import AuditRecord, EventRecord

log = logging.getLogger("airlock.gateway.observe")

routes = web.RouteTableDef()

HEARTBEAT_DEFAULT_S = 15.0
HEARTBEAT_S = web.AppKey("events_heartbeat_s", float)
"""Seconds between heartbeat comments on an idle event stream (default 15)."""

STREAM_KINDS = frozenset(
    {
        "approval.created",
        "approval.progress",
        "approval.escalated",
        "approval.resolved",
        "approval.expired",
        "task.updated",
    }
)
APPROVER_KINDS = frozenset(
    {"approval.created", "approval.progress", "approval.escalated", "approval.resolved", "approval.expired"}
)
"""What an approver (not an admin) sees on the stream: the tenant's approvals coming and going."""
STREAMS = web.AppKey("event_streams", set)
"""The open streams' queues, told to finish when the app shuts down."""
CLOSING = Event(kind="stream.closing", tenant="", subject="")
REPLAY_BATCH = 500
AUDIT_SCAN_BATCH = 1000

# keys that could carry what a person typed or an action's arguments; never sent on a stream
REDACTED_KEYS = frozenset({"values", "arguments", "resolution", "form", "task", "action", "password", "secret"})


# ---------------------------------------------------------------------------------------------- events


def redact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in REDACTED_KEYS}


def sse_event(record: EventRecord) -> bytes:
    body = {
        "id": record.seq,
        "kind": record.kind,
        "at": iso(record.at),
        "subject": record.subject,
        "data": redact(record.data),
    }
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (record.seq, record.kind.encode(), orjson.dumps(body))


def last_event_id(request: web.Request) -> int | None:
    """Where a reconnecting client resumes: the ``Last-Event-ID`` header (blank: from now), else the query."""
    header = request.headers.get("Last-Event-ID")
    if header is not None and header.strip():
        return query_int(header, "Last-Event-ID", 0)
    return parse(EventsQuery, request.query).last_event_id


def setup(app: web.Application) -> None:
    """Add the routes and what the event stream needs (call before the app starts)."""
    app.add_routes(routes)
    app[HEARTBEAT_S] = HEARTBEAT_DEFAULT_S
    app[STREAMS] = set()
    app.on_shutdown.append(_close_streams)


async def _close_streams(app: web.Application) -> None:
    for queue in list(app.get(STREAMS, ())):
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(CLOSING)


async def _wait(queue: asyncio.Queue[Event], tenant: str, timeout: float, kinds: frozenset[str]) -> str:
    """``"event"`` when an event of ``tenant`` arrived within ``timeout``, else ``"idle"``; ``"closing"``
    when the app is shutting down."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "idle"
        try:
            async with asyncio.timeout(remaining):  # wait_for may swallow a cancel (Python 3.11)
                event = await queue.get()
        except TimeoutError:
            return "idle"
        if event is CLOSING:
            return "closing"
        if event.tenant == tenant and event.kind in kinds:
            while not queue.empty():  # one re-read covers everything queued so far
                if queue.get_nowait() is CLOSING:
                    return "closing"
            return "event"


@routes.get("/v1/events/stream")
async def events_stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events of the caller's tenant: each event's ``id:`` is its seq in the event log. An admin
    sees every kind; an approver the approvals' events (the dashboard's queue follows them)."""
    principal = require(request, "admin", "approver")
    kinds = STREAM_KINDS if principal.is_admin or request.app[VERIFIER] is None else APPROVER_KINDS
    mesh = request.app[MESH]
    tenant = principal.tenant
    heartbeat = float(request.app.get(HEARTBEAT_S, HEARTBEAT_DEFAULT_S))
    after = last_event_id(request)
    streams: set[asyncio.Queue[Event]] = request.app.get(STREAMS, set())
    async with mesh.events.subscribe() as queue:  # subscribed before reading: no wake-up falls in between
        if after is None:
            after = await mesh.store.latest_event_seq(tenant)  # before the headers go out: nothing after is missed
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await resp.prepare(request)
        streams.add(queue)
        try:
            await resp.write(b"retry: 2000\n: connected\n\n")
            while True:
                rows = await mesh.store.events_after(tenant, after, REPLAY_BATCH)
                for row in rows:
                    after = row.seq
                    if row.kind in kinds:
                        await resp.write(sse_event(row))
                if len(rows) == REPLAY_BATCH:
                    continue
                woke = await _wait(queue, tenant, heartbeat, kinds)
                if woke == "closing":
                    break
                if woke == "idle":
                    await resp.write(b": heartbeat\n\n")  # fails once the client has gone, ending the stream
        except (ConnectionError, RuntimeError):
            return resp  # the client left
        except Exception:
            log.exception("event stream of tenant %s failed", tenant)  # headers are out: end the stream
        finally:
            streams.discard(queue)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await resp.write_eof()
    return resp


# ---------------------------------------------------------------------------------------------- status


@dataclass
class _Tally:
    """Decision and resolution counts per tenant, read from the audit trail once and then incrementally."""

    after: int = 0
    decisions: dict[str, Counter[str]] = field(default_factory=dict)
    resolutions: dict[str, Counter[str]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def add(self, entry: AuditRecord) -> None:
        detail = entry.detail if isinstance(entry.detail, dict) else {}
        if entry.kind == "policy.decision":
            self.decisions.setdefault(entry.tenant, Counter())[str(detail.get("enforcement"))] += 1
        elif entry.kind in ("policy.allowed", "grant.used"):
            self.decisions.setdefault(entry.tenant, Counter())["allow"] += 1
            self.resolutions.setdefault(entry.tenant, Counter())["approved"] += 1
        elif entry.kind == "approval.resolved":
            self.resolutions.setdefault(entry.tenant, Counter())[str(detail.get("status"))] += 1
        elif entry.kind == "approval.expired":
            self.resolutions.setdefault(entry.tenant, Counter())["expired"] += 1

    async def catch_up(self, store: Store) -> None:
        async with self.lock:
            while rows := await store.audit_entries(after=self.after, limit=AUDIT_SCAN_BATCH):
                for row in rows:
                    self.add(row)
                self.after = rows[-1].seq


_tallies: weakref.WeakKeyDictionary[Store, _Tally] = weakref.WeakKeyDictionary()


def version() -> str:
    try:
        return metadata.version("airlock")
    except metadata.PackageNotFoundError:
        return "unknown"


@routes.get("/v1/status")
async def status(request: web.Request) -> web.Response:
    principal = require(request, "admin")
    mesh = request.app[MESH]
    store = mesh.store
    tally = _tallies.setdefault(store, _Tally())
    await tally.catch_up(store)
    _, pending = await store.list_pending(principal.tenant, session_id=None, now=mesh.clock(), limit=1, offset=0)
    policies = await store.list_policies(principal.tenant)
    head = await store.audit_head()  # the whole trail's head (one chain serves every tenant)
    return json_response(
        {
            "version": version(),
            "started_at": iso(metrics.STARTED_AT),
            "uptime_s": round(time.time() - metrics.STARTED_AT, 3),
            "store": {"engine": store.engine},
            "tenant": principal.tenant,
            "pending": pending,
            "policies": len(policies),
            "decisions": dict(tally.decisions.get(principal.tenant, Counter())),
            "resolutions": dict(tally.resolutions.get(principal.tenant, Counter())),
            "audit": {"head_seq": head.seq if head else 0, "head_hash": head.hash if head else None},
        }
    )


# ---------------------------------------------------------------------------------------------- metrics


@routes.get("/metrics")
async def prometheus(request: web.Request) -> web.Response:
    mesh = request.app[MESH]
    return await metrics.render(mesh.store, mesh.clock())


# ---------------------------------------------------------------------------------------------- audit


def audit_public(entry: AuditRecord) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": iso(entry.at),
        "kind": entry.kind,
        "actor": entry.actor,
        "subject": entry.subject,
        "detail": entry.detail,
        "hash": entry.hash,
        "prev_hash": entry.prev_hash,
    }


@routes.get("/v1/audit")
async def audit_page(request: web.Request) -> web.Response:
    """The caller's tenant's audit entries after ``after``, oldest first; ``next_after`` pages on. ``limit`` is
    at most 500 (``AuditQuery``): a larger one is a 400, so a client learns the bound instead of a short page."""
    principal = require(request, "admin")
    store = request.app[MESH].store
    query = parse(AuditQuery, request.query)
    after, limit = query.after, query.limit
    found: list[AuditRecord] = []
    cursor = after
    while len(found) <= limit:  # one entry past the page says whether there is a next one
        rows = await store.audit_entries(after=cursor, limit=AUDIT_SCAN_BATCH)
        if not rows:
            break
        found.extend(r for r in rows if r.tenant == principal.tenant)
        cursor = rows[-1].seq
    page = found[:limit]
    more = len(found) > limit
    return json_response(
        {"entries": [audit_public(e) for e in page], "next_after": page[-1].seq if more and page else None}
    )
