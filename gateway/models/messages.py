"""The messages API's bodies and answers: ``POST /messages/pending`` and ``POST /messages/{id}/resolve``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from pydantic import WithJsonSchema as Schema

from gateway.models.approvals import (
    MESSAGE_LIMIT,
    Deciding,
    FormRef,
    Reply,
    TaskRef,
    TaskStateRef,
    Timestamp,
    ref,
)
from gateway.models.base import Body, Integer, Query, Scalar
from mesh.approvals.resolve import REASON_MAX


class PendingRequest(Body):
    """Filters and paging; the whole body may be omitted."""

    # the default is not validated: left out, the caller's tenant; null is refused (not a string)
    tenant_id: StrictStr = Field(None, description="Must be the caller's tenant (403 otherwise); defaults to it.")
    session_id: StrictStr | None = Field(None, description="Only holds of this A2A context.")
    limit: Integer = Field(50, ge=1, le=500)
    offset: Integer = Field(0, ge=0, le=1_000_000_000)


class Resolution(BaseModel):
    """A resolution: values keyed by form field id, and beside them a reason and, where the hold's policy
    allows edits, the call's new arguments."""

    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="allow",
        json_schema_extra={
            "description": (
                "Values keyed by form field id. The decision field takes approve or deny; other fields take "
                "strings, numbers or booleans as their form type says. reason (any decision; shown to the agent "
                "on a denial) and arguments (approve only, where the policy has allow_edits) go beside them."
            ),
            "examples": [
                {"decision": "approve"},
                {"decision": "deny", "reason": "not during the freeze"},
                {"decision": "approve", "arguments": {"table": "records_2019"}},
            ],
        },
    )
    __pydantic_extra__: dict[str, Scalar]  # type: ignore[assignment]

    reason: StrictStr = Field(None, max_length=REASON_MAX, description="Why: the agent is told it on a denial.")
    arguments: dict[str, Any] = Field(
        None, description="The tool call's new arguments (approve only; the policy must have allow_edits)."
    )

    def values(self) -> dict[str, Any]:
        """What the resolve path takes: the form's values with the reason and arguments given beside them."""
        return self.model_dump(exclude_unset=True)


class ResolveRequest(Body):
    resolution: Resolution
    callback_token: StrictStr | None = Field(
        None,
        description="From a channel notification; resolves without a JWT when no Authorization header is sent.",
    )


ISO = "UTC, ISO 8601 with milliseconds and Z."


class PendingMessage(Deciding):
    """One pending hold as /messages/pending lists it."""

    message_id: str = Field(description="The held task's id (what /messages/{id}/resolve takes).")
    approval_id: str
    kind: Literal["approval", "input"] = Field(
        description="approval for a policy hold, input for an agent's request for values."
    )
    session_id: str | None
    tenant_id: str
    state: Annotated[str | None, Schema({"oneOf": [ref("TaskState").json_schema, {"type": "null"}]})]
    user_input: str = Field(
        max_length=MESSAGE_LIMIT,
        description=f"What the agent said, cut at {MESSAGE_LIMIT} characters (message_truncated).",
    )
    message_truncated: bool = Field(description="Whether user_input was cut; GET /v1/approvals/{id} has all of it.")
    task_data: Annotated[
        dict[str, Any],
        Schema({"oneOf": [ref("Task").json_schema, {"type": "object", "maxProperties": 0}]}),
    ]
    policy: str | None
    tool: str | None
    form: FormRef
    expires_at: Timestamp = Field(description=ISO)
    created_at: Timestamp = Field(description=ISO)
    updated_at: Timestamp = Field(description=ISO)


class PendingList(Reply):
    messages: list[PendingMessage]
    total: int = Field(ge=0)
    limit: int = Field(ge=1, le=500)
    offset: int = Field(ge=0, le=1_000_000_000)


class ResolveResult(Reply):
    ok: Literal[True]
    message_id: str
    approval_id: str
    decision: Literal["approve", "deny", "submit"]
    new_state: TaskStateRef
    task: TaskRef


MODELS = (PendingRequest, ResolveRequest, PendingMessage, PendingList, ResolveResult)
QUERIES: dict[tuple[str, str], type[Query]] = {}
