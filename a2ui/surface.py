"""Rendering a Form as A2UI v0.9 server-to-client messages, and reading answers back.

Airlock's Form is a compact description; A2UI clients render the official component
catalog. This module maps one onto the other so any v0.9 renderer can show an approval
request without knowing Airlock. Every input is bound to ``/<field id>`` in the surface's
data model and ``sendDataModel`` is on, so a client's data model maps straight back onto
a resolution object via :func:`surface_values`.

Every surface can be answered from the surface alone: a decision renders one Button per
option, and a form without a decision ends with a ``Submit`` Button. Each Button's event
context binds every input of the form, so the event a click sends carries the values
even from a client that does not send its data model in the message metadata.

Component ids are ``title``, ``description``, ``root``, ``main-column``, ``submit``,
``submit-label`` and ``field-<id>...``; field ids cannot contain ``-``, so these never
collide.
"""

from __future__ import annotations

import json
import math
from typing import Any

from a2ui.fields import is_required
from a2ui.forms import has_decision, validate_form

__all__ = ["A2UI_VERSION", "BASIC_CATALOG_ID", "SUBMIT_EVENT", "form_to_surface", "surface_values"]

A2UI_VERSION = "v0.9"
BASIC_CATALOG_ID = "https://a2ui.org/specification/v0_9/catalogs/basic/catalog.json"

SUBMIT_EVENT = "submit"
"""The event name of the Submit button a form without a decision gets."""

_TEXT_VARIANTS = {"password": "obscured", "number": "number"}


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {"call": name, "args": args}


def _checks(field: dict[str, Any], label: str) -> list[dict[str, Any]]:
    """Client-side checks mirroring the server-side resolution schema, so users see
    problems before submitting rather than after a rejected decision."""
    value = {"path": f"/{field['id']}"}
    required = is_required(field)
    checks: list[dict[str, Any]] = []
    if required:
        checks.append({"condition": _call("required", value=value), "message": f"{label} is required"})
    field_type = field["type"]
    if field_type == "email":
        condition = _call("email", value=value)
        if not required:
            # An empty optional address is fine; only a filled-in one must look valid.
            condition = _call("or", values=[_call("not", value=_call("required", value=value)), condition])
        checks.append({"condition": condition, "message": f"{label} must be a valid email address"})
    if "maxLength" in field:
        checks.append(
            {
                "condition": _call("length", value=value, max=field["maxLength"]),
                "message": f"{label} must be at most {field['maxLength']} characters",
            }
        )
    if field_type == "number" and ("min" in field or "max" in field):
        bounds = {key: field[key] for key in ("min", "max") if key in field}
        checks.append(
            {"condition": _call("numeric", value=value, **bounds), "message": f"{label} is out of range"}
        )
    return checks


def _input_bindings(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Every input of the form bound to its data model path, for a Button's event context: the client
    resolves the bindings when the Button is clicked, so the event carries the values themselves."""
    return {field["id"]: {"path": f"/{field['id']}"} for field in fields if field["type"] != "action"}


def _field_components(field: dict[str, Any], inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """Components for one field; the first one is the field's entry in the main column."""
    field_id = field["id"]
    component_id = f"field-{field_id}"
    label = field.get("label", field_id)
    binding = {"path": f"/{field_id}"}
    field_type = field["type"]
    extras: dict[str, Any] = {}
    if "description" in field:
        extras["accessibility"] = {"description": field["description"]}

    if field_type == "action":
        # One button per option; clicking sends an event named after the field whose
        # context carries {field id: option value}, i.e. exactly the resolution entry.
        buttons: list[dict[str, Any]] = []
        for index, option in enumerate(field["options"]):
            button_id = f"{component_id}-option-{index}"
            buttons.append(
                {
                    "id": f"{button_id}-label",
                    "component": "Text",
                    "text": option.get("label", option["value"]),
                }
            )
            buttons.append(
                {
                    "id": button_id,
                    "component": "Button",
                    "child": f"{button_id}-label",
                    "action": {"event": {"name": field_id, "context": {**inputs, field_id: option["value"]}}},
                }
            )
        row = {
            "id": component_id,
            "component": "Row",
            "children": [button["id"] for button in buttons if button["component"] == "Button"],
            "justify": "center",
            "accessibility": {"label": label, **extras.get("accessibility", {})},
        }
        return [row, *buttons]

    checks = _checks(field, label)
    kind = {"checkbox": "CheckBox", "select": "ChoicePicker"}.get(field_type, "TextField")
    component: dict[str, Any] = {
        "id": component_id,
        "component": kind,
        "label": label,
        "value": binding,
        **extras,
    }
    if field_type == "select":
        component["variant"] = "mutuallyExclusive"
        component["options"] = [
            {"label": option.get("label", option["value"]), "value": option["value"]}
            for option in field["options"]
        ]
    elif field_type in _TEXT_VARIANTS:
        component["variant"] = _TEXT_VARIANTS[field_type]
    if checks:
        component["checks"] = checks
    return [component]


def _initial_data(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Declared defaults, shaped as the bound components expect: a picker holds a list of
    values and a number input holds text; :func:`surface_values` reverses both."""
    data: dict[str, Any] = {}
    for field in fields:
        if "default" in field and field["type"] != "action":
            default = field["default"]
            if field["type"] == "select":
                default = [default]
            elif field["type"] == "number":
                default = json.dumps(default)  # a TextField holds a string
            data[field["id"]] = default
    return data


def form_to_surface(form: dict[str, Any], surface_id: str) -> list[dict[str, Any]]:
    """A2UI v0.9 messages that render ``form`` on a new surface.

    Always a ``createSurface`` then an ``updateComponents``; an ``updateDataModel``
    follows only when some field declares a default, to pre-fill it.
    """
    props = validate_form(form)["props"]
    fields: list[dict[str, Any]] = props["fields"]
    header: list[dict[str, Any]] = []
    if props.get("title"):
        header.append({"id": "title", "component": "Text", "text": props["title"], "variant": "h2"})
    if props.get("description"):
        header.append({"id": "description", "component": "Text", "text": props["description"]})
    inputs = _input_bindings(fields)
    per_field = [_field_components(field, inputs) for field in fields]
    if not has_decision(form):
        # input only: without a button of its own the surface could never be answered
        per_field.append(
            [
                {
                    "id": "submit",
                    "component": "Button",
                    "child": "submit-label",
                    "variant": "primary",
                    "action": {"event": {"name": SUBMIT_EVENT, "context": inputs}},
                },
                {"id": "submit-label", "component": "Text", "text": "Submit"},
            ]
        )
    column = {
        "id": "main-column",
        "component": "Column",
        "children": [item["id"] for item in header] + [group[0]["id"] for group in per_field],
    }
    components = [
        {"id": "root", "component": "Card", "child": "main-column"},
        column,
        *header,
        *(component for group in per_field for component in group),
    ]
    messages: list[dict[str, Any]] = [
        {
            "version": A2UI_VERSION,
            "createSurface": {"surfaceId": surface_id, "catalogId": BASIC_CATALOG_ID, "sendDataModel": True},
        },
        {"version": A2UI_VERSION, "updateComponents": {"surfaceId": surface_id, "components": components}},
    ]
    initial = _initial_data(fields)
    if initial:
        messages.append(
            {"version": A2UI_VERSION, "updateDataModel": {"surfaceId": surface_id, "value": initial}}
        )
    return messages


def _from_data_model(field: dict[str, Any], value: Any) -> tuple[bool, Any]:
    """Undo the surface's representation of one value; ``(False, _)`` means "not answered"."""
    if value is None:  # a binding to a path nobody filled in resolves to null in an event's context
        return False, None
    field_type = field["type"]
    if field_type == "select" and isinstance(value, list):
        if not value:
            return False, None
        return True, value[0] if len(value) == 1 else value
    if isinstance(value, str) and field_type in ("text", "email", "password", "number"):
        if value.strip() == "" and not is_required(field):
            return False, None
        if field_type == "number":
            try:
                number = float(value)
            except ValueError:
                return True, value
            if not math.isfinite(number):
                return True, value
            return True, int(number) if number.is_integer() and "." not in value else number
    return True, value


def surface_values(form: dict[str, Any], data_model: object, event_context: object = None) -> dict[str, Any]:
    """Map a surface's data model (plus a button event's context) back to resolution values.

    Keys the form does not define are dropped (a client data model may hold more), and the
    result is not validated: pass it to ``validate_resolution``. Values that cannot be
    converted are left as they are, so validation reports them against the right field.
    """
    fields = {field["id"]: field for field in validate_form(form)["props"]["fields"]}
    values: dict[str, Any] = {}
    if isinstance(data_model, dict):
        for key, value in data_model.items():
            field = fields.get(key)
            if field is None or field["type"] == "action":
                continue
            present, converted = _from_data_model(field, value)
            if present:
                values[key] = converted
    if isinstance(event_context, dict):
        for key, value in event_context.items():
            if key in fields and fields[key]["type"] == "action":
                values[key] = value
    return values
