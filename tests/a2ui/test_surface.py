"""Rendering Forms as A2UI v0.9 messages, checked against the official schemas."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from a2ui import (
    BASIC_CATALOG_ID,
    approval_form,
    form_to_surface,
    make_form,
    surface_values,
    validate_resolution,
)

# tests/a2ui/<this file> -> repository root -> its sibling "shared" directory.
SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "a2ui-v0.9"
CATALOG_PLACEHOLDER = "https://a2ui.org/specification/v0_9/catalog.json"

ALL_TYPES = approval_form(
    "deploy",
    [
        {
            "id": "reason",
            "type": "text",
            "label": "Reason",
            "maxLength": 200,
            "description": "Shown in audit",
        },
        {"id": "contact", "type": "email", "required": True, "label": "Contact"},
        {"id": "cc", "type": "email"},
        {"id": "secret", "type": "password", "required": True},
        {"id": "count", "type": "number", "min": 1, "max": 10, "default": 3},
        {"id": "ratio", "type": "number"},
        {"id": "notify", "type": "checkbox", "label": "Notify me", "default": True},
        {"id": "region", "type": "select", "options": [{"value": "eu", "label": "EU"}, {"value": "us"}]},
        {
            "id": "confirm",
            "type": "action",
            "label": "Really?",
            "options": [{"value": "yes", "label": "Yes"}],
        },
    ],
)


def _load(relative: str) -> dict[str, Any]:
    return json.loads((SPEC_DIR / relative).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def message_validator() -> Draft202012Validator:
    if not SPEC_DIR.is_dir():
        reason = f"A2UI v0.9 specification not found at {SPEC_DIR}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    catalog = _load("catalogs/basic/catalog.json")
    common = _load("json/common_types.json")
    catalog_resource = DRAFT202012.create_resource(catalog)
    registry: Registry = Registry().with_resources(
        [
            (catalog["$id"], catalog_resource),
            (CATALOG_PLACEHOLDER, catalog_resource),
            (common["$id"], DRAFT202012.create_resource(common)),
        ]
    )
    return Draft202012Validator(_load("json/server_to_client.json"), registry=registry)


def _assert_valid(validator: Draft202012Validator, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        errors = [error.message for error in validator.iter_errors(message)]
        assert not errors, f"{json.dumps(message)[:300]}: {errors[:3]}"


def _components(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    [update] = [message["updateComponents"] for message in messages if "updateComponents" in message]
    return {component["id"]: component for component in update["components"]}


def test_validator_accepts_official_example_and_rejects_junk(message_validator: Draft202012Validator) -> None:
    _assert_valid(message_validator, _load("catalogs/basic/examples/09_login-form.json")["messages"])
    bad = {"version": "v0.9", "updateComponents": {"surfaceId": "s", "components": [{"id": "root"}]}}
    assert not message_validator.is_valid(bad)
    bad_field = {
        "version": "v0.9",
        "updateComponents": {
            "surfaceId": "s",
            "components": [{"id": "root", "component": "TextField", "label": "x", "variant": "secret"}],
        },
    }
    assert not message_validator.is_valid(bad_field)


@pytest.mark.parametrize(
    "form", [approval_form("bulk_delete_expired"), ALL_TYPES], ids=["approval", "all-types"]
)
def test_messages_validate_against_official_schema(
    message_validator: Draft202012Validator, form: dict[str, Any]
) -> None:
    _assert_valid(message_validator, form_to_surface(form, "surface-1"))


def test_agent_form_without_title_validates(message_validator: Draft202012Validator) -> None:
    form = {"type": "Form", "props": {"fields": [{"id": "otp", "type": "password", "required": True}]}}
    messages = form_to_surface(form, "s")
    _assert_valid(message_validator, messages)
    components = _components(messages)
    assert components["main-column"]["children"] == ["field-otp", "submit"]
    # input only, so a Submit button whose event carries the bound inputs answers it
    assert components["submit"]["action"] == {"event": {"name": "submit", "context": {"otp": {"path": "/otp"}}}}
    assert components["submit-label"]["text"] == "Submit"


def test_approval_surface_structure() -> None:
    messages = form_to_surface(approval_form("bulk_delete_expired"), "s-42")
    assert len(messages) == 2
    assert messages[0] == {
        "version": "v0.9",
        "createSurface": {"surfaceId": "s-42", "catalogId": BASIC_CATALOG_ID, "sendDataModel": True},
    }
    assert messages[1]["updateComponents"]["surfaceId"] == "s-42"
    components = _components(messages)
    assert components["root"] == {"id": "root", "component": "Card", "child": "main-column"}
    assert components["main-column"]["component"] == "Column"
    assert components["title"] == {
        "id": "title",
        "component": "Text",
        "text": "Approval Required",
        "variant": "h2",
    }
    assert components["description"]["text"] == "bulk_delete_expired requires approval."
    buttons = [components[child] for child in components["field-decision"]["children"]]
    assert [button["component"] for button in buttons] == ["Button", "Button"]
    assert [button["action"] for button in buttons] == [
        {"event": {"name": "decision", "context": {"decision": "approve"}}},
        {"event": {"name": "decision", "context": {"decision": "deny"}}},
    ]
    assert [components[button["child"]]["text"] for button in buttons] == ["Approve", "Deny"]


def test_component_tree_is_consistent() -> None:
    messages = form_to_surface(ALL_TYPES, "s")
    [update] = [message["updateComponents"] for message in messages if "updateComponents" in message]
    ids = [component["id"] for component in update["components"]]
    assert len(ids) == len(set(ids))
    components = _components(messages)
    referenced: list[str] = ["root"]
    for component in components.values():
        referenced += component.get("children", [])
        referenced += [component["child"]] if "child" in component else []
    assert set(referenced) == set(ids), "every component is reachable and every reference exists"


def test_input_components_per_field_type() -> None:
    components = _components(form_to_surface(ALL_TYPES, "s"))
    reason = components["field-reason"]
    assert reason["component"] == "TextField" and reason["value"] == {"path": "/reason"}
    assert reason["label"] == "Reason" and "variant" not in reason
    assert reason["accessibility"] == {"description": "Shown in audit"}
    assert components["field-secret"]["variant"] == "obscured"
    assert components["field-count"]["variant"] == "number"
    assert components["field-notify"] == {
        "id": "field-notify",
        "component": "CheckBox",
        "label": "Notify me",
        "value": {"path": "/notify"},
    }
    region = components["field-region"]
    assert region["component"] == "ChoicePicker" and region["variant"] == "mutuallyExclusive"
    assert region["options"] == [{"label": "EU", "value": "eu"}, {"label": "us", "value": "us"}]
    assert components["field-ratio"]["label"] == "ratio"


def test_checks_use_catalog_functions() -> None:
    components = _components(form_to_surface(ALL_TYPES, "s"))
    contact = [check["condition"] for check in components["field-contact"]["checks"]]
    assert contact == [
        {"call": "required", "args": {"value": {"path": "/contact"}}},
        {"call": "email", "args": {"value": {"path": "/contact"}}},
    ]
    [optional_email] = components["field-cc"]["checks"]
    assert optional_email["condition"]["call"] == "or"
    assert components["field-reason"]["checks"][0]["condition"] == {
        "call": "length",
        "args": {"value": {"path": "/reason"}, "max": 200},
    }
    assert components["field-count"]["checks"][0]["condition"]["args"] == {
        "value": {"path": "/count"},
        "min": 1,
        "max": 10,
    }
    assert "checks" not in components["field-ratio"]


def test_defaults_prefill_the_data_model() -> None:
    messages = form_to_surface(ALL_TYPES, "s")
    assert len(messages) == 3
    assert messages[2] == {
        "version": "v0.9",
        "updateDataModel": {"surfaceId": "s", "value": {"count": "3", "notify": True}},
    }


def test_surface_values_round_trip_into_a_valid_resolution() -> None:
    data_model = {
        "reason": "",
        "contact": "ops@example.com",
        "cc": "",
        "secret": "pw",
        "count": "4",
        "ratio": "0.5",
        "notify": False,
        "region": ["eu"],
        "unrelated": "dropped",
        "decision": "approve",
    }
    values = surface_values(ALL_TYPES, data_model, {"decision": "deny", "confirm": "yes", "zzz": 1})
    assert values == {
        "contact": "ops@example.com",
        "secret": "pw",
        "count": 4,
        "ratio": 0.5,
        "notify": False,
        "region": "eu",
        "decision": "deny",
        "confirm": "yes",
    }
    assert validate_resolution(ALL_TYPES, values) == values


def test_surface_values_leave_bad_input_for_validation_to_report() -> None:
    values = surface_values(ALL_TYPES, {"count": "lots", "region": ["eu", "us"]}, None)
    assert values == {"count": "lots", "region": ["eu", "us"]}
    assert surface_values(ALL_TYPES, "junk", "junk") == {}
    form = make_form("t", "d", [{"id": "n", "type": "number", "required": True}])
    assert surface_values(form, {"n": ""}) == {"n": ""}
    assert surface_values(form, {"n": "nan"}) == {"n": "nan"}
