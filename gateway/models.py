"""Pydantic models of the REST request bodies: each route parses its body with one, and the OpenAPI
document's request schemas are generated from them (``python -m gateway.models`` writes them into
``schemas/openapi.json``; ``tests/gateway/test_openapi.py`` fails when the committed document differs), so
what the server takes and what the document says cannot drift.

Routes not yet moved here still parse by hand (see docs/reliability.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)
from pydantic import ValidationError as PydanticError

from gateway.errors import ApiError


def _integral(value: Any) -> Any:
    """JSON's ``292.0`` is the integer 292 (JSON Schema says so too); any other float stays a float."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _scalar(value: Any) -> Any:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError("must be a string, a number, a boolean or null")
    return value


Integer = Annotated[StrictInt, BeforeValidator(_integral)]
Scalar = Annotated[Any, AfterValidator(_scalar), WithJsonSchema({"type": ["string", "number", "boolean", "null"]})]


class Body(BaseModel):
    """A request body: types as JSON has them (no ``"5"`` for 5, no ``true`` for 1)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


# ---------------------------------------------------------------------------------------------- messages


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


MODELS: tuple[type[Body], ...] = (PendingRequest, ResolveRequest)
M = TypeVar("M", bound=Body)


def parse(model: type[M], body: dict[str, Any]) -> M:
    """``body`` as ``model``; the first problem is a 400 naming its field."""
    try:
        return model.model_validate(body)
    except PydanticError as exc:
        first = exc.errors()[0]
        loc = first["loc"]
        where = ".".join(str(p) for p in loc)
        # a resolution's keys are form field ids, and a form's errors name the field id alone (as a2ui does)
        field = str(loc[1]) if len(loc) > 1 and loc[0] == "resolution" else str(loc[0]) if loc else None
        message = first["msg"].removeprefix("Value error, ")
        raise ApiError(400, f"{where or 'body'}: {message}", field=field) from None


# ---------------------------------------------------------------------------------------------- the document


def _tidy(node: Any) -> Any:
    """pydantic's JSON Schema as the document spells it: no titles, no null defaults, ``anyOf`` of plain
    types as a list of types."""
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tidy(v) for k, v in node.items() if k != "title" and not (k == "default" and v is None)}
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and all(isinstance(b, dict) and set(b) == {"type"} for b in any_of):
        out.pop("anyOf")
        types = [b["type"] for b in any_of]
        if "number" in types and "integer" in types:  # every integer is a number
            types.remove("integer")
        out = {"type": types if len(types) > 1 else types[0], **{k: v for k, v in out.items() if k != "type"}}
    return out


def request_schemas() -> dict[str, Any]:
    """The document's request schemas, by component name, generated from the models."""
    schemas: dict[str, Any] = {}
    for model in MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = _tidy(sub)
        schemas[model.__name__] = _tidy(schema)
    return schemas


def write(path: str) -> None:
    with open(path) as f:
        doc = json.load(f)
    doc["components"]["schemas"].update(request_schemas())
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    from gateway.openapi import SPEC_PATH

    write(str(SPEC_PATH))
