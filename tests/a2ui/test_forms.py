"""Form construction, validation and discovery."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from a2ui import (
    DECISION_FIELD,
    FIELD_TYPES,
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

GUIDE_PART = {
    "kind": "data",
    "data": {
        "type": "Form",
        "props": {
            "title": "Approval Required",
            "description": "bulk_delete_expired requires approval.",
            "fields": [
                {
                    "id": "decision",
                    "type": "action",
                    "options": [{"value": "approve", "label": "Approve"}, {"value": "deny", "label": "Deny"}],
                }
            ],
        },
    },
    "metadata": {"mimeType": "application/json+a2ui"},
}

EVERY_TYPE: list[dict[str, Any]] = [
    {"id": "confirm", "type": "action", "options": [{"value": "go", "label": "Go"}]},
    {"id": "reason", "type": "text", "label": "Reason", "maxLength": 200, "placeholder": "why?"},
    {"id": "contact", "type": "email", "required": True, "description": "Who to notify"},
    {"id": "secret", "type": "password"},
    {"id": "count", "type": "number", "min": 1, "max": 10, "default": 3},
    {"id": "notify", "type": "checkbox", "default": False},
    {
        "id": "region",
        "type": "select",
        "options": [{"value": "eu", "label": "Europe"}, {"value": "us", "label": "US"}],
        "default": "eu",
    },
    {"id": "token", "type": "text", "sensitive": True},
]


def test_guide_form_part_is_exact() -> None:
    assert form_part(approval_form("bulk_delete_expired")) == GUIDE_PART


def test_constants() -> None:
    assert MIME_TYPE == "application/json+a2ui"
    assert DECISION_FIELD == "decision"
    assert set(FIELD_TYPES) == {"action", "text", "email", "password", "number", "checkbox", "select"}


def test_approval_form_default_description_without_tool() -> None:
    form = approval_form(None)
    assert form["props"]["description"] == "This action requires approval."
    assert form["props"]["title"] == "Approval Required"


def test_approval_form_custom_title_and_description() -> None:
    form = approval_form("t", title="Check", description="Look closely")
    assert form["props"]["title"] == "Check"
    assert form["props"]["description"] == "Look closely"


def test_approval_form_accepts_every_field_type_after_decision() -> None:
    form = approval_form("deploy", EVERY_TYPE)
    assert field_ids(form) == ["decision", *(field["id"] for field in EVERY_TYPE)]
    assert {field["type"] for field in form["props"]["fields"]} == set(FIELD_TYPES)
    assert form["props"]["fields"][1:] == EVERY_TYPE


def test_approval_form_rejects_reserved_decision_id() -> None:
    with pytest.raises(FormError) as info:
        approval_form("t", [{"id": "decision", "type": "text"}])
    assert info.value.field == "decision"
    assert "decision" in str(info.value)


def test_duplicate_ids_are_rejected_naming_the_field() -> None:
    fields = [{"id": "note", "type": "text"}, {"id": "note", "type": "email"}]
    with pytest.raises(FormError) as info:
        make_form("t", "d", fields)
    assert info.value.field == "note"
    assert "'note'" in str(info.value) and "duplicate" in str(info.value)


def test_bad_type_is_rejected_naming_the_field() -> None:
    with pytest.raises(FormError) as info:
        approval_form("t", [{"id": "ok", "type": "text"}, {"id": "when", "type": "date"}])
    assert info.value.field == "when"
    assert "'when'" in str(info.value) and "fields[2].type" in str(info.value)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ({"type": "text"}, "fields[0].id"),
        ({"id": "has-dash", "type": "text"}, "fields[0].id"),
        ({"id": 7, "type": "text"}, "fields[0].id"),
        ("not a field", "fields[0]"),
    ],
)
def test_unusable_ids_are_reported_by_position(field: object, expected: str) -> None:
    with pytest.raises(FormError) as info:
        make_form("t", "d", [field])  # type: ignore[list-item]
    assert info.value.field == expected
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "field",
    [
        {"id": "f", "type": "text", "requird": True},
        {"id": "f", "type": "text", "min": 1},
        {"id": "f", "type": "email", "maxLength": 5},
        {"id": "f", "type": "text", "required": "yes"},
        {"id": "f", "type": "text", "label": 3},
        {"id": "f", "type": "select", "options": []},
        {"id": "f", "type": "select"},
        {"id": "f", "type": "action", "options": [{"value": "a"}, {"value": "a"}]},
        {"id": "f", "type": "action", "options": [{"value": ""}]},
        {"id": "f", "type": "action", "options": [{"value": "a", "icon": "x"}]},
        {"id": "f", "type": "number", "min": 5, "max": 1},
        {"id": "f", "type": "number", "min": True},
        {"id": "f", "type": "number", "max": 3, "default": 4},
        {"id": "f", "type": "text", "maxLength": -1},
        {"id": "f", "type": "checkbox", "default": "yes"},
        {"id": "f", "type": "select", "options": [{"value": "a"}], "default": "b"},
        {"id": "f", "type": "email", "default": "nobody"},
        {"id": "f", "type": "text", "maxLength": 2, "default": "long"},
    ],
)
def test_invalid_field_definitions_name_the_field(field: dict[str, Any]) -> None:
    with pytest.raises(FormError) as info:
        normalize_field(field)
    assert info.value.field == "f"
    assert "'f'" in str(info.value)


def test_normalize_field_returns_an_independent_copy() -> None:
    field = {"id": "pick", "type": "select", "options": [{"value": "a", "label": "A"}]}
    clean = normalize_field(field)
    assert clean == field
    clean["options"][0]["value"] = "changed"
    assert field["options"][0]["value"] == "a"


def test_validate_form_round_trips_a_built_form() -> None:
    form = approval_form("t", EVERY_TYPE)
    assert validate_form(copy.deepcopy(form)) == form


def test_validate_form_accepts_agent_form_without_decision() -> None:
    form = {"type": "Form", "props": {"fields": [{"id": "otp", "type": "password", "required": True}]}}
    assert validate_form(form) == form


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ([], None),
        ({"type": "Card", "props": {"fields": [{"id": "a", "type": "text"}]}}, "type"),
        ({"type": "Form"}, "props"),
        ({"type": "Form", "props": {"fields": "a"}}, "fields"),
        ({"type": "Form", "props": {"fields": []}}, "fields"),
        ({"type": "Form", "props": {"title": 1, "fields": [{"id": "a", "type": "text"}]}}, "title"),
        ({"type": "Form", "props": {"fields": [{"id": "a", "type": "text"}], "x": 1}}, "props.x"),
        ({"type": "Form", "props": {"fields": [{"id": "a", "type": "text"}]}, "extra": 1}, "extra"),
        ({"type": "Form", "props": {"fields": [{"id": "a", "type": "radio"}]}}, "a"),
    ],
)
def test_validate_form_rejects_malformed_forms(form: object, field: str | None) -> None:
    with pytest.raises(FormError) as info:
        validate_form(form)
    assert info.value.field == field


def test_find_form_skips_junk_and_foreign_parts() -> None:
    form = approval_form("t")
    parts: list[Any] = [
        None,
        "text",
        42,
        {"kind": "text", "text": "hello"},
        {"kind": "data", "data": "not a dict"},
        {"kind": "data", "data": {"type": "Table"}, "metadata": {"mimeType": MIME_TYPE}},
        {"kind": "data", "data": {"type": "Form", "props": {}}, "metadata": {"mimeType": "application/json"}},
        {"kind": "data", "data": {"type": "Form", "props": {}}, "metadata": "junk"},
        {"kind": "file", "data": form},
        form_part(form),
        {"kind": "data", "data": {"type": "Form", "props": {"title": "second"}}},
    ]
    assert find_form(parts) is form


def test_find_form_accepts_form_without_metadata() -> None:
    data = {"type": "Form", "props": {"fields": []}}
    assert find_form([{"kind": "text", "text": "x"}, {"kind": "data", "data": data}]) is data


@pytest.mark.parametrize("parts", [[], [{"kind": "text", "text": "x"}], None, "Form", 3])
def test_find_form_returns_none_without_a_form(parts: Any) -> None:
    assert find_form(parts) is None


def test_field_helpers() -> None:
    form = approval_form("t", EVERY_TYPE)
    assert sensitive_fields(form) == frozenset({"secret", "token"})
    assert has_decision(form)
    plain = make_form("t", "d", [{"id": "decision", "type": "text"}])
    assert not has_decision(plain)
    assert sensitive_fields(plain) == frozenset()
