"""The nesting limit of a JSON-RPC body, with and without the raw text that settles most bodies at once."""

from __future__ import annotations

import orjson
import pytest

from mesh.wire.jsonrpc import MAX_DEPTH, too_deep


def nested(levels: int, *, noise: str = "") -> bytes:
    """``levels`` arrays one inside the other, the innermost holding a string ``noise``."""
    return ("[" * levels + orjson.dumps(noise).decode() + "]" * levels).encode()


@pytest.mark.parametrize("levels", [1, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 3 * MAX_DEPTH])
def test_the_answer_is_the_same_with_the_raw_text_or_without(levels: int) -> None:
    raw = nested(levels)
    body = orjson.loads(raw)
    assert too_deep(body) is (levels > MAX_DEPTH)
    assert too_deep(body, raw=raw) is (levels > MAX_DEPTH)


def test_brackets_inside_strings_never_hide_a_deep_body() -> None:
    """Brackets in strings count as levels in the shortcut: they can only send a body on to the walk."""
    shallow = nested(2, noise="{[" * MAX_DEPTH)
    assert too_deep(orjson.loads(shallow), raw=shallow) is False
    deep = nested(MAX_DEPTH + 1, noise="]}")
    assert too_deep(orjson.loads(deep), raw=deep) is True


def test_objects_count_as_levels_too() -> None:
    raw = ('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1)).encode()
    assert too_deep(orjson.loads(raw), raw=raw) is True
    raw = ('{"a":' * MAX_DEPTH + "1" + "}" * MAX_DEPTH).encode()
    assert too_deep(orjson.loads(raw), raw=raw) is False
