"""The one way an approval record is made, whether a policy held a call, an agent asked for values, or a
person's earlier yes approved it on the spot."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson

from a2ui import approval_form
from mesh.credentials import callback_token, token_hash
from mesh.policy import Action
from mesh.store import PENDING, ApprovalRecord, TaskRecord
from mesh.wire.models import new_id

APPROVAL = "approval"
INPUT = "input"


def new_approval(
    task: TaskRecord,
    *,
    kind: str,
    action: Action,
    form: dict[str, Any],
    requested_by: str,
    requester_roles: Sequence[str],
    user_input: str,
    now: float,
    expires_at: float,
    callback_key: bytes | None,
    policy: str | None = None,
    channels: Sequence[str] = (),
    run_id: str | None = None,
    distinct_approver: bool = False,
    approvals_required: int = 1,
    escalate_at: float | None = None,
    escalate_to: Sequence[str] = (),
    allow_edits: bool = False,
) -> ApprovalRecord:
    """A pending approval of ``task``. Only the hash of its callback token is kept (none without a key: a
    record approved at creation has nothing left to resolve); a request for values has no call to match
    a retry against, so no fingerprint."""
    approval_id = new_id()
    return ApprovalRecord(
        id=approval_id,
        task_id=task.id,
        tenant=task.tenant,
        kind=kind,
        status=PENDING,
        policy=policy,
        tool=action.tool,
        action=action.to_dict(),
        form=form,
        requested_by=requested_by,
        requester_roles=list(requester_roles),
        session_id=task.context_id,
        user_input=user_input,
        channels=list(channels),
        token_hash=token_hash(callback_token(callback_key, approval_id)) if callback_key else None,
        fingerprint=action.fingerprint() if kind == APPROVAL else None,
        expires_at=expires_at,
        created_at=now,
        updated_at=now,
        run_id=run_id,
        second_pair=distinct_approver,
        approvals_required=approvals_required,
        escalate_at=escalate_at,
        escalate_to=list(escalate_to),
        allow_edits=allow_edits and kind == APPROVAL,
    )


def escalation_time(escalate_after_s: int | None, now: float, timeout_s: float) -> float | None:
    """When a hold made ``now`` escalates: never when its policy asks for none, or when the hold would
    expire first (a hold's timeout may be shorter than the policy's when the server caps it)."""
    if escalate_after_s is None or escalate_after_s >= timeout_s:
        return None
    return now + escalate_after_s


@functools.lru_cache(maxsize=512)
def _form_json(tool: str | None, fields: bytes) -> bytes:
    return orjson.dumps(approval_form(tool, orjson.loads(fields)))


def held_form(tool: str | None, fields: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The approval form of a hold, built and checked once per tool and set of fields (a policy's fields
    seldom change, and building and checking them is a measurable part of a hold). Each hold gets a copy of
    its own, so nothing one task does to its form reaches another."""
    return orjson.loads(_form_json(tool, orjson.dumps(list(fields))))
