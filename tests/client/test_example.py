"""``examples/guarded_delete.py`` as its docstring says to run it, against ``airlock serve --demo``."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import sys
from pathlib import Path

from tests.client.conftest import WAIT_S, people
from tests.e2e.conftest import start_server, stop_server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "guarded_delete.py"


def docstring_policy() -> dict[str, object]:
    """The policy the example's docstring tells the reader to create (its ``-d '…'`` body)."""
    doc = ast.get_docstring(ast.parse(EXAMPLE.read_text())) or ""
    body = re.search(r"-d '(\{.*?\})'", doc, re.DOTALL)
    assert body is not None
    return json.loads(body.group(1))


async def test_the_example_deletes_what_the_approver_kept(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home", "--demo")
    try:
        airlock = people(server)
        status, answer = await airlock.gateway("POST", "/internal/policies/new", airlock.admin, docstring_policy())
        assert status == 201, answer
        example = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLE),
            env={**os.environ, "AGENT": airlock.agent, "AIRLOCK_MESH_URL": server.mesh_url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(WAIT_S):
                (hold,) = await airlock.held()
                assert hold["tool"] == "delete_files" and hold["policy"] == "file_deletes"
                status, approval = await airlock.gateway("GET", f"/v1/approvals/{hold['approval_id']}", airlock.alice)
                assert status == 200, approval
                files = approval["arguments"]["files"]
                assert len(files) == 5
                await airlock.resolve(hold["message_id"], decision="approve", arguments={"files": files[:2]})
                out, _ = await example.communicate()
        finally:
            if example.returncode is None:
                example.kill()
                await example.wait()
        assert example.returncode == 0, out.decode()
        assert "deleted 2 files; left: ['report-2.csv', 'report-3.csv', 'report-4.csv']" in out.decode()
    finally:
        stop_server(server)
