"""Durations as people write them (``"90s"``, ``"15m"``, ``"1h30m"``), the way the server's policies take them.

The client accepts the same spellings as a policy's ``timeout``, so one value can be copied between the two.
"""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

Duration = str | int | float | timedelta


def seconds(value: Duration) -> float:
    """``value`` in seconds: a number, a :class:`~datetime.timedelta`, or a string of number-unit pairs.

    Raises ValueError for anything else, and for a duration that is not positive (a guard that gives up
    at once would only ever report a timeout).
    """
    if isinstance(value, timedelta):
        out = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    elif isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            out = float(text)
        elif text and _PART.sub("", text) == "":
            out = sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(f"not a duration: {value!r} (write seconds, or e.g. '90s', '15m', '2h', '1h30m')")
    else:
        raise ValueError(f"not a duration: {value!r}")
    if not out > 0:
        raise ValueError(f"a duration must be positive: {value!r}")
    return out
