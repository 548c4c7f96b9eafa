"""A downstream agent's endpoint may carry ``user:password@``: it never reaches a task's status or a log."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from mesh.agents.remote import RemoteAgent, RemoteAgentError, without_credentials


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_an_unreachable_endpoints_password_is_not_in_the_error(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://bob:hunter2-secret@127.0.0.1:{closed_port()}/a2a"
    agent = RemoteAgent("vault", url, {"url": url, "name": "vault"}, timeout_s=5)
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(RemoteAgentError) as caught:
            await agent._call("message/send", {}, time.monotonic() + 5)
    finally:
        await agent._close()
    assert "unreachable" in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value) and "hunter2-secret" not in caplog.text


def test_without_credentials_keeps_the_rest_of_the_address() -> None:
    assert without_credentials("https://u:p@agent.example:8443/a2a?x=1") == "https://agent.example:8443/a2a?x=1"
    assert without_credentials("http://agent.example/a2a") == "http://agent.example/a2a"
