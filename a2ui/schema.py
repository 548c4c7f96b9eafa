"""JSON Schema for the values a human submits for a Form.

Deriving the schema from the form keeps one source of truth: the same definition that
renders the inputs also decides which submissions are acceptable.
"""

from __future__ import annotations

from typing import Any

from a2ui.fields import EMAIL_PATTERN, is_required
from a2ui.forms import validate_form

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def _field_schema(field: dict[str, Any]) -> dict[str, Any]:
    """Schema for one field's value; email uses a pattern because ``format`` is not enforced."""
    field_type = field["type"]
    schema: dict[str, Any]
    if field_type in ("text", "password"):
        schema = {"type": "string"}
        if is_required(field):
            # Matches the client's `required` check, which treats "" as not answered.
            schema["minLength"] = 1
        if "maxLength" in field:
            schema["maxLength"] = field["maxLength"]
    elif field_type == "email":
        schema = {"type": "string", "pattern": EMAIL_PATTERN}
    elif field_type == "number":
        schema = {"type": "number"}
        if "min" in field:
            schema["minimum"] = field["min"]
        if "max" in field:
            schema["maximum"] = field["max"]
    elif field_type == "checkbox":
        schema = {"type": "boolean"}
    else:  # action, select
        schema = {"enum": [option["value"] for option in field["options"]]}
    if "label" in field:
        schema["title"] = field["label"]
    return schema


def form_to_schema(form: dict[str, Any]) -> dict[str, Any]:
    """A Draft 2020-12 schema for a resolution object of ``form``.

    Unknown keys are forbidden so a client cannot smuggle values the human never saw.
    The form is validated first (FormError if malformed) so the schema is never built
    from a definition that could not have been rendered.
    """
    fields: list[dict[str, Any]] = validate_form(form)["props"]["fields"]
    return {
        "$schema": DRAFT_2020_12,
        "type": "object",
        "properties": {field["id"]: _field_schema(field) for field in fields},
        "required": [field["id"] for field in fields if is_required(field)],
        "additionalProperties": False,
    }
