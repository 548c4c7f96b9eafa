"""Input requests: an agent that ends its turn in ``input-required`` with an A2UI Form is asking a person
for values (credentials, a choice, settings). The mesh records that as a pause of kind ``input`` — the
same row, listing, race and expiry as a policy hold — and hands the answer back to the agent as the
task's next turn.
"""

from __future__ import annotations

import logging
from typing import Any

from a2ui import FormError, find_form, redact, sensitive_fields, validate_form
from mesh.approvals.announce import announce
from mesh.approvals.records import INPUT, new_approval
from mesh.core.config import MeshConfig
from mesh.delivery.channels.base import INPUT_REQUESTED
from mesh.policy import Action
from mesh.store import ApprovalRecord, TaskRecord, Tx
from mesh.wire.models import Message, TaskState

log = logging.getLogger("airlock.input")


class InputRequests:
    def __init__(self, config: MeshConfig) -> None:
        self._config = config

    def build(self, task: TaskRecord, parts: list[dict[str, Any]], now: float) -> ApprovalRecord | None:
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
        props = form.get("props", {})
        return new_approval(
            task,
            kind=INPUT,
            action=Action(agent=task.agent, tool=None, arguments={}),
            form=form,
            requested_by=task.owner,  # the person the agent asks: the one who sent the message
            requester_roles=[],
            user_input=str(props.get("title") or props.get("description") or "Input required"),
            now=now,
            expires_at=now + self._config.approval_timeout_s,
            callback_key=self._config.callback_key,
        )

    async def record(self, tx: Tx, task: TaskRecord, parts: list[dict[str, Any]], now: float) -> ApprovalRecord | None:
        """Inside the turn's transaction: write the input request (if the reply makes one), its event and
        notifications to the tenant's channels that take input requests."""
        request = self.build(task, parts, now)
        if request is None:
            return None
        # announced on the channels that opted in to requests for values; they also hear how it ended
        request.channels = [c.name for c in await tx.channels(task.tenant) if c.config.get("input_requests")]
        await tx.insert_approval(request)
        await tx.log_event(
            tenant=task.tenant,
            kind="approval.created",
            subject=task.id,
            data={"task_id": task.id, "state": task.state, "approval_id": request.id, "kind": INPUT},
            now=now,
        )
        await announce(tx, request, INPUT_REQUESTED, now)
        airlock = {**(task.metadata.get("airlock") or {}), "inputRequestId": request.id}
        task.metadata = {**task.metadata, "airlock": airlock}
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
