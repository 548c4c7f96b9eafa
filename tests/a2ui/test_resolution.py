"""Resolution schemas and validating a human's submitted values."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from a2ui import (
    MASK,
    FormError,
    ResolutionError,
    approval_form,
    decision_of,
    form_to_schema,
    make_form,
    redact,
    validate_resolution,
)

LOGIN = make_form(
    "Sign in",
    "Credentials for the target system",
    [
        {"id": "username", "type": "email", "required": True, "label": "Username"},
        {"id": "password", "type": "password", "required": True},
        {"id": "remember_me", "type": "checkbox"},
    ],
)

DETAILED = approval_form(
    "transfer",
    [
        {"id": "count", "type": "number", "min": 1, "max": 10},
        {"id": "notify", "type": "checkbox"},
        {"id": "contact", "type": "email"},
        {"id": "note", "type": "text", "maxLength": 5},
        {"id": "region", "type": "select", "options": [{"value": "eu"}, {"value": "us"}]},
        {"id": "api_key", "type": "text", "sensitive": True},
        {"id": "pin", "type": "password"},
    ],
)


def _error(form: dict[str, Any], resolution: object) -> ResolutionError:
    with pytest.raises(ResolutionError) as info:
        validate_resolution(form, resolution)
    return info.value


@pytest.mark.parametrize("form", [approval_form("t"), LOGIN, DETAILED])
def test_schema_is_valid_draft_2020_12(form: dict[str, Any]) -> None:
    schema = form_to_schema(form)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False


def test_schema_shapes_per_field_type() -> None:
    props = form_to_schema(DETAILED)["properties"]
    assert props["decision"] == {"enum": ["approve", "deny"]}
    assert props["count"] == {"type": "number", "minimum": 1, "maximum": 10}
    assert props["notify"] == {"type": "boolean"}
    assert props["contact"]["type"] == "string" and "pattern" in props["contact"]
    assert "format" not in props["contact"]
    assert props["note"] == {"type": "string", "maxLength": 5}
    assert props["region"] == {"enum": ["eu", "us"]}
    assert form_to_schema(DETAILED)["required"] == ["decision"]
    login = form_to_schema(LOGIN)
    assert login["required"] == ["username", "password"]
    assert login["properties"]["username"]["title"] == "Username"


def test_optional_action_field_is_not_required() -> None:
    form = make_form(
        "t", "d", [{"id": "go", "type": "action", "required": False, "options": [{"value": "y"}]}]
    )
    assert form_to_schema(form)["required"] == []


def test_schema_rejects_malformed_form() -> None:
    with pytest.raises(FormError):
        form_to_schema({"type": "Form", "props": {"fields": [{"id": "x", "type": "nope"}]}})


def test_accepts_plain_approval() -> None:
    result = validate_resolution(approval_form("t"), {"decision": "approve"})
    assert result == {"decision": "approve"}
    assert type(result) is dict


def test_accepts_full_detailed_resolution() -> None:
    values = {
        "decision": "deny",
        "count": 2.5,
        "notify": True,
        "contact": "ops@example.com",
        "note": "hi",
        "region": "us",
        "api_key": "k",
        "pin": "1234",
    }
    assert validate_resolution(DETAILED, values) == values


@pytest.mark.parametrize(
    ("resolution", "field", "message"),
    [
        ({"decision": "approve", "foo": 1}, "foo", "unknown field 'foo'"),
        ({}, "decision", "missing required field 'decision'"),
        ({"decision": "maybe"}, "decision", "field 'decision' must be one of: approve, deny"),
        ({"decision": None}, "decision", "field 'decision' must be one of: approve, deny"),
        ({"decision": "approve", "count": "3"}, "count", "field 'count' must be a number"),
        ({"decision": "approve", "count": True}, "count", "field 'count' must be a number"),
        ({"decision": "approve", "count": 0}, "count", "field 'count' must be at least 1"),
        ({"decision": "approve", "count": 11}, "count", "field 'count' must be at most 10"),
        ({"decision": "approve", "notify": "yes"}, "notify", "field 'notify' must be a boolean"),
        ({"decision": "approve", "notify": 1}, "notify", "field 'notify' must be a boolean"),
        ({"decision": "approve", "contact": "nobody"}, "contact", "field 'contact' must be an email address"),
        ({"decision": "approve", "contact": 5}, "contact", "field 'contact' must be an email address"),
        ({"decision": "approve", "note": "toolong"}, "note", "field 'note' must be at most 5 characters"),
        ({"decision": "approve", "region": "mars"}, "region", "field 'region' must be one of: eu, us"),
        ({"decision": "approve", "pin": 1234}, "pin", "field 'pin' must be a string"),
    ],
)
def test_rejections_name_the_field(resolution: dict[str, Any], field: str, message: str) -> None:
    error = _error(DETAILED, resolution)
    assert error.field == field
    assert str(error) == message


@pytest.mark.parametrize("resolution", [None, [], "approve", 1, [("decision", "approve")]])
def test_non_object_resolution_is_rejected(resolution: object) -> None:
    error = _error(approval_form("t"), resolution)
    assert error.field is None
    assert str(error) == "resolution must be a JSON object"


def test_unknown_field_takes_precedence_over_other_errors() -> None:
    error = _error(DETAILED, {"decision": "maybe", "zzz": 1})
    assert error.field == "zzz"


def test_missing_field_takes_precedence_over_bad_values() -> None:
    error = _error(LOGIN, {"username": "not-an-email"})
    assert error.field == "password"


def test_first_bad_value_in_form_order_is_reported() -> None:
    error = _error(DETAILED, {"region": "mars", "decision": "maybe", "count": "x"})
    assert error.field == "decision"


def test_guide_structured_example() -> None:
    values = {"username": "john@example.com", "password": "s3cret", "remember_me": True}
    assert validate_resolution(LOGIN, values) == values


def test_guide_structured_example_missing_password() -> None:
    error = _error(LOGIN, {"username": "john@example.com", "remember_me": True})
    assert error.field == "password"
    assert str(error) == "missing required field 'password'"


def test_required_text_must_not_be_empty() -> None:
    error = _error(LOGIN, {"username": "john@example.com", "password": ""})
    assert error.field == "password"
    assert str(error) == "field 'password' must not be empty"


def test_error_messages_never_echo_secret_values() -> None:
    error = _error(DETAILED, {"decision": "approve", "pin": ["hunter2"]})
    assert "hunter2" not in str(error)


def test_validation_follows_form_changes_despite_caching() -> None:
    form = approval_form("t", [{"id": "pick", "type": "select", "options": [{"value": "a"}]}])
    assert validate_resolution(form, {"decision": "approve", "pick": "a"})
    form["props"]["fields"][1]["options"].append({"value": "b"})
    assert validate_resolution(form, {"decision": "approve", "pick": "b"}) == {
        "decision": "approve",
        "pick": "b",
    }
    form["props"]["fields"][1]["options"].pop(0)
    assert _error(form, {"decision": "approve", "pick": "a"}).field == "pick"


def test_malformed_form_raises_form_error() -> None:
    with pytest.raises(FormError):
        validate_resolution({"type": "Form", "props": {"fields": []}}, {})


def test_decision_of() -> None:
    form = approval_form("t")
    assert decision_of(form, {"decision": "approve"}) == "approve"
    assert decision_of(form, {"decision": "deny"}) == "deny"
    assert decision_of(LOGIN, {"username": "a@b.co", "password": "x"}) == "submit"
    with pytest.raises(ResolutionError) as info:
        decision_of(form, {})
    assert info.value.field == "decision"


def test_redact_masks_only_sensitive_fields_that_are_present() -> None:
    values = {"decision": "approve", "api_key": "k-123", "pin": "0000", "note": "hi", "contact": "a@b.co"}
    redacted = redact(DETAILED, values)
    assert redacted == {
        "decision": "approve",
        "api_key": MASK,
        "pin": MASK,
        "note": "hi",
        "contact": "a@b.co",
    }
    assert values["pin"] == "0000"
    assert redact(DETAILED, {"decision": "deny"}) == {"decision": "deny"}
    assert redact(LOGIN, {"username": "john@example.com", "password": "s3cret"}) == {
        "username": "john@example.com",
        "password": MASK,
    }
