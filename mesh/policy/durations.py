"""Duration parsing shared by policy timeouts and the server's ``--approval-timeout``.

Humans write "90s" or "2h"; storage and timers want whole seconds. Keeping one
parser means the CLI and the REST API accept exactly the same spellings.
"""

from __future__ import annotations

import re

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+)([smhd])")
_COMPOUND = re.compile(r"(?:\d+[smhd])+")


def parse_duration(value: object) -> int:
    """Return ``value`` as a positive number of seconds.

    Accepts an int (seconds), a string of digits (seconds), or unit strings such as
    "90s", "15m", "2h", "1d" and combinations like "1h30m". Raises ``ValueError`` for
    anything else, and for zero or negative durations: a timeout of zero would expire
    every hold before a person could see it.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected seconds or a string like '15m'")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.isascii() and text.isdigit():
            seconds = int(text)
        elif _COMPOUND.fullmatch(text):
            seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
        else:
            raise ValueError(f"invalid duration {value!r}: expected seconds or a string like '90s', '15m', '2h'")
    else:
        raise ValueError(f"invalid duration {value!r}: expected seconds or a string like '15m'")
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be positive")
    return seconds
