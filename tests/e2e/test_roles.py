"""``--mesh-only`` and ``--gateway-only``: the two roles as separate processes over one store."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import start_server, stop_server

POLICY = {
    "name": "hold_deletes",
    "scope_type": "tool",
    "enforcement": "require_approval",
    "evaluator": {"plugin": "tool_match", "config": {"tools": ["bulk_delete_*"]}},
}
SEND = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "message/send",
    "params": {
        "message": {
            "role": "user",
            "parts": [{"kind": "text", "text": "Delete all expired records from the staging database"}],
        }
    },
}


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


async def test_mesh_and_gateway_as_separate_processes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    gateway = start_server(home, "--demo", "--gateway-only")
    mesh = start_server(home, "--demo", "--mesh-only")
    try:
        # each process serves its own role only
        assert not answers(f"{gateway.mesh_url}/.well-known/agent-card.json")
        assert not answers(f"{mesh.gateway_url}/healthz")
        auth = {"Authorization": f"Bearer {gateway.token('alice', 'approver', 'admin')}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.post(f"{gateway.gateway_url}/internal/policies/new", json=POLICY) as resp:
                assert resp.status == 201
            async with http.post(f"{mesh.mesh_url}/", json=SEND) as resp:
                task = (await resp.json())["result"]
            assert task["status"]["state"] == "input-required"
            async with http.post(f"{gateway.gateway_url}/messages/pending", json={}) as resp:
                assert [m["message_id"] for m in (await resp.json())["messages"]] == [task["id"]]
            async with http.post(
                f"{gateway.gateway_url}/messages/{task['id']}/resolve", json={"resolution": {"decision": "approve"}}
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["new_state"] == "completed"
            async with http.post(
                f"{mesh.mesh_url}/",
                json={"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"]}},
            ) as resp:
                assert (await resp.json())["result"]["status"]["state"] == "completed"
    finally:
        stop_server(mesh)
        stop_server(gateway)


@pytest.mark.parametrize("flags", [("--mesh-only", "--gateway-only")])
def test_the_two_role_flags_exclude_each_other(tmp_path: Path, flags: tuple[str, str]) -> None:
    with pytest.raises(RuntimeError, match="not allowed with"):
        start_server(tmp_path / "home", *flags)
