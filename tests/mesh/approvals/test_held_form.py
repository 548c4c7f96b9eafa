"""A hold's form: built and checked once per tool and fields, each hold with a copy of its own."""

from __future__ import annotations

from typing import Any

import pytest

from a2ui import FormError, approval_form
from mesh.approvals import records
from mesh.approvals.records import held_form

FIELDS = [{"id": "reason", "type": "text", "label": "Why?", "required": True}]


def test_a_hold_gets_the_approval_form_built_once_and_a_copy_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []

    def counted(tool: str | None, fields: Any) -> dict[str, Any]:
        built.append(tool)
        return approval_form(tool, fields)

    monkeypatch.setattr(records, "approval_form", counted)
    first = held_form("form.once", FIELDS)
    assert first == approval_form("form.once", FIELDS)
    first["props"]["fields"][1]["label"] = "changed by one task"
    second = held_form("form.once", tuple(FIELDS))
    assert second == approval_form("form.once", FIELDS) and second is not first
    assert held_form("form.other", FIELDS)["props"]["description"] == "form.other requires approval."
    assert built == ["form.once", "form.other"]


def test_a_bad_field_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(FormError):
            held_form("form.bad", [{"id": "decision", "type": "text"}])
