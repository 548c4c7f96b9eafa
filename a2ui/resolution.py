"""Checking a human's submitted values against the Form they answered.

Resolutions are validated on the request path of every decision, so compiled
validators are cached per distinct form. Errors are translated into one
:class:`ResolutionError` naming a single field, because a reviewer's UI needs to
highlight one input, not parse a jsonschema report. Messages never echo submitted
values: they may be secrets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from a2ui.fields import DECISION_FIELD, MASK, FormError
from a2ui.forms import has_decision, sensitive_fields, validate_form
from a2ui.schema import form_to_schema

__all__ = ["ResolutionError", "decision_of", "redact", "validate_resolution"]


class ResolutionError(ValueError):
    """Submitted values do not fit the form; ``field`` is the offending field id, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class _Compiled:
    """Everything derived from one form that validation needs, built once per form."""

    validator: Draft202012Validator
    fields: dict[str, dict[str, Any]]
    required: tuple[str, ...]


def _canonical(form: dict[str, Any]) -> str:
    """Stable cache key: equal forms map to the same key whatever their key order."""
    try:
        return json.dumps(form, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FormError(f"form is not JSON-serializable: {exc}") from exc


@lru_cache(maxsize=256)
def _compile(canonical: str) -> _Compiled:
    form = validate_form(json.loads(canonical))
    schema = form_to_schema(form)
    return _Compiled(
        validator=Draft202012Validator(schema),
        fields={field["id"]: field for field in form["props"]["fields"]},
        required=tuple(schema["required"]),
    )


def _describe(field: dict[str, Any], error: ValidationError) -> str:
    """Human wording for a value error, derived from the field rather than the raw value."""
    name = f"field '{field['id']}'"
    field_type = field["type"]
    if field_type in ("action", "select"):
        return f"{name} must be one of: {', '.join(option['value'] for option in field['options'])}"
    if field_type == "email":
        return f"{name} must be an email address"
    if field_type == "checkbox":
        return f"{name} must be a boolean"
    if field_type == "number":
        if error.validator == "minimum":
            return f"{name} must be at least {field['min']}"
        if error.validator == "maximum":
            return f"{name} must be at most {field['max']}"
        return f"{name} must be a number"
    if error.validator == "minLength":
        return f"{name} must not be empty"
    if error.validator == "maxLength":
        return f"{name} must be at most {field['maxLength']} characters"
    return f"{name} must be a string"


def _translate(compiled: _Compiled, values: dict[Any, Any], errors: list[ValidationError]) -> ResolutionError:
    """Pick the most useful error: unknown keys, then missing fields, then the first bad value."""
    order = list(compiled.fields)
    if any(error.validator == "additionalProperties" and not error.path for error in errors):
        extra = next(key for key in values if key not in compiled.fields)
        return ResolutionError(f"unknown field {str(extra)!r}", field=str(extra))
    if any(error.validator == "required" and not error.path for error in errors):
        missing = next(key for key in compiled.required if key not in values)
        return ResolutionError(f"missing required field {missing!r}", field=missing)
    located = [error for error in errors if error.path and error.path[0] in compiled.fields]
    if located:
        error = min(located, key=lambda item: order.index(item.path[0]))
        field_id = str(error.path[0])
        return ResolutionError(_describe(compiled.fields[field_id], error), field=field_id)
    return ResolutionError(f"resolution is invalid: {errors[0].message}")


def validate_resolution(form: dict[str, Any], resolution: object) -> dict[str, Any]:
    """Return the submitted values as a plain dict, or raise ResolutionError naming a field.

    Booleans are not accepted as numbers (JSON Schema semantics), and unknown keys are
    rejected so nothing the human did not see can ride along with their decision.
    """
    if not isinstance(resolution, dict):
        raise ResolutionError("resolution must be a JSON object")
    compiled = _compile(_canonical(form))
    errors = list(compiled.validator.iter_errors(resolution))
    if errors:
        raise _translate(compiled, resolution, errors)
    return dict(resolution)


def decision_of(form: dict[str, Any], values: dict[str, Any]) -> str:
    """The verdict carried by ``values``: the decision field's value, or ``"submit"``.

    Forms without a decision field only collect input, so submitting them is the whole
    answer. The decision value is returned as-is (never coerced to approve/deny), so an
    unexpected option cannot be mistaken for approval by a caller.
    """
    if not has_decision(form):
        return "submit"
    decision = values.get(DECISION_FIELD)
    if not isinstance(decision, str):
        raise ResolutionError(f"missing required field {DECISION_FIELD!r}", field=DECISION_FIELD)
    return decision


def redact(form: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Copy of ``values`` safe to log or echo: sensitive fields that are present are masked."""
    secret = sensitive_fields(form)
    return {key: MASK if key in secret else value for key, value in values.items()}
