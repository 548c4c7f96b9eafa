"""Status timestamps: ISO-8601 UTC with milliseconds and ``Z``, exact across second, day and year edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mesh.wire import models
from mesh.wire.models import utc_now, utc_stamp

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def by_datetime(ns: int) -> str:
    moment = EPOCH + timedelta(microseconds=ns // 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize(
    "ns",
    [
        0,
        1_700_000_000_000_000_000,
        1_700_000_000_999_999_999,  # the last nanosecond of a second: milliseconds are cut, never rounded up
        1_700_000_001_000_000_000,
        1_704_067_199_999_000_000,  # 2023-12-31T23:59:59.999Z
        1_704_067_200_000_000_000,  # 2024-01-01T00:00:00.000Z
        1_709_164_800_123_456_789,  # 2024-02-29
    ],
)
def test_a_stamp_reads_as_the_same_instant_as_a_datetime(ns: int) -> None:
    assert utc_stamp(ns) == by_datetime(ns)


def test_stamps_in_turn_across_seconds_each_carry_their_own_second() -> None:
    """The text up to the second is kept from one call to the next; a new second must replace it."""
    start = 1_700_000_000_000_000_000
    for step in range(0, 5_000_000_000, 250_000_000):  # back and forth over five second edges
        for ns in (start + step, start + 5_000_000_000 - step):
            assert utc_stamp(ns) == by_datetime(ns)


def test_now_is_the_clock_s_instant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.time, "time_ns", lambda: 1_767_225_599_500_000_000)
    assert utc_now() == "2025-12-31T23:59:59.500Z"
