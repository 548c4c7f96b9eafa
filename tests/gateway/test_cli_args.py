"""Bad settings for the CLI are usage errors naming the option, never tracebacks; the client keeps its token."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from gateway.settings import mesh_config


@pytest.mark.parametrize(
    ("variable", "value", "option"),
    [
        ("AIRLOCK_MAX_PENDING", "abc", "--max-pending"),
        ("AIRLOCK_MAX_PENDING", "-5", "--max-pending"),
        ("AIRLOCK_MESH_PORT", "99999", "--mesh-port"),
        ("AIRLOCK_GATEWAY_PORT", "http", "--gateway-port"),
        ("AIRLOCK_AGENT_TIMEOUT", "zz", "--agent-timeout"),
        ("AIRLOCK_APPROVAL_TIMEOUT", "soon", "--approval-timeout"),
        ("AIRLOCK_RATE_LIMIT", "fast", "--rate-limit"),
        ("AIRLOCK_RATE_LIMIT", "50/s:0", "--rate-limit"),
        ("AIRLOCK_ATTEMPT_LIMIT", "-1/m", "--attempt-limit"),
        ("AIRLOCK_MAX_CONNECTIONS", "3", "--max-connections"),
        ("AIRLOCK_HEADER_TIMEOUT", "0", "--header-timeout"),
        ("AIRLOCK_IDLE_TIMEOUT", "later", "--idle-timeout"),
    ],
)
def test_a_bad_environment_value_is_a_usage_error_for_serve_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, option: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["serve"])
    assert exited.value.code == 2 and f"argument {option}" in capsys.readouterr().err
    assert build_parser().parse_args(["token", "--sub", "x"]).sub == "x"  # other commands are not affected


def test_good_environment_values_are_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_MESH_PORT", "9090")
    monkeypatch.setenv("AIRLOCK_APPROVAL_TIMEOUT", "15m")
    monkeypatch.setenv("AIRLOCK_SIGN", "yes")
    args = build_parser().parse_args(["serve"])
    assert (args.mesh_port, args.approval_timeout, args.sign, args.demo) == (9090, 900, True, False)


def test_flood_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = build_parser().parse_args(["serve"])
    assert (defaults.max_connections, defaults.header_timeout, defaults.idle_timeout) == (10_000, 10, 75)
    assert str(defaults.rate_limit) == "200/s:400" and str(defaults.attempt_limit) == f"{10 / 60:g}/s:10"
    monkeypatch.setenv("AIRLOCK_RATE_LIMIT", "off")
    monkeypatch.setenv("AIRLOCK_ATTEMPT_LIMIT", "5/10s")
    monkeypatch.setenv("AIRLOCK_MAX_CONNECTIONS", "500")
    monkeypatch.setenv("AIRLOCK_HEADER_TIMEOUT", "5s")
    monkeypatch.setenv("AIRLOCK_IDLE_TIMEOUT", "2m")
    args = build_parser().parse_args(["serve"])
    assert args.rate_limit is None and str(args.attempt_limit) == "0.5/s:1"
    assert (args.max_connections, args.header_timeout, args.idle_timeout) == (500, 5, 120)


class _Redirect(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:
        _Redirect.seen.append(self.headers.get("Authorization"))
        self.send_response(302)
        self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/elsewhere")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirecting() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Redirect.seen = []
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_client_does_not_follow_a_redirect_with_its_token(
    redirecting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["approvals", "list", "--url", redirecting, "--token", "t0ken"]) == 1
    assert _Redirect.seen == ["Bearer t0ken"]  # asked once, not again at the redirect's address
    assert "302" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["not a url", "file:///etc/passwd", "ftp://host/"])
def test_the_client_wants_an_http_url(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["approvals", "list", "--url", url]) == 1
    assert "--url must be the gateway's http:// or https:// address" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "variable", "synced"),
    [([], None, True), (["--unsynced-turns"], None, False), ([], "yes", False), ([], "0", True)],
)
def test_turns_are_synced_unless_asked_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str], variable: str | None, synced: bool
) -> None:
    if variable is not None:
        monkeypatch.setenv("AIRLOCK_UNSYNCED_TURNS", variable)
    config = mesh_config(build_parser().parse_args(["serve", *argv]), tmp_path)
    assert config.sync_turns is synced
