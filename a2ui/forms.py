"""Building, validating and finding approval Forms carried as A2A DataParts.

A Form is ``{"type": "Form", "props": {"title", "description", "fields": [...]}}``.
Airlock builds one for every held action and also accepts forms that agents send, so
the same validation guards both paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from a2ui.fields import (
    DECISION_FIELD,
    FIELD_TYPES,
    MASK,
    MIME_TYPE,
    FormError,
    is_sensitive,
    normalize_field,
)

__all__ = [
    "DECISION_FIELD",
    "FIELD_TYPES",
    "MASK",
    "MIME_TYPE",
    "FormError",
    "approval_form",
    "field_ids",
    "find_form",
    "form_part",
    "has_decision",
    "make_form",
    "normalize_field",
    "sensitive_fields",
    "validate_form",
]

_FORM_KEYS = frozenset({"type", "props"})
_PROPS_KEYS = frozenset({"title", "description", "fields"})


def _decision_field() -> dict[str, Any]:
    """The approve/deny buttons every approval form starts with."""
    return {
        "id": DECISION_FIELD,
        "type": "action",
        "options": [{"value": "approve", "label": "Approve"}, {"value": "deny", "label": "Deny"}],
    }


def _normalize_fields(fields: object) -> list[dict[str, Any]]:
    """Validate a field list as a whole: each field, then id uniqueness across them."""
    if not isinstance(fields, list | tuple):
        raise FormError("props.fields must be a list of fields", field="fields")
    if not fields:
        raise FormError("props.fields must contain at least one field", field="fields")
    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, field in enumerate(fields):
        normalized = normalize_field(field, where=f"fields[{index}]")
        field_id = normalized["id"]
        if field_id in seen:
            raise FormError(f"field '{field_id}' (fields[{index}].id): duplicate field id", field=field_id)
        seen.add(field_id)
        clean.append(normalized)
    return clean


def make_form(title: str, description: str, fields: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Build a validated Form; raises FormError naming the first bad or duplicate field."""
    if not isinstance(title, str):
        raise FormError("title must be a string", field="title")
    if not isinstance(description, str):
        raise FormError("description must be a string", field="description")
    return {
        "type": "Form",
        "props": {"title": title, "description": description, "fields": _normalize_fields(list(fields))},
    }


def approval_form(
    tool: str | None,
    extra_fields: Sequence[dict[str, Any]] = (),
    *,
    title: str = "Approval Required",
    description: str | None = None,
) -> dict[str, Any]:
    """The form shown for a held action: the decision buttons first, then any extra inputs.

    The decision id is reserved so an extra field can never shadow the human's verdict.
    """
    for index, field in enumerate(extra_fields):
        if isinstance(field, dict) and field.get("id") == DECISION_FIELD:
            raise FormError(
                f"field '{DECISION_FIELD}' (extra_fields[{index}].id): id is reserved for the decision",
                field=DECISION_FIELD,
            )
    if description is None:
        description = f"{tool} requires approval." if tool is not None else "This action requires approval."
    return make_form(title, description, [_decision_field(), *extra_fields])


def form_part(form: dict[str, Any]) -> dict[str, Any]:
    """Wrap a Form as an A2A DataPart tagged with the A2UI MIME type so clients render it."""
    return {"kind": "data", "data": form, "metadata": {"mimeType": MIME_TYPE}}


def validate_form(form: object) -> dict[str, Any]:
    """Check that an arbitrary (typically agent-supplied) value is a well-formed Form.

    Returns a normalized deep copy, so later mutation of the input cannot change what was
    validated.
    """
    if not isinstance(form, dict):
        raise FormError("form must be a JSON object")
    unknown = [key for key in form if key not in _FORM_KEYS]
    if unknown:
        raise FormError(f"unknown form key {unknown[0]!r}", field=str(unknown[0]))
    if form.get("type") != "Form":
        raise FormError(f"form type must be 'Form' (got {form.get('type')!r})", field="type")
    props = form.get("props")
    if not isinstance(props, dict):
        raise FormError("form props must be a JSON object", field="props")
    unknown = [key for key in props if key not in _PROPS_KEYS]
    if unknown:
        raise FormError(f"unknown props key {unknown[0]!r}", field=f"props.{unknown[0]}")
    clean: dict[str, Any] = {}
    for key in ("title", "description"):
        if key in props:
            if not isinstance(props[key], str):
                raise FormError(f"props.{key} must be a string", field=key)
            clean[key] = props[key]
    clean["fields"] = _normalize_fields(props.get("fields"))
    return {"type": "Form", "props": clean}


def find_form(parts: Sequence[object]) -> dict[str, Any] | None:
    """Return the ``data`` of the first part that carries a Form, or None.

    Parts come straight off the wire, so anything malformed is skipped, never raised on.
    A part qualifies when its data is a Form and it either declares the A2UI MIME type or
    declares none; a part explicitly tagged with another MIME type is someone else's data.
    The result is not validated: pass it to :func:`validate_form`.
    """
    if not isinstance(parts, Sequence) or isinstance(parts, str | bytes):
        return None
    for part in parts:
        if not isinstance(part, dict):
            continue
        if part.get("kind", "data") != "data":
            continue
        data = part.get("data")
        if not isinstance(data, dict) or data.get("type") != "Form":
            continue
        metadata = part.get("metadata")
        if metadata is None:
            return data
        if isinstance(metadata, dict) and metadata.get("mimeType", MIME_TYPE) == MIME_TYPE:
            return data
    return None


def _fields(form: dict[str, Any]) -> list[dict[str, Any]]:
    props = form.get("props")
    fields = props.get("fields") if isinstance(props, dict) else None
    return [field for field in fields if isinstance(field, dict)] if isinstance(fields, list) else []


def field_ids(form: dict[str, Any]) -> list[str]:
    """Field ids in display order."""
    return [field["id"] for field in _fields(form) if isinstance(field.get("id"), str)]


def sensitive_fields(form: dict[str, Any]) -> frozenset[str]:
    """Ids whose values must never be logged or shown back unmasked."""
    return frozenset(field["id"] for field in _fields(form) if is_sensitive(field) and "id" in field)


def has_decision(form: dict[str, Any]) -> bool:
    """Whether the form asks for an approve/deny verdict rather than plain input."""
    return any(field.get("id") == DECISION_FIELD and field.get("type") == "action" for field in _fields(form))
