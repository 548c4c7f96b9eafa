"""Schemathesis against a real ``airlock serve``: every REST operation of ``schemas/openapi.json`` with every
check (server errors, status codes, content types, headers and bodies as documented, schema-valid data
accepted, schema-violating data refused, undeclared methods and the Allow header, auth), seeded and bounded
in examples and time. It must end with no failure: where the server and the document disagree, one of them is
wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, start_server, stop_server

HERE = Path(__file__).parent
SEED = os.environ.get("AIRLOCK_FUZZ_SEED", "1")
MAX_EXAMPLES = os.environ.get("AIRLOCK_FUZZ_EXAMPLES", "20")
MAX_TIME = os.environ.get("AIRLOCK_FUZZ_SECONDS", "90")
# the event stream never ends by itself; tests/gateway/test_events_stream.py covers it
EXCLUDED = ("/v1/events/stream",)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # an email channel needs signed links; the limits are tested on their own (tests/flood), and here they would
    # only turn generated requests into 429s
    server = start_server(tmp_path / "home", "--sign", "--rate-limit", "off", "--attempt-limit", "off")
    yield server
    stop_server(server)


def test_schemathesis_finds_nothing(server: Server, tmp_path: Path) -> None:
    st = Path(sys.executable).with_name("st")
    token = server.token("root", "admin")
    cmd = [
        str(st),
        "--config-file",
        str(HERE / "schemathesis.toml"),
        "run",
        f"{server.gateway_url}/openapi.json",
        # the coverage phase is left out: schemathesis's own generator sometimes fails inside it, an error of
        # the tool that would make this test fail at random
        "--phases",
        "examples,fuzzing,stateful",
        "--checks",
        "all",
        "--seed",
        SEED,
        "--max-examples",
        MAX_EXAMPLES,
        "--max-time",
        MAX_TIME,
        "--workers",
        "4",
        "--request-timeout",
        "15",
        "--generation-database",
        "none",
        "--no-color",
        "-H",
        f"Authorization: Bearer {token}",
        *[a for path in EXCLUDED for a in ("--exclude-path", path)],
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=int(MAX_TIME) + 120, cwd=tmp_path)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20000:]
    print(report[report.find("SUMMARY") :])  # the figures, shown with pytest -s
