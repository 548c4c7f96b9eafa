"""A policy change tried against the tenant's recorded decisions before it is saved.

Each decision's action is kept beside its audit entry (:mod:`mesh.core.decisions`). A dry-run reads the
last ``limit`` of them, newest first, and judges each twice: by the tenant's policy set as it is now, and by
the set as it would be with the change. ``before`` is the current set's verdict, not the one recorded when
the call was made: between the two sets the change is the only difference, so every call counted as
changed is changed by it (and by nothing else). How many current verdicts differ from the recorded ones
(policies changed since, run grants, holds made through the approvals API) is reported beside it, as
``differs_from_recorded``. Nothing is written.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from mesh.core.decisions import action_of, mask
from mesh.policy import CompiledPolicies, Decision, parse_duration
from mesh.store import DecisionRecord, iso

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
"""The most decisions one dry-run judges (twice each): enough for a busy day, small enough to answer at once."""
MAX_EXAMPLES = 20
_YIELD_EVERY = 250  # decisions judged between two yields to the event loop, so other requests keep going

# RFC 3339's date-time: what the document's ``format: date-time`` means, and nothing looser
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))", re.ASCII
)
_EPOCH = datetime(1970, 1, 1)


def _date_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 date-time (a leap second counts as the second before it)."""
    m = _DATE_TIME.fullmatch(text)
    if m is None:
        raise ValueError("must be an RFC 3339 date-time (2025-06-01T12:00:00Z) or a duration such as '24h'")
    year, month, day, hour, minute, second = (int(m[i]) for i in range(1, 7))
    try:
        local = datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError as exc:
        raise ValueError(f"is not a date-time: {exc}") from None
    offset = timedelta(0)
    if m[9]:
        offset = timedelta(hours=int(m[10]), minutes=int(m[11]))
        if offset >= timedelta(hours=24):
            raise ValueError("is not a date-time: the offset must be under 24 hours")
        offset = offset if m[9] == "+" else -offset
    fraction = float(m[7]) if m[7] else 0.0
    # by timedelta, not datetime.timestamp(): a date near year 1 or 9999 with an offset has no datetime in UTC
    return (local - _EPOCH - offset).total_seconds() + fraction


def parse_since(value: str, now: float) -> float:
    """The earliest decision time ``since`` admits: an RFC 3339 date-time, or a duration back from ``now``
    (``24h``, ``7d``, ``90m``, or seconds; blanks around it allowed, as for every duration). A date-time is
    taken as RFC 3339 writes it, nothing around it. ValueError says what is wrong."""
    if _DATE_TIME.fullmatch(value):
        return _date_time(value)
    try:
        return now - parse_duration(value)
    except ValueError:
        raise ValueError(
            "must be an RFC 3339 date-time (2025-06-01T12:00:00Z) or a duration such as '24h'"
        ) from None


def _example(record: DecisionRecord, before: Decision, after: Decision, ids: frozenset[str]) -> dict[str, Any]:
    kept = record.action
    return {
        "task_id": record.task_id,
        "at": iso(record.at),
        "tool": record.tool,
        "agent": record.agent,
        # masked when kept; masked again by the changed set's forms, which may mark more fields sensitive
        "arguments": mask(kept.get("arguments") or {}, ids),
        "recorded": record.enforcement,
        "before": str(before.enforcement),
        "after": str(after.enforcement),
        "policy": after.policy.name if after.policy else None,
        "policy_before": before.policy.name if before.policy else None,
        "reason": after.reason,
    }


async def compare(
    records: Sequence[DecisionRecord], current: CompiledPolicies, changed: CompiledPolicies
) -> dict[str, Any]:
    """Judge each kept action by both sets; count the verdicts that differ, by transition, and keep the
    first (newest) :data:`MAX_EXAMPLES` of them."""
    transitions: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    drift = 0
    ids = current.sensitive_fields | changed.sensitive_fields
    for n, record in enumerate(records, 1):
        action = action_of(record)
        before, after = current.evaluate(action), changed.evaluate(action)
        if str(before.enforcement) != record.enforcement:
            drift += 1
        if before.enforcement is not after.enforcement:
            transitions[f"{before.enforcement}→{after.enforcement}"] += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append(_example(record, before, after, ids))
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return {
        "evaluated": len(records),
        "changed": sum(transitions.values()),
        "transitions": dict(sorted(transitions.items())),
        "differs_from_recorded": drift,
        "examples": examples,
    }
