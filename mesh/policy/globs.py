"""Glob compilation, done once per policy so matching is a single regex call."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable


def compile_globs(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regex equivalent to ``any(fnmatchcase(s, p) for p in patterns)`` (use ``.match``)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def translate_path_glob(pattern: str) -> str:
    """Translate a path glob where ``**`` crosses directories and ``*``/``?`` do not.

    ``a/**/b`` matches ``a/b`` and ``a/x/y/b``; ``a/*`` matches ``a/x`` but not ``a/x/y``.
    ``[...]`` classes are supported (``[!...]`` negates); an unclosed ``[`` is literal.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                if pattern.startswith("**/", i):
                    out.append("(?:.*/)?")
                    i += 3
                else:
                    out.append(".*")
                    i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1  # a leading "]" is a member of the class, as in fnmatch
            end = pattern.find("]", j)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                negate = body.startswith("!")
                if negate:
                    body = body[1:]
                body = body.replace("\\", "\\\\")
                if not negate and body.startswith("^"):
                    body = "\\" + body
                out.append(f"[{'^' if negate else ''}{body}]")
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return f"(?s:{''.join(out)})"


def compile_path_globs(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regex for a set of path globs (use ``.fullmatch``)."""
    return re.compile("|".join(f"(?:{translate_path_glob(p)})" for p in patterns))
