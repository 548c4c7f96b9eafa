"""Field definitions of an approval Form: the vocabulary and its validation rules.

A form arrives either from Airlock itself or from an agent that wants extra input from
the human. Both go through :func:`normalize_field`, so a malformed definition is
rejected up front with an error that names the field, instead of surfacing later as a
confusing resolution failure or a broken rendering.
"""

from __future__ import annotations

import copy
import re
from typing import Any

MIME_TYPE = "application/json+a2ui"
FIELD_TYPES: tuple[str, ...] = ("action", "text", "email", "password", "number", "checkbox", "select")
DECISION_FIELD = "decision"
MASK = "********"

# Field ids become JSON keys, JSON Pointer segments and component-id suffixes, so they
# are restricted to identifiers: no "/" or "~" to escape, no "-" to collide on.
_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# The characters Python's ``str.isspace`` (so ``str.strip``) counts as blank, spelled out: ``\s`` means
# another set in each regex dialect (Python's Unicode one, Python's ASCII one, ECMA 262's), and these
# patterns are read by JSON Schema validators and test-data generators in all of them.
WHITESPACE = r"\t\n\u000b\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

# A plausibility check only: deliverability is not something a form can decide.
EMAIL_PATTERN = rf"^[^@{WHITESPACE}]+@[^@{WHITESPACE}]+\.[^@{WHITESPACE}]+$"
_EMAIL_RE = re.compile(EMAIL_PATTERN)

_COMMON_KEYS = frozenset(
    {"id", "type", "label", "required", "sensitive", "placeholder", "description", "default"}
)
_EXTRA_KEYS: dict[str, frozenset[str]] = {
    "action": frozenset({"options"}),
    "select": frozenset({"options"}),
    "number": frozenset({"min", "max"}),
    "text": frozenset({"maxLength"}),
    "password": frozenset({"maxLength"}),
    "email": frozenset(),
    "checkbox": frozenset(),
}
_OPTION_KEYS = frozenset({"value", "label"})
_STRING_KEYS = ("label", "placeholder", "description")
_BOOL_KEYS = ("required", "sensitive")


class FormError(ValueError):
    """A form or field definition is malformed.

    ``field`` names the offending field by id when it is known, otherwise by its
    position (``fields[2].id``), so callers can point the author at the exact spot.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def is_number(value: object) -> bool:
    """JSON numbers only: ``bool`` is an ``int`` subclass in Python but not a number in JSON."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_email(value: object) -> bool:
    """Whether ``value`` is a string that plausibly is an email address."""
    return isinstance(value, str) and _EMAIL_RE.match(value) is not None


def is_required(field: dict[str, Any]) -> bool:
    """Action fields are the point of the form, so they are required unless opted out."""
    return bool(field.get("required", field.get("type") == "action"))


def is_sensitive(field: dict[str, Any]) -> bool:
    """Passwords are always sensitive; anything else only when marked so."""
    return field.get("type") == "password" or field.get("sensitive") is True


class _Checker:
    """Raises FormError for one field, naming it by id once the id is known good."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.field_id: str | None = None

    def fail(self, key: str | None, problem: str) -> FormError:
        path = f"{self.where}.{key}" if key else self.where
        if self.field_id is not None:
            return FormError(f"field '{self.field_id}' ({path}): {problem}", field=self.field_id)
        return FormError(f"{path}: {problem}", field=path)


def normalize_field(field: dict[str, Any], *, where: str = "field") -> dict[str, Any]:
    """Validate one field definition and return a clean deep copy of it.

    Unknown keys are rejected rather than dropped: a typo such as ``requird`` would
    otherwise silently turn a mandatory input into an optional one. ``where`` is the
    field's position in its form, used in messages when the id itself is unusable.
    """
    check = _Checker(where)
    if not isinstance(field, dict):
        raise check.fail(None, "must be a JSON object")
    field_id = field.get("id")
    if not isinstance(field_id, str) or not _ID_RE.match(field_id):
        raise check.fail("id", "id is required and must be an identifier (letters, digits, '_'; max 64)")
    check.field_id = field_id

    field_type = field.get("type")
    if field_type not in FIELD_TYPES:
        raise check.fail("type", f"type must be one of: {', '.join(FIELD_TYPES)} (got {field_type!r})")

    allowed = _COMMON_KEYS | _EXTRA_KEYS[field_type]
    unknown = [key for key in field if key not in allowed]
    if unknown:
        raise check.fail(str(unknown[0]), f"unknown key {unknown[0]!r} for a {field_type} field")

    for key in _STRING_KEYS:
        if key in field and not isinstance(field[key], str):
            raise check.fail(key, f"{key} must be a string")
    for key in _BOOL_KEYS:
        if key in field and not isinstance(field[key], bool):
            raise check.fail(key, f"{key} must be true or false")

    if field_type in ("action", "select"):
        _check_options(field, check)
    if field_type == "number":
        _check_range(field, check)
    if "maxLength" in field:
        limit = field["maxLength"]
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise check.fail("maxLength", "maxLength must be a non-negative integer")
    if "default" in field:
        _check_default(field, check)
    return copy.deepcopy(field)


def _check_options(field: dict[str, Any], check: _Checker) -> None:
    """Options are the only values a choice can take, so each must be a distinct string."""
    options = field.get("options")
    if not isinstance(options, list) or not options:
        raise check.fail("options", "options must be a non-empty list of {value, label}")
    seen: set[str] = set()
    for index, option in enumerate(options):
        key = f"options[{index}]"
        if not isinstance(option, dict):
            raise check.fail(key, "option must be a JSON object with value and label")
        unknown = [name for name in option if name not in _OPTION_KEYS]
        if unknown:
            raise check.fail(key, f"unknown option key {unknown[0]!r}")
        value = option.get("value")
        if not isinstance(value, str) or not value:
            raise check.fail(f"{key}.value", "option value must be a non-empty string")
        if "label" in option and not isinstance(option["label"], str):
            raise check.fail(f"{key}.label", "option label must be a string")
        if value in seen:
            raise check.fail(f"{key}.value", f"duplicate option value {value!r}")
        seen.add(value)


def _check_range(field: dict[str, Any], check: _Checker) -> None:
    for key in ("min", "max"):
        if key in field and not is_number(field[key]):
            raise check.fail(key, f"{key} must be a number")
    if "min" in field and "max" in field and field["min"] > field["max"]:
        raise check.fail("min", "min must not be greater than max")


def _check_default(field: dict[str, Any], check: _Checker) -> None:
    """A default must itself be a valid answer, or the pre-filled form could never submit."""
    default = field["default"]
    field_type = field["type"]
    if field_type in ("action", "select"):
        values = [option["value"] for option in field["options"]]
        if default not in values:
            raise check.fail("default", f"default must be one of: {', '.join(values)}")
    elif field_type == "number":
        if not is_number(default):
            raise check.fail("default", "default must be a number")
        if ("min" in field and default < field["min"]) or ("max" in field and default > field["max"]):
            raise check.fail("default", "default is outside min/max")
    elif field_type == "checkbox":
        if not isinstance(default, bool):
            raise check.fail("default", "default must be true or false")
    elif not isinstance(default, str):
        raise check.fail("default", "default must be a string")
    elif field_type == "email" and not is_email(default):
        raise check.fail("default", "default must be an email address")
    elif "maxLength" in field and len(default) > field["maxLength"]:
        raise check.fail("default", "default is longer than maxLength")
