"""The A2UI v0.9 A2A extension: negotiating it, and carrying surfaces and events in A2A DataParts.

Airlock's own Form part is what every client has always read, so it never changes. A client that
activates this extension (the ``A2A-Extensions`` / ``X-A2A-Extensions`` header naming
:data:`EXTENSION_URI`, or ``message.metadata.a2uiClientCapabilities`` naming v0.9 and the basic catalog)
also gets the same form as A2UI v0.9 server-to-client messages, in a second DataPart, and may answer with
the A2UI ``action`` event a Button sends. This module is the pure part of that: what the card says, when
a request activates the extension, the surface part, and reading an action event back into the values of
the form it answers.

The A2UI extension puts a *list* of messages in the DataPart's ``data``. An A2A v0.3 DataPart's ``data``
must be an object, so the part is kept the way the a2a-sdk keeps non-object data on v0.3: ``{"value":
[...]}`` with ``metadata.data_part_compat: true``. The v1.0 wire (protobuf JSON, where ``data`` is any
value) unwraps it to the list itself, as the a2a-sdk does when it reads a v0.3 part.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from a2ui.fields import MASK, MIME_TYPE
from a2ui.forms import sensitive_fields
from a2ui.surface import A2UI_VERSION, BASIC_CATALOG_ID, form_to_surface, surface_values

__all__ = [
    "CLIENT_CAPABILITIES_KEY",
    "CLIENT_DATA_MODEL_KEY",
    "DATA_PART_COMPAT",
    "EXTENSION_URI",
    "HEADER_NAMES",
    "ActionError",
    "agent_extension",
    "answer_of",
    "capabilities_activate",
    "find_action",
    "is_surface_part",
    "redact_action_part",
    "redact_data_model",
    "requested_in_headers",
    "surface_id_for",
    "surface_messages",
    "surface_part",
]

EXTENSION_URI = "https://a2ui.org/a2a-extension/a2ui/v0.9"
HEADER_NAMES = ("A2A-Extensions", "X-A2A-Extensions")
"""A2A v1.0 names the activation header ``A2A-Extensions``; v0.3 named it ``X-A2A-Extensions``. Clients send
either (the a2a-sdk's v0.3 transport sends both), so both are read and both are answered."""
CLIENT_CAPABILITIES_KEY = "a2uiClientCapabilities"
CLIENT_DATA_MODEL_KEY = "a2uiClientDataModel"
DATA_PART_COMPAT = "data_part_compat"
_SURFACE_PREFIX = "airlock-"


class ActionError(ValueError):
    """An A2UI action event that cannot answer the form it was sent to."""


def agent_extension() -> dict[str, Any]:
    """The card's ``capabilities.extensions`` entry; ``params`` follow the v0.9 server-capabilities schema."""
    return {
        "uri": EXTENSION_URI,
        "description": "Held actions and requests for values also as A2UI v0.9 surfaces (basic catalog); "
        "answer with the action event a Button sends",
        "required": False,
        "params": {A2UI_VERSION: {"supportedCatalogIds": [BASIC_CATALOG_ID], "acceptsInlineCatalogs": False}},
    }


def requested_in_headers(values: Iterable[str]) -> bool:
    """Whether activation header values (each possibly a comma-separated list) name this extension."""
    return any(uri.strip() == EXTENSION_URI for value in values for uri in value.split(","))


def capabilities_activate(metadata: object) -> bool:
    """Whether message metadata carries ``a2uiClientCapabilities`` naming v0.9 with the basic catalog, the
    extension's own way of asking for surfaces. Anything malformed is simply not an activation."""
    if not isinstance(metadata, dict):
        return False
    capabilities = metadata.get(CLIENT_CAPABILITIES_KEY)
    version = capabilities.get(A2UI_VERSION) if isinstance(capabilities, dict) else None
    catalogs = version.get("supportedCatalogIds") if isinstance(version, dict) else None
    return isinstance(catalogs, list) and BASIC_CATALOG_ID in catalogs


def surface_id_for(status_message_id: str) -> str:
    """A surface per held status: an event from the surface of an earlier hold of the same task names
    another id, so it can be told apart from an answer to the hold shown now."""
    return f"{_SURFACE_PREFIX}{status_message_id}"


def surface_part(form: dict[str, Any], surface_id: str) -> dict[str, Any]:
    """The form as an A2UI DataPart: the server-to-client message list, v0.3-wrapped (see the module)."""
    return {
        "kind": "data",
        "data": {"value": form_to_surface(form, surface_id)},
        "metadata": {"mimeType": MIME_TYPE, DATA_PART_COMPAT: True},
    }


def _a2ui_list(part: object) -> list[Any] | None:
    """The message list an A2UI DataPart carries (v0.3-wrapped or a bare list), else None."""
    if not isinstance(part, dict) or part.get("kind", "data") != "data":
        return None
    metadata = part.get("metadata")
    data = part.get("data")
    if isinstance(data, list):
        messages: object = data
    elif isinstance(metadata, dict) and metadata.get(DATA_PART_COMPAT) and isinstance(data, dict):
        messages = data.get("value")
    else:
        return None
    return messages if isinstance(messages, list) else None


def is_surface_part(part: object) -> bool:
    """Whether a part already carries A2UI server-to-client messages (so none is added twice)."""
    messages = _a2ui_list(part)
    return bool(messages) and all(isinstance(m, dict) and "action" not in m for m in messages or [])


def surface_messages(part: dict[str, Any]) -> list[dict[str, Any]]:
    """The server-to-client messages of a surface part, unwrapped from either wire shape."""
    messages = _a2ui_list(part)
    return [m for m in messages or [] if isinstance(m, dict)]


def _action_in(data: object) -> dict[str, Any] | None:
    if isinstance(data, dict) and isinstance(data.get("action"), dict):
        return data["action"]
    return None


def find_action(parts: Sequence[object]) -> tuple[int, dict[str, Any]] | None:
    """The first A2UI ``action`` event in ``parts`` and the index of its part, or None.

    Accepted as the A2UI extension sends it (a list of client-to-server messages, v0.3-wrapped or bare) and
    as a single ``{"version", "action"}`` object, which a v0.3 client whose DataParts must be objects may
    send instead.
    """
    for index, part in enumerate(parts):
        messages = _a2ui_list(part)
        candidates = messages if messages is not None else [part.get("data") if isinstance(part, dict) else None]
        for message in candidates:
            action = _action_in(message)
            if action is not None:
                return index, action
    return None


def _data_model(metadata: object, surface_id: str) -> dict[str, Any]:
    """The surface's data model from ``metadata.a2uiClientDataModel`` (sent because ``sendDataModel`` is on)."""
    if not isinstance(metadata, dict):
        return {}
    model = metadata.get(CLIENT_DATA_MODEL_KEY)
    surfaces = model.get("surfaces") if isinstance(model, dict) else None
    surface = surfaces.get(surface_id) if isinstance(surfaces, dict) else None
    return dict(surface) if isinstance(surface, dict) else {}


def answer_of(form: dict[str, Any], action: dict[str, Any], metadata: object, expected_surface: str) -> dict[str, Any]:
    """The values an action event gives for ``form``: the data model from the metadata, overlaid with the
    event's context (the Button's bindings and its option). Not validated: pass it to the resolve path.

    An event from another surface (an earlier hold of this task, another task) is refused rather than read
    as an answer to the hold shown now.
    """
    surface_id = action.get("surfaceId")
    if not isinstance(surface_id, str) or not surface_id:
        raise ActionError("an A2UI action needs its surfaceId")
    if surface_id != expected_surface:
        raise ActionError(f"the A2UI action is from surface {surface_id!r}, not the one this task shows")
    context = action.get("context", {})
    if not isinstance(context, dict):
        raise ActionError("an A2UI action's context must be an object")
    return surface_values(form, {**_data_model(metadata, surface_id), **context}, context)


def redact_action_part(form: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Copy of an action DataPart with the form's sensitive values masked in every event's context."""
    secret = sensitive_fields(form)

    def mask(message: object) -> object:
        action = _action_in(message)
        if action is None or not isinstance(action.get("context"), dict):
            return message
        context = {k: MASK if k in secret else v for k, v in action["context"].items()}
        assert isinstance(message, dict)
        return {**message, "action": {**action, "context": context}}

    data = part.get("data")
    if isinstance(data, list):
        return {**part, "data": [mask(m) for m in data]}
    if isinstance(data, dict) and isinstance(data.get("value"), list):
        return {**part, "data": {**data, "value": [mask(m) for m in data["value"]]}}
    return {**part, "data": mask(data)}


def redact_data_model(form: dict[str, Any], metadata: object) -> object:
    """Copy of message metadata with the form's sensitive values masked in every surface's data model."""
    if not isinstance(metadata, dict):
        return metadata
    model = metadata.get(CLIENT_DATA_MODEL_KEY)
    surfaces = model.get("surfaces") if isinstance(model, dict) else None
    if not isinstance(surfaces, dict):
        return metadata
    secret = sensitive_fields(form)
    masked = {
        sid: {k: MASK if k in secret else v for k, v in values.items()} if isinstance(values, dict) else values
        for sid, values in surfaces.items()
    }
    assert isinstance(model, dict)
    return {**metadata, CLIENT_DATA_MODEL_KEY: {**model, "surfaces": masked}}
