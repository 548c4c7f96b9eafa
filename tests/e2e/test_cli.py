"""``airlock approvals …`` as a person runs it: subprocesses against a real ``airlock serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "rm -rf /var/cache/build"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "home")
    yield srv
    stop_server(srv)


def call(url: str, token: str, method: str = "GET", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def create(server: Server, agent_token: str, message: str) -> str:
    status, body = call(
        f"{server.gateway_url}/v1/approvals",
        agent_token,
        "POST",
        {"tool": "bash", "agent": "build-bot", "message": message, "command": COMMAND},
    )
    assert status == 201, body
    return body["id"]


def cli(*args: str, token: str | None = None, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AIRLOCK_TOKEN", "AIRLOCK_URL")}
    if token is not None:
        env["AIRLOCK_TOKEN"] = token
    if url is not None:
        env["AIRLOCK_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "approvals", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_show_approve_deny(server: Server) -> None:
    admin = server.token("alice", "approver", "admin")
    agent = server.token("build-bot", "agent")
    first = create(server, agent, "clear the build cache")
    second = create(server, agent, "clear it again")
    url = ["--url", server.gateway_url]

    listed = cli("list", *url, token=admin)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "TOOL", "AGENT", "POLICY", "EXPIRES", "SUMMARY"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {first, second}
    assert "bash" in rows[first] and "build-bot" in rows[first] and COMMAND in rows[first]

    as_json = cli("list", "--json", token=admin, url=server.gateway_url)  # the URL from AIRLOCK_URL
    assert as_json.returncode == 0, as_json.stderr
    assert {a["id"] for a in json.loads(as_json.stdout)["approvals"]} == {first, second}

    shown = cli("show", first, *url, token=admin)
    assert shown.returncode == 0, shown.stderr
    fields = dict(line.split(None, 1) for line in shown.stdout.splitlines())
    assert (fields["id"], fields["status"], fields["command"]) == (first, "pending", COMMAND)

    approved = cli("approve", first, "--reason", "cache is rebuilt nightly", *url, token=admin)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.split()[:2] == ["approved", first]

    shown = cli("show", first, "--json", *url, token=admin)
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert (body["status"], body["resolved_by"]) == ("approved", "alice")  # the token's subject, not a label

    # a second answer to the same approval is a replay: the server's 410 message, a non-zero exit
    again = cli("approve", first, *url, token=admin)
    assert again.returncode != 0
    assert again.stdout == ""
    status, err = call(f"{server.gateway_url}/v1/approvals/{first}/resolve", admin, "POST", {"approved": True})
    assert status == 410
    assert err["error"]["message"] in again.stderr
    assert "410" in again.stderr

    denied = cli("deny", second, "--reason", "the nightly job clears it", *url, token=admin)
    assert denied.returncode == 0, denied.stderr
    assert denied.stdout.split()[:2] == ["denied", second]
    shown = json.loads(cli("show", second, "--json", *url, token=admin).stdout)
    assert (shown["status"], shown["reason"]) == ("denied", "the nightly job clears it")

    empty = cli("list", *url, token=admin)
    assert empty.returncode == 0 and empty.stdout.strip() == "no pending approvals"


def test_errors_go_to_stderr_with_a_nonzero_exit(server: Server) -> None:
    url = ["--url", server.gateway_url]
    unauthenticated = cli("list", *url)
    assert unauthenticated.returncode != 0
    assert "401" in unauthenticated.stderr and unauthenticated.stdout == ""

    admin = server.token("alice", "approver", "admin")
    missing = cli("show", "no-such-approval", *url, token=admin)
    assert missing.returncode != 0
    assert "no approval no-such-approval" in missing.stderr and "404" in missing.stderr

    agent_only = cli("approve", "no-such-approval", "--token", server.token("bot", "agent"), *url)
    assert agent_only.returncode != 0 and agent_only.stderr.startswith("error: ")

    unreachable = cli("list", "--url", "http://127.0.0.1:9", token=admin)
    assert unreachable.returncode != 0 and "cannot reach" in unreachable.stderr


def test_list_follows_every_page(server: Server) -> None:
    admin = server.token("alice", "approver", "admin")
    agent = server.token("build-bot", "agent")
    made = {create(server, agent, f"clear cache {i}") for i in range(5)}
    listed = cli("list", "--page-size", "2", "--json", "--url", server.gateway_url, token=admin)
    assert listed.returncode == 0, listed.stderr
    body = json.loads(listed.stdout)
    ids = [a["id"] for a in body["approvals"]]
    assert len(ids) == 5 and set(ids) == made
    assert body["next_cursor"] is None


def test_approve_with_edits_and_a_quorum_from_the_command_line(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "home", "--demo")
    try:
        admin = srv.token("root", "admin")
        policy = {
            "name": "bulk_ops_approval",
            "scope_type": "tool",
            "enforcement": "require_approval",
            "evaluator": {"plugin": "tool_match", "config": {"tools": ["bulk_delete_expired"]}},
            "allow_edits": True,
        }
        assert call(f"{srv.gateway_url}/internal/policies/new", admin, "POST", policy)[0] == 201
        url = ["--url", srv.gateway_url]
        alice = srv.token("alice", "approver")

        def held() -> str:
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "message/send",
                "params": {
                    "message": {
                        "role": "user",
                        "messageId": "m",
                        "parts": [{"kind": "text", "text": "Delete all expired records"}],
                    }
                },
            }
            status, answer = call(f"{srv.mesh_url}/", srv.token("bot", "agent"), "POST", body)
            assert status == 200 and answer["result"]["status"]["state"] == "input-required", answer
            return answer["result"]["metadata"]["airlock"]["approvalId"]

        bad = cli("approve", held(), "--arguments", "[1, 2]", *url, token=alice)
        assert bad.returncode != 0 and "must be a JSON object" in bad.stderr

        edited = cli(
            "approve", held(), "--arguments", '{"items": ["rec-000"], "database": "staging"}', *url, token=alice
        )
        assert edited.returncode == 0, edited.stderr
        assert edited.stdout.split()[0] == "approved" and "(task completed)" in edited.stdout

        update = {"policy_id": "bulk_ops_approval", "approvals_required": 2}
        assert call(f"{srv.gateway_url}/internal/policies/update", admin, "POST", update)[0] == 200
        two = held()
        first = cli("approve", two, *url, token=alice)
        assert first.returncode == 0, first.stderr
        assert first.stdout.split() == ["pending", two, "(1", "of", "2", "approvals)"]
        second = cli("approve", two, *url, token=srv.token("bob", "approver"))
        assert second.returncode == 0 and "(task completed)" in second.stdout, second.stderr
    finally:
        stop_server(srv)
