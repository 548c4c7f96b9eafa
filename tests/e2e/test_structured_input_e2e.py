"""The guide's structured-input example, end to end against ``airlock serve --demo`` running as a process.

The demo agent asks for credentials when told to connect to the production database; the guide's values
answer it through ``/messages/{id}/resolve``. The password is a long random string so that finding it
anywhere (the store's files, the server log, a listing, ``tasks/get``, a response) means it leaked.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Server, start_server, stop_server

CONNECT = "Connect to the production database"
MASK = "********"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # the most verbose log level, so a value logged anywhere would show up in the log
    instance = start_server(tmp_path / "home", "--demo", "--log-level", "DEBUG")
    yield instance
    stop_server(instance)


def store_bytes(home: Path) -> bytes:
    """Every byte of the store's files on disk: the database, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in sorted(home.glob("airlock.db*")))


def connect(request_id: str, task_id: str | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = (
        [{"kind": "data", "data": values}] if values is not None else [{"kind": "text", "text": CONNECT}]
    )
    message: dict[str, Any] = {"role": "user", "parts": parts}
    if task_id is not None:
        message["taskId"] = task_id
    else:
        message["contextId"] = "session-456"
    return {"jsonrpc": "2.0", "id": request_id, "method": "message/send", "params": {"message": message}}


def text_of(task: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in task["status"]["message"]["parts"])


async def test_structured_input_end_to_end(server: Server) -> None:
    password = secrets.token_urlsafe(24)[:32]
    other_password = secrets.token_urlsafe(24)[:32]
    values = {"username": "john@example.com", "password": password, "remember_me": True}
    approver = {"Authorization": f"Bearer {server.token('alice', 'approver', 'admin')}"}
    sender = {"Authorization": f"Bearer {server.token('carol', 'agent')}"}
    gw, mesh = server.gateway_url, server.mesh_url
    seen: list[str] = []  # every response body, to search for the password afterwards

    async with aiohttp.ClientSession() as http:

        async def post(url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
            async with http.post(url, json=body, headers=headers) as resp:
                text = await resp.text()
                seen.append(text)
                return resp.status, json.loads(text)

        # The demo agent asks for credentials with the guide's form.
        status, reply = await post(f"{mesh}/send", connect("1"), approver)
        assert status == 200, reply
        task = reply["result"]
        assert task["status"]["state"] == "input-required"
        [part] = task["status"]["message"]["parts"]
        assert part["kind"] == "data" and part["metadata"] == {"mimeType": "application/json+a2ui"}
        form = part["data"]
        assert form["type"] == "Form"
        fields = {f["id"]: f for f in form["props"]["fields"]}
        assert list(fields) == ["username", "password", "remember_me"]
        assert fields["username"]["type"] == "email" and fields["username"]["required"] is True
        assert fields["password"]["type"] == "password" and fields["password"]["required"] is True
        assert fields["remember_me"]["type"] == "checkbox"

        # It is listed as an input request, not an approval.
        status, listed = await post(f"{gw}/messages/pending", {"tenant_id": "default"}, approver)
        assert status == 200, listed
        row = next(m for m in listed["messages"] if m["message_id"] == task["id"])
        assert row["kind"] == "input"
        assert row["state"] == "input-required"
        assert row["session_id"] == "session-456"
        assert row["form"] == form

        url = f"{gw}/messages/{task['id']}/resolve"
        # A field id the form does not have is refused, naming it; nothing is decided.
        status, body = await post(url, {"resolution": {**values, "user_name": "john"}}, approver)
        assert status == 400, body
        assert body["error"]["field"] == "user_name" and "user_name" in body["error"]["message"]
        # A wrong type is refused the same way.
        status, body = await post(url, {"resolution": {**values, "username": "not an email"}}, approver)
        assert status == 400 and body["error"]["field"] == "username", body

        # The guide's values complete the task; the answer names the user, never the password.
        status, body = await post(url, {"resolution": values}, approver)
        assert status == 200, body
        assert body["ok"] is True and body["decision"] == "submit"
        assert body["new_state"] == "completed"
        answer = text_of(body["task"])
        assert "john@example.com" in answer and "will remember you" in answer
        status, body = await post(url, {"resolution": values}, approver)
        assert status == 409, body

        status, listed = await post(f"{gw}/messages/pending", {"tenant_id": "default"}, approver)
        assert status == 200 and all(m["message_id"] != task["id"] for m in listed["messages"])

        # tasks/get shows the answer in history with the password masked.
        status, got = await post(
            f"{mesh}/",
            {"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task["id"], "historyLength": 50}},
            approver,
        )
        assert status == 200 and got["result"]["status"]["state"] == "completed", got
        answers = [m for m in got["result"]["history"] if any(p["kind"] == "data" for p in m["parts"])]
        kept = [p["data"] for m in answers for p in m["parts"] if p["kind"] == "data" and "username" in p["data"]]
        assert kept == [{"username": "john@example.com", "password": MASK, "remember_me": True}]

        # The sender may answer the A2A way: message/send with the task's id and a DataPart of values.
        status, reply = await post(f"{mesh}/send", connect("2"), sender)
        second = reply["result"]
        assert second["status"]["state"] == "input-required", reply
        a2a_values = {"username": "ada@example.com", "password": other_password, "remember_me": False}
        status, reply = await post(f"{mesh}/send", connect("3", second["id"], a2a_values), sender)
        assert status == 200 and "result" in reply, reply
        assert reply["result"]["status"]["state"] == "completed"
        assert "ada@example.com" in text_of(reply["result"]) and "will not remember you" in text_of(reply["result"])
        status, got2 = await post(
            f"{mesh}/",
            {"jsonrpc": "2.0", "id": "h", "method": "tasks/get", "params": {"id": second["id"], "historyLength": 50}},
            sender,
        )
        assert status == 200 and MASK in json.dumps(got2)

    for secret in (password, other_password):
        assert not any(secret in text for text in seen), "a response carried the password"
        assert secret.encode() not in store_bytes(server.home), "the store holds the password in clear"
        assert secret not in server.log(), "the server log holds the password"
    assert "john@example.com" in "".join(seen)  # the searches above looked where values do show up
