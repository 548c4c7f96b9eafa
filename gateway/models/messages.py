"""The messages API's bodies: ``POST /messages/pending`` and ``POST /messages/{id}/resolve``."""

from __future__ import annotations

from pydantic import ConfigDict, Field, RootModel, StrictStr

from gateway.models.base import Body, Integer, Query, Scalar


class PendingRequest(Body):
    """Filters and paging; the whole body may be omitted."""

    # the default is not validated: left out, the caller's tenant; null is refused (not a string)
    tenant_id: StrictStr = Field(None, description="Must be the caller's tenant (403 otherwise); defaults to it.")
    session_id: StrictStr | None = Field(None, description="Only holds of this A2A context.")
    limit: Integer = Field(50, ge=1, le=500)
    offset: Integer = Field(0, ge=0, le=1_000_000_000)


class Resolution(RootModel[dict[str, Scalar]]):
    """A resolution: values keyed by form field id."""

    model_config = ConfigDict(
        strict=True,
        frozen=True,
        json_schema_extra={
            "description": (
                "Values keyed by form field id. The decision field takes approve or deny; other fields take "
                "strings, numbers or booleans as their form type says."
            ),
            "examples": [{"decision": "approve"}],
        },
    )


class ResolveRequest(Body):
    resolution: Resolution
    callback_token: StrictStr | None = Field(
        None,
        description="From a channel notification; resolves without a JWT when no Authorization header is sent.",
    )


MODELS = (PendingRequest, ResolveRequest)
QUERIES: dict[tuple[str, str], type[Query]] = {}
