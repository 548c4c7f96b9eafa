"""A2UI approval forms: build them, validate answers, render them for A2UI clients.

Pure functions only (no I/O), so both the gateway and agents can share them.
"""

from a2ui.fields import EMAIL_PATTERN, WHITESPACE, is_sensitive
from a2ui.forms import (
    DECISION_FIELD,
    FIELD_TYPES,
    MASK,
    MIME_TYPE,
    FormError,
    approval_form,
    field_ids,
    find_form,
    form_part,
    has_decision,
    make_form,
    normalize_field,
    sensitive_fields,
    validate_form,
)
from a2ui.resolution import ResolutionError, decision_of, redact, validate_resolution
from a2ui.schema import form_to_schema
from a2ui.surface import A2UI_VERSION, BASIC_CATALOG_ID, form_to_surface, surface_values

__all__ = [
    "A2UI_VERSION",
    "BASIC_CATALOG_ID",
    "DECISION_FIELD",
    "EMAIL_PATTERN",
    "FIELD_TYPES",
    "MASK",
    "MIME_TYPE",
    "WHITESPACE",
    "FormError",
    "ResolutionError",
    "approval_form",
    "decision_of",
    "field_ids",
    "find_form",
    "form_part",
    "form_to_schema",
    "form_to_surface",
    "has_decision",
    "is_sensitive",
    "make_form",
    "normalize_field",
    "redact",
    "sensitive_fields",
    "surface_values",
    "validate_form",
    "validate_resolution",
]
