"""``airlock serve`` stops on SIGTERM at once even while clients follow held tasks over A2A streams: the
streams end (their clients resubscribe to the next server) instead of holding the shutdown open."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp

from tests.e2e.conftest import start_server, stop_server

POLICY = {
    "name": "hold_deletes",
    "scope_type": "tool",
    "enforcement": "require_approval",
    "evaluator": {"plugin": "tool_match", "config": {"tools": ["fs.delete"]}},
}


async def test_sigterm_ends_open_streams_and_the_server_exits_promptly(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    try:
        admin = {"Authorization": f"Bearer {server.token('root', 'admin')}"}
        agent = {"Authorization": f"Bearer {server.token('bot', 'agent')}"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{server.gateway_url}/internal/policies/new", json=POLICY, headers=admin) as r:
                assert r.status == 201
            call = {"kind": "data", "data": {"tool": "fs.delete", "arguments": {"path": "/tmp/x"}}}
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "message/send",
                "params": {"message": {"role": "user", "messageId": "m1", "parts": [call]}},
            }
            async with http.post(f"{server.mesh_url}/", json=body, headers=agent) as r:
                task = (await r.json())["result"]
            assert task["status"]["state"] == "input-required"
            follow = {"jsonrpc": "2.0", "id": 2, "method": "tasks/resubscribe", "params": {"id": task["id"]}}

            async def stream() -> list[dict]:
                seen = []
                async with http.post(f"{server.mesh_url}/", json=follow, headers=agent) as r:
                    async for line in r.content:
                        if line.startswith(b"data:"):
                            seen.append(json.loads(line[5:]))
                return seen

            streams = [asyncio.create_task(stream()) for _ in range(3)]
            await asyncio.sleep(1.0)  # the streams are open and waiting
            assert not any(s.done() for s in streams)
            server.proc.send_signal(signal.SIGTERM)
            # without the streams ending, the server would wait for them until its shutdown deadline (60 s)
            seen = await asyncio.wait_for(asyncio.gather(*streams), 10)
            code = await asyncio.to_thread(server.proc.wait, 10)
        assert code == 0 and all(s[0]["result"]["id"] == task["id"] for s in seen)
    finally:
        stop_server(server)
