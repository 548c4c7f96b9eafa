"""Ids: standard UUID text, time-ordered (version 7) so the indexes keyed by them grow at one edge."""

from __future__ import annotations

import os
import uuid

import pytest

from mesh.wire import models
from mesh.wire.models import new_id


def test_an_id_is_a_version_7_uuid_in_canonical_text() -> None:
    made = new_id()
    parsed = uuid.UUID(made)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == made


def test_ids_sort_by_the_millisecond_they_were_made_in(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    for ms in (1_700_000_000_000, 1_700_000_000_001, 1_700_000_086_400):
        monkeypatch.setattr(models.time, "time_ns", lambda ms=ms: ms * 1_000_000 + 999)
        made.append(new_id())
        assert uuid.UUID(made[-1]).int >> 80 == ms  # the first 48 bits are the milliseconds
    assert made == sorted(made)


def test_ids_made_in_one_millisecond_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.time, "time_ns", lambda: 1_700_000_000_000_000_000)
    assert len({new_id() for _ in range(10_000)}) == 10_000  # 74 random bits each


def test_a_forked_child_makes_ids_of_its_own() -> None:
    """Random bytes are read ahead; a child must not hand out the ones its parent read (the same ids)."""
    new_id()  # the parent holds bytes read ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, ",".join(new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {new_id() for _ in range(50)}
    assert len(child) == 50 and not {i[14:] for i in child} & {i[14:] for i in parent}
