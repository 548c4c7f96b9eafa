"""Input requests: an agent that ends its turn in ``input-required`` with an A2UI Form is asking a person
for values (credentials, a choice, settings). The mesh records that as a pause of kind ``input`` — the
same row, listing, race and expiry as a policy hold — and hands the answer back to the agent as the
task's next turn.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from a2ui import FormError, find_form, redact, sensitive_fields, validate_form
from mesh.models import Message, MessageSendParams, TaskState, new_id
from mesh.store import PENDING, ApprovalRecord, TaskRecord, Tx
from mesh.tokens import callback_token, token_hash

if TYPE_CHECKING:
    from mesh.auth import Principal
    from mesh.service import Mesh

log = logging.getLogger("airlock.input")

INPUT = "input"


def build_input_request(mesh: Mesh, task: TaskRecord, parts: list[dict[str, Any]], now: float) -> ApprovalRecord | None:
    """The input request a reply makes, when it ends in ``input-required`` carrying a well-formed Form."""
    if task.state != TaskState.INPUT_REQUIRED:
        return None
    form = find_form(parts)
    if form is None:
        return None
    try:
        form = validate_form(form)
    except FormError as exc:
        log.warning(
            "agent %s sent a form that is not valid (%s); the task waits without an input request", task.agent, exc
        )
        return None
    approval_id = new_id()
    props = form.get("props", {})
    return ApprovalRecord(
        id=approval_id,
        task_id=task.id,
        tenant=task.tenant,
        kind=INPUT,
        status=PENDING,
        policy=None,
        tool=None,
        action={"agent": task.agent, "tool": None, "arguments": {}, "text": "", "context": {}},
        form=form,
        requested_by=task.owner,  # the person the agent asks: the one who sent the message
        requester_roles=[],
        session_id=task.context_id,
        user_input=str(props.get("title") or props.get("description") or "Input required"),
        channels=[],
        token_hash=token_hash(callback_token(mesh.config.callback_key, approval_id)),
        fingerprint=None,
        expires_at=now + mesh.config.approval_timeout_s,
        created_at=now,
        updated_at=now,
    )


async def record_input_request(
    mesh: Mesh, tx: Tx, task: TaskRecord, parts: list[dict[str, Any]], now: float
) -> ApprovalRecord | None:
    """Inside the turn's transaction: write the input request (if the reply makes one), its event and
    notifications to the tenant's channels that take input requests."""
    request = build_input_request(mesh, task, parts, now)
    if request is None:
        return None
    await tx.insert_approval(request)
    await tx.log_event(
        tenant=task.tenant,
        kind="approval.created",
        subject=task.id,
        data={"task_id": task.id, "state": task.state, "approval_id": request.id, "kind": INPUT},
        now=now,
    )
    for channel in await tx.channels(task.tenant):
        if channel.config.get("input_requests"):
            await tx.enqueue(
                "notify",
                {"tenant": task.tenant, "channel": channel.name, "approval_id": request.id, "event": "input.requested"},
                not_before=now,
            )
    task.metadata = {**task.metadata, "airlock": {**(task.metadata.get("airlock") or {}), "inputRequestId": request.id}}
    return request


def answer_message(task: TaskRecord, approval: ApprovalRecord, values: dict[str, Any]) -> tuple[Message, dict]:
    """The answer as the task's next user turn: one DataPart of values, its metadata naming the form (and
    which of its fields are sensitive, so an agent that keeps the message knows what to mask).
    Returns the message the agent gets (values in clear, once) and the copy history keeps (masked)."""
    metadata = {
        "airlock": {
            "inputRequest": approval.id,
            "form": approval.form.get("props", {}).get("title"),
            "sensitive": sorted(sensitive_fields(approval.form)),
        }
    }
    message = Message(
        role="user",
        parts=[{"kind": "data", "data": values, "metadata": {"inputRequest": approval.id}}],
        task_id=task.id,
        context_id=task.context_id,
        metadata={**metadata, "agent": task.agent},
    )
    stored = message.dump()
    stored["parts"][0]["data"] = redact(approval.form, values)
    return message, stored


async def continue_with_answer(
    mesh: Mesh, task: TaskRecord, approval: ApprovalRecord, values: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    """After the answer won its write: the agent's next turn, with the values."""
    message, stored = answer_message(task, approval, values)
    return await mesh._turn(
        principal, task, message, MessageSendParams(message=message), mesh.clock(), new=False, stored_user_msg=stored
    )
