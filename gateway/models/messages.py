"""The messages API's bodies: ``POST /messages/pending`` and ``POST /messages/{id}/resolve``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

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


MODELS = (PendingRequest, ResolveRequest)
QUERIES: dict[tuple[str, str], type[Query]] = {}
