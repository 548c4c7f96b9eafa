"""What a decision's kept action masks: names a form marks sensitive, at any depth, and their values in the
text; an answered form's sensitive names (carried on the answer) too."""

from __future__ import annotations

from a2ui import MASK
from mesh.core.decisions import action_of, answered_fields, kept_action, sensitive_ids
from mesh.policy import Action
from mesh.store import DecisionRecord


def test_sensitive_ids_are_passwords_and_fields_marked_so() -> None:
    fields = [
        {"id": "otp", "type": "password"},
        {"id": "note", "type": "text", "sensitive": True},
        {"id": "reason", "type": "text"},
        {"type": "password"},
    ]
    assert sensitive_ids(fields) == {"otp", "note"}


def test_kept_action_masks_names_at_any_depth_and_their_values_in_the_text() -> None:
    action = Action(
        agent="bot",
        tool="login",
        arguments={"user": "ann", "password": "hunter22", "nested": [{"password": {"v": 123456}}]},
        text="log in as ann with hunter22 (pin 123456)",
        context={"sender": "ann"},
    )
    kept = kept_action(action, frozenset({"password"}))
    assert kept["arguments"] == {"user": "ann", "password": MASK, "nested": [{"password": MASK}]}
    assert kept["text"] == f"log in as ann with {MASK} (pin {MASK})"
    assert kept["context"] == {"sender": "ann"}
    # nothing to mask: kept as it is
    assert kept_action(action, frozenset())["arguments"] == dict(action.arguments)


def test_an_answers_sensitive_names_are_read_from_its_metadata() -> None:
    assert answered_fields({"airlock": {"sensitive": ["otp", 3]}}) == {"otp"}
    assert answered_fields({"airlock": {"sensitive": "otp"}}) == frozenset()
    assert answered_fields(None) == frozenset()


def test_a_kept_action_is_judged_again_as_kept() -> None:
    record = DecisionRecord(
        tenant="t",
        at=1.0,
        task_id="x",
        agent="bot",
        tool="rm",
        action={"arguments": {"a": 1}, "text": "hi"},
        enforcement="allow",
        policy=None,
    )
    assert action_of(record) == Action(agent="bot", tool="rm", arguments={"a": 1}, text="hi", context={})
