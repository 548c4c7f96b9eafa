"""The benchmark harness still runs: every scenario, briefly. Performance is never asserted here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg import PG_URL

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is required under CI=true (apt-get install -y wrk)")
        pytest.skip("wrk is not installed (apt-get install -y wrk); the benchmark harness needs it")
    return path


def test_every_scenario_runs(wrk: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    argv = [sys.executable, "-m", "bench", "--quick", "--rounds", "1", "--duration", "1"]
    argv += ["--held", "100", "--resolves", "40", "--race", "20", "--out", str(out)]
    # scenario 7 runs against the tests' PostgreSQL (AIRLOCK_TEST_PG), wherever that is
    env = {**os.environ, "AIRLOCK_BENCH_PG": PG_URL}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "machine: nproc=" in done.stdout and "| scenario" in done.stdout

    result = json.loads(out.read_text())
    names = [r["scenario"] for r in result["rows"]]
    pg_skipped = any(n.startswith("scenario 7 skipped") for n in result["notes"])
    if pg_skipped and os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {result['notes']}")
    expected = ["floor", "ref", "1 ", "2 ", "3 ", "4 ", "5 ", "6 "] + ([] if pg_skipped else ["7 "])
    for prefix in expected:
        assert any(n.startswith(prefix) for n in names), f"no row for {prefix!r} in {names}"
    assert names.count("1 allow, --unsynced-turns") == 2, names  # at c=1 and at c=32
    if not pg_skipped:  # two replicas on one core, and a replica on each core
        assert "7 allow (pg, 2 replicas, a core each)" in names and "7 resolve (pg, 2 replicas, a core each)" in names

    for r in result["rows"]:
        if r["rps"] is not None:
            assert r["rps"] > 0, r
            assert "bad answers" not in r["result"], r
    race = next(r for r in result["rows"] if r["scenario"].startswith("5 "))
    assert race["result"].startswith("OK"), race
    resolves = [r for r in result["rows"] if " resolve (" in r["scenario"]]
    assert all(r["result"].startswith("40 resolved") for r in resolves), resolves
    assert not [n for n in result["notes"] if "resolved" in n or "webhooks" in n], result["notes"]
