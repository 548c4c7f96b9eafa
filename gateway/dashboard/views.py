"""What the dashboard's templates show, built from the store's records (no HTML here: Jinja escapes)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from a2ui import DECISION_FIELD, field_ids
from mesh.approvals.api import approval_public
from mesh.approvals.records import APPROVAL
from mesh.approvals.resolve import REASON_MAX
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
    approvals_required: int = 1
    approvers: list[str] = field(default_factory=list)  # who approved so far, in order (a quorum hold)
    approved_by_me: bool = False  # the person viewing the page is one of them: their Approve is disabled
    escalated_at: str | None = None
    reason_box: bool = False  # a "Reason" textarea sent with a denial
    editable: bool = False  # an "Edit arguments" JSON editor sent with an approval
    arguments_json: str = ""  # the held call's arguments, pretty-printed for the editor
    reason_max: int = REASON_MAX  # the resolve path's limit, as the textarea's maxlength

    @property
    def quorum(self) -> bool:
        return self.approvals_required > 1

    @property
    def waiting_for(self) -> int:
        return max(0, self.approvals_required - len(self.approvers))


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


def _editable(approval: ApprovalRecord, own_ids: set[str]) -> bool:
    """Whether the resolve path would take new arguments for this hold, so the editor is only offered where
    it can work: a policy hold of a tool call under ``allow_edits``, needing one approver (a quorum is
    approved as it was asked), whose form has no field of its own named ``arguments``."""
    return (
        approval.allow_edits
        and approval.kind == APPROVAL
        and bool(approval.tool)
        and approval.approvals_required <= 1
        and "arguments" not in own_ids
    )


def _arguments_json(approval: ApprovalRecord) -> str:
    """The call's arguments as the agent sent them (not form values: nothing a person typed, nothing masked),
    pretty-printed so a person can edit them in a textarea."""
    arguments = approval.action.get("arguments") or {}
    return json.dumps(arguments, indent=2, ensure_ascii=False, default=str)


def card_view(approval: ApprovalRecord, viewer: str | None = None) -> CardView:
    """A card of the queue as ``viewer`` (the signed-in subject) sees it: their own approval of a quorum hold
    disables their Approve button, as the server would answer 409 to a second one."""
    public = approval_public(approval)
    props = (approval.form or {}).get("props") or {}
    fields: list[FieldView] = []
    decisions: list[dict[str, str]] | None = None
    for raw in props.get("fields") or []:
        if raw.get("id") == DECISION_FIELD and raw.get("type") == "action":
            decisions = [{"value": o["value"], "label": o.get("label") or o["value"]} for o in raw["options"]]
        else:
            fields.append(_field_view(raw))
    own_ids = set(field_ids(approval.form or {}))
    approvers = [str(a.get("by") or "") for a in approval.approvals]
    editable = _editable(approval, own_ids)
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
        approvals_required=approval.approvals_required,
        approvers=approvers,
        approved_by_me=viewer is not None and approval.approved_by(viewer),
        escalated_at=iso(approval.escalated_at),
        # a form's own field named "reason" keeps that name as one of its values (the resolve path's rule)
        reason_box=any(d["value"] == "deny" for d in decisions or []) and "reason" not in own_ids,
        editable=editable,
        arguments_json=_arguments_json(approval) if editable else "",
    )


@dataclass
class HistoryRow:
    approval_id: str
    at: str | None
    who: str
    surface: str
    outcome: str
    policy: str
    reason: str = ""
    edited: bool = False
    changed: list[str] = field(default_factory=list)  # names of the arguments an edit changed (never values)
    approvers: list[str] = field(default_factory=list)  # everyone who approved a quorum hold, in order

    def names(self, text: str) -> bool:
        """Whether ``text`` (the Who filter) is part of the resolver's name or of any approver's."""
        needle = text.lower()
        return any(needle in name.lower() for name in [self.who, *self.approvers])


def _history_row(entry: AuditRecord) -> HistoryRow:
    """A row from an audit entry: the audit detail is what History may show (a reason, an edit's changed
    argument names, the approvers), never the values a person typed or the arguments themselves."""
    detail = entry.detail if isinstance(entry.detail, dict) else {}
    if entry.kind == "approval.expired":
        return HistoryRow(entry.subject, iso(entry.at), "", "", "expired", str(detail.get("policy") or ""))
    who = str(detail.get("resolved_by") or entry.actor)
    edit = detail.get("edit") if isinstance(detail.get("edit"), dict) else None
    approvers = detail.get("approvals") if isinstance(detail.get("approvals"), list) else []
    return HistoryRow(
        approval_id=entry.subject,
        at=iso(entry.at),
        who=who,
        surface=str(detail.get("surface") or ""),
        outcome=str(detail.get("status") or ""),
        policy=str(detail.get("policy") or ""),
        reason=str(detail.get("reason") or ""),
        edited=edit is not None,
        changed=[str(n) for n in (edit or {}).get("changed") or []],
        approvers=[str(a) for a in approvers],
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
            if who and not row.names(who):
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
