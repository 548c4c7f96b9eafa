"""Watching a deployment: ``GET /healthz``, ``GET /v1/status`` and the audit trail (``GET /v1/audit``).

``/metrics`` answers Prometheus text and the event stream Server-Sent Events: neither has a JSON body to model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, WithJsonSchema

from gateway.errors import MAX_ID
from gateway.models.admin import MAX_LIMIT, PAGE_DEFAULT, NullableString, Timestamp
from gateway.models.base import Answer, Integer, Query, QueryInt

Count = Annotated[StrictInt, Field(ge=0)]  # (Integer's validator would hide the bound from the schema)


class Health(Answer):
    status: Literal["ok", "unavailable"]


class StoreInfo(Answer):
    engine: Literal["sqlite", "postgresql"]


class AuditHead(Answer):
    head_seq: Count = Field(description="The whole trail's last entry (0 before the first).")
    head_hash: NullableString = Field(description="That entry's hash; null before the first.")


class ServerStatus(Answer):
    """Server status and health (admin): counts are the caller's tenant's, the audit head the whole trail's."""

    version: str
    started_at: Timestamp
    uptime_s: float = Field(ge=0)
    store: StoreInfo
    tenant: str
    pending: Count = Field(description="Holds waiting for a person.")
    policies: Count
    decisions: dict[str, Count] = Field(description="Policy decisions since the trail began, by enforcement.")
    resolutions: dict[str, Count] = Field(description="Holds resolved since the trail began, by outcome.")
    audit: AuditHead


class AuditQuery(Query):
    after: QueryInt = Field(0, ge=0, le=MAX_ID, description="Entries after this sequence number.")
    limit: QueryInt = Field(PAGE_DEFAULT, ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")


class EventsQuery(Query):
    """The event stream's query; the ``Last-Event-ID`` header, which browsers send when they reconnect, is read
    first and is no part of it."""

    last_event_id: QueryInt = Field(
        None, ge=0, le=MAX_ID, description="Resume after this event id (for clients that cannot set headers)."
    )


class AuditEntry(Answer):
    seq: Integer = Field(ge=1)
    at: Timestamp
    kind: str
    actor: str
    subject: str
    detail: Annotated[dict[str, Any], WithJsonSchema({"type": "object"})]
    hash: str = Field(pattern="^[0-9a-f]{64}$")
    prev_hash: str = Field(pattern="^[0-9a-f]{64}$")


class AuditPage(Answer):
    entries: list[AuditEntry]
    next_after: Annotated[
        int | None,
        WithJsonSchema(
            {"type": ["integer", "null"], "description": "Pass as after= for the next page; null when there is none."}
        ),
    ]


MODELS = (Health, ServerStatus, AuditPage)
QUERIES: dict[tuple[str, str], type[Query]] = {
    ("get", "/v1/audit"): AuditQuery,
    ("get", "/v1/events/stream"): EventsQuery,
}
