"""A policy decision's action as the store keeps it for dry-runs, with what a form marks sensitive masked.

The action is kept so a policy change can be tried against what agents really called (``POST
/internal/policies/dry-run``). It is masked before it is written, never after: an argument whose name a
form marks sensitive (a password field always is) is replaced by the mask at any depth, and so is that
value wherever the action's text repeats it. Masking is by name because an allowed call has no form of its
own; the names are those of every form the tenant's policies add, the deciding policy's form, and the
form an answer filled in (see :func:`answered_fields`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from a2ui import MASK, is_sensitive
from mesh.policy import Action, Decision
from mesh.store import DecisionRecord, TaskRecord

_MIN_TEXT_MASK = 4  # a masked value shorter than this is not hunted for in the text (it would mask words)


def sensitive_ids(fields: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The ids of the fields marked sensitive (passwords always are)."""
    return frozenset(f["id"] for f in fields if isinstance(f.get("id"), str) and is_sensitive(dict(f)))


def answered_fields(metadata: Mapping[str, Any] | None) -> frozenset[str]:
    """The sensitive ids an answer to an input request names (``metadata.airlock.sensitive``, set by the
    mesh on the answer it sends on): an agent may pass those values on as the arguments of its next call.
    A caller may name more: that only masks more."""
    airlock = (metadata or {}).get("airlock")
    named = airlock.get("sensitive") if isinstance(airlock, Mapping) else None
    return frozenset(n for n in named if isinstance(n, str)) if isinstance(named, list) else frozenset()


def mask(value: Any, ids: frozenset[str], found: list[str] | None = None) -> Any:
    """A copy of ``value`` with every mapping entry named in ``ids`` masked, at any depth; the string values
    masked are appended to ``found``."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in ids:
                if found is not None:
                    _strings(item, found)
                out[str(key)] = MASK
            else:
                out[str(key)] = mask(item, ids, found)
        return out
    if isinstance(value, list | tuple):
        return [mask(item, ids, found) for item in value]
    return value


def _strings(value: Any, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        into.append(str(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            _strings(item, into)
    elif isinstance(value, list | tuple):
        for item in value:
            _strings(item, into)


def kept_action(action: Action, ids: frozenset[str]) -> dict[str, Any]:
    """What the store keeps of ``action``: its arguments, text and context, masked by ``ids``."""
    if not ids:  # the usual allow path: nothing to look for
        return {"arguments": dict(action.arguments), "text": action.text, "context": dict(action.context)}
    found: list[str] = []
    arguments = mask(action.arguments, ids, found)
    context = mask(action.context, ids, found)
    text = action.text
    for secret in sorted(set(found), key=len, reverse=True):
        if len(secret) >= _MIN_TEXT_MASK:
            text = text.replace(secret, MASK)
    return {"arguments": arguments, "text": text, "context": context}


def decision_record(
    task: TaskRecord, action: Action, decision: Decision, now: float, ids: frozenset[str]
) -> DecisionRecord:
    """The row kept beside a decision's audit entry."""
    ids = ids | sensitive_ids(decision.form_fields) if decision.form_fields else ids
    return DecisionRecord(
        tenant=task.tenant,
        at=now,
        task_id=task.id,
        agent=action.agent,
        tool=action.tool,
        action=kept_action(action, ids),
        enforcement=str(decision.enforcement),
        policy=decision.policy.name if decision.policy else None,
    )


def action_of(record: DecisionRecord) -> Action:
    """The kept action, to be judged again (masked values stay masked: a policy that looks at one sees the
    mask)."""
    kept = record.action
    return Action(
        agent=record.agent,
        tool=record.tool,
        arguments=kept.get("arguments") or {},
        text=kept.get("text") or "",
        context=kept.get("context") or {},
    )
