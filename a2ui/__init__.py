"""A2UI approval forms: build them, validate answers, render them for A2UI clients.

Pure functions only (no I/O), so both the gateway and agents can share them.
"""

from a2ui.extension import (
    EXTENSION_URI,
    HEADER_NAMES,
    ActionError,
    agent_extension,
    answer_of,
    capabilities_activate,
    find_action,
    is_surface_part,
    redact_action_part,
    redact_data_model,
    requested_in_headers,
    surface_id_for,
    surface_messages,
    surface_part,
)
from a2ui.fields import EMAIL_PATTERN, WHITESPACE
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
from a2ui.surface import A2UI_VERSION, BASIC_CATALOG_ID, SUBMIT_EVENT, form_to_surface, surface_values

__all__ = [
    "A2UI_VERSION",
    "BASIC_CATALOG_ID",
    "DECISION_FIELD",
    "EMAIL_PATTERN",
    "EXTENSION_URI",
    "FIELD_TYPES",
    "HEADER_NAMES",
    "MASK",
    "MIME_TYPE",
    "SUBMIT_EVENT",
    "WHITESPACE",
    "ActionError",
    "FormError",
    "ResolutionError",
    "agent_extension",
    "answer_of",
    "approval_form",
    "capabilities_activate",
    "decision_of",
    "field_ids",
    "find_action",
    "find_form",
    "form_part",
    "form_to_schema",
    "form_to_surface",
    "has_decision",
    "is_surface_part",
    "make_form",
    "normalize_field",
    "redact",
    "redact_action_part",
    "redact_data_model",
    "requested_in_headers",
    "sensitive_fields",
    "surface_id_for",
    "surface_messages",
    "surface_part",
    "surface_values",
    "validate_form",
    "validate_resolution",
]
