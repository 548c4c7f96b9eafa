"""The client as a package: shipped in the distribution, free of the server, and its pure parts."""

from __future__ import annotations

import inspect
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from setuptools import find_packages

from airlock.client.arguments import check_json, rebind, tool_arguments
from airlock.client.decision import decision_of
from airlock.client.durations import seconds

ROOT = Path(__file__).resolve().parents[2]


def test_the_distribution_ships_the_client() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(where=str(ROOT), include=include)
    assert {"airlock", "airlock.client"} <= set(packages)


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    code = (
        "import sys, airlock.client\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gateway', 'mesh', 'a2ui')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2", 2), (0.5, 0.5), (timedelta(minutes=2), 120), ("1d", 86400)],
)
def test_durations(value: Any, expected: float) -> None:
    assert seconds(value) == expected


@pytest.mark.parametrize("value", ["", "soon", "1x", 0, -3, "0s", True])
def test_bad_durations(value: Any) -> None:
    with pytest.raises(ValueError):
        seconds(value)


class Files:
    def remove(self, path: str, *more: str, force: bool = False, **options: Any) -> None: ...


def test_a_methods_arguments_leave_out_self_and_spread_keyword_extras() -> None:
    signature = inspect.signature(Files.remove)
    files = Files()
    bound = signature.bind(files, "/a", "/b", force=True, mode="fast")
    bound.apply_defaults()
    assert tool_arguments(signature, bound) == {"path": "/a", "more": ["/b"], "force": True, "mode": "fast"}
    args, kwargs = rebind(signature, bound, {"path": "/c", "more": [], "force": False, "mode": "slow"})
    assert args == [files, "/c"] and kwargs == {"force": False, "mode": "slow"}


def test_edited_arguments_the_function_cannot_take_are_a_type_error() -> None:
    def delete(path: str) -> None: ...

    signature = inspect.signature(delete)
    bound = signature.bind("/a")
    with pytest.raises(TypeError, match="does not take"):
        rebind(signature, bound, {"path": "/a", "recursive": True})
    with pytest.raises(TypeError, match="leave out 'path'"):
        rebind(signature, bound, {})


def test_json_is_checked_deeply() -> None:
    check_json({"a": [1, 2.5, None, True, {"b": "c"}], "t": (1, 2)}, "arguments")
    with pytest.raises(TypeError, match=r"arguments\['a'\]\[1\] is a builtins.set"):
        check_json({"a": [1, {2}]}, "arguments")
    with pytest.raises(TypeError, match="inf"):
        check_json({"a": float("inf")}, "arguments")


def task(state: str, parts: list[dict[str, Any]], metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"parts": parts}
    if metadata:
        message["metadata"] = metadata
    return {"id": "t-1", "status": {"state": state, "message": message}}


def test_decisions_read_from_the_wire() -> None:
    asked = {"paths": ["/a"]}
    allowed = decision_of(task("completed", [{"kind": "data", "data": {"decision": "allow"}}]), "rm", asked)
    assert allowed.allowed and allowed.outcome == "allowed" and allowed.arguments == asked
    edited = decision_of(
        task(
            "completed",
            [
                {
                    "data": {
                        "decision": "allow",
                        "approvedBy": "al",
                        "arguments": {"paths": []},
                        "edited": {"changed": ["paths"]},
                    }
                }
            ],
        ),
        "rm",
        asked,
    )
    assert edited.outcome == "approved" and edited.arguments == {"paths": []} and edited.edited == ("paths",)
    blocked = decision_of(
        task("rejected", [{"text": "Blocked by policy a:b: too risky"}], {"reason": "blocked", "policy": "a:b"}),
        "rm",
        asked,
    )
    assert blocked.outcome == "blocked" and blocked.policy == "a:b" and blocked.reason == "too risky"
    canceled = decision_of(task("canceled", []), "rm", asked)
    assert not canceled.allowed and canceled.outcome == "canceled"
