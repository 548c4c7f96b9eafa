"""What the dashboard's templates show, built from the store's records (no HTML here: Jinja escapes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from a2ui import DECISION_FIELD
from mesh.approvals.api import approval_public
from mesh.store import ApprovalRecord, AuditRecord, Store, iso

HISTORY_LIMIT = 200
AUDIT_SCAN_BATCH = 1000
HISTORY_KINDS = frozenset({"approval.resolved", "approval.expired"})
INPUT_TYPES = {"text": "text", "email": "email", "password": "password", "number": "number"}


@dataclass
class FieldView:
    id: str
    type: str  # text, email, password, number, checkbox, select
    label: str
    required: bool
    description: str = ""
    placeholder: str = ""
    default: Any = None
    options: list[dict[str, str]] = field(default_factory=list)
    min: Any = None
    max: Any = None
    max_length: int | None = None


@dataclass
class CardView:
    id: str
    task_id: str
    kind: str
    tool: str | None
    agent: str | None
    policy: str | None
    message: str
    requested_by: str
    run_id: str | None
    command: str | None
    path: str | None
    created_at: str | None
    expires_at: str | None
    expires_epoch: float
    title: str
    description: str
    fields: list[FieldView]
    decisions: list[dict[str, str]] | None  # the decision's options, as buttons; None: one Submit button


def _field_view(raw: dict[str, Any]) -> FieldView:
    kind = raw.get("type", "text")
    options = [{"value": o["value"], "label": o.get("label") or o["value"]} for o in raw.get("options") or []]
    if kind == "action":  # an action field other than the decision: a choice like a select
        kind = "select"
    default = raw.get("default")
    return FieldView(
        id=raw["id"],
        type=kind if kind in ("checkbox", "select") else INPUT_TYPES.get(kind, "text"),
        label=raw.get("label") or raw["id"],
        required=bool(raw.get("required", False)),
        description=raw.get("description", ""),
        placeholder=raw.get("placeholder", ""),
        default=None if kind == "password" else default,  # a password is never put back in a page
        options=options,
        min=raw.get("min"),
        max=raw.get("max"),
        max_length=raw.get("maxLength"),
    )


def card_view(approval: ApprovalRecord) -> CardView:
    public = approval_public(approval)
    props = (approval.form or {}).get("props") or {}
    fields: list[FieldView] = []
    decisions: list[dict[str, str]] | None = None
    for raw in props.get("fields") or []:
        if raw.get("id") == DECISION_FIELD and raw.get("type") == "action":
            decisions = [{"value": o["value"], "label": o.get("label") or o["value"]} for o in raw["options"]]
        else:
            fields.append(_field_view(raw))
    return CardView(
        id=approval.id,
        task_id=approval.task_id,
        kind=approval.kind,
        tool=approval.tool,
        agent=public["agent"],
        policy=approval.policy,
        message=approval.user_input,
        requested_by=approval.requested_by,
        run_id=approval.run_id,
        command=public["command"],
        path=public["path"],
        created_at=iso(approval.created_at),
        expires_at=iso(approval.expires_at),
        expires_epoch=approval.expires_at,
        title=props.get("title") or "",
        description=props.get("description") or "",
        fields=fields,
        decisions=decisions,
    )


@dataclass
class HistoryRow:
    approval_id: str
    at: str | None
    who: str
    surface: str
    outcome: str
    policy: str


def _history_row(entry: AuditRecord) -> HistoryRow:
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    if entry.kind == "approval.expired":
        return HistoryRow(entry.subject, iso(entry.at), "", "", "expired", str(detail.get("policy") or ""))
    who = str(detail.get("resolved_by") or entry.actor)
    return HistoryRow(
        approval_id=entry.subject,
        at=iso(entry.at),
        who=who,
        surface=str(detail.get("surface") or ""),
        outcome=str(detail.get("status") or ""),
        policy=str(detail.get("policy") or ""),
    )


async def history_rows(store: Store, tenant: str, *, outcome: str, surface: str, who: str) -> list[HistoryRow]:
    """The tenant's resolved and expired approvals from the audit trail, newest first, filtered (at most
    ``HISTORY_LIMIT``). The trail is read in order from its start: fine for a deployment's first years,
    an index by tenant and kind is the next step when it is not."""
    rows: list[HistoryRow] = []
    after = 0
    while batch := await store.audit_entries(after=after, limit=AUDIT_SCAN_BATCH):
        after = batch[-1].seq
        for entry in batch:
            if entry.tenant != tenant or entry.kind not in HISTORY_KINDS:
                continue
            row = _history_row(entry)
            if outcome and row.outcome != outcome:
                continue
            if surface and row.surface != surface:
                continue
            if who and who.lower() not in row.who.lower():
                continue
            rows.append(row)
    rows.reverse()
    return rows[:HISTORY_LIMIT]


def policy_rows(policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": p["name"],
            "description": p.get("description") or "",
            "enforcement": p["enforcement"],
            "plugin": (p.get("evaluator") or {}).get("plugin", ""),
            "enabled": p.get("enabled", True),
        }
        for p in policies
    ]
