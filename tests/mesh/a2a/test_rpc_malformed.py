"""Malformed params are the caller's error (-32602), never an internal error with a traceback."""

from __future__ import annotations

import base64
import logging
import uuid
from typing import Any

import pytest

from tests.conftest import Airlock


def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": "m", "method": method, "params": params}


def message(**fields: Any) -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"text": "hi"}], **fields}


def token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "body",
    [
        call("ListTasks", {"status": {}}),
        call("ListTasks", {"status": []}),
        call("ListTasks", {"status": 99}),
        call("ListTasks", {"pageToken": token(f"offset:{10**30}")}),
        call("ListTasks", {"historyLength": 10**20}),
        call("GetTask", {"id": "x", "historyLength": 10**20}),
        call("SendMessage", {"message": message(role=[])}),
        call("SendMessage", {"message": message(role={})}),
        call("tasks/get", {"id": "x", "historyLength": 2**63}),
        call(
            "message/send",
            {
                "message": {
                    "role": "user",
                    "parts": [{"kind": "text", "text": "x"}],
                    "messageId": "m1",
                    "kind": "message",
                },
                "configuration": {"historyLength": 2**63},
            },
        ),
    ],
)
async def test_malformed_params_are_invalid_params(
    airlock: Airlock, body: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        answer = await airlock.rpc(body)
    assert answer.get("error", {}).get("code") == -32602, answer
    assert "Traceback" not in caplog.text and "internal error" not in caplog.text
