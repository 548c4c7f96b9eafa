"""Start ``airlock serve`` as a real process on free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    home: Path
    mesh_url: str
    gateway_url: str
    log_path: Path
    proc: subprocess.Popen[bytes]

    def token(self, sub: str, *roles: str, tenant: str = "default") -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "token",
                "--sub",
                sub,
                "--tenant",
                tenant,
                *[a for r in roles for a in ("--role", r)],
            ],
            env={**os.environ, "AIRLOCK_HOME": str(self.home)},
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(home: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    mesh_port, gateway_port = free_port(), free_port()
    log_path = home / "server.log"
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--mesh-port",
            str(mesh_port),
            "--gateway-port",
            str(gateway_port),
            *extra,
        ],
        env={**os.environ, "AIRLOCK_HOME": str(home), **(env or {})},
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )
    server = Server(home, f"http://127.0.0.1:{mesh_port}", f"http://127.0.0.1:{gateway_port}", log_path, proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"airlock serve exited with {proc.returncode}:\n{server.log()}")
        try:
            probe = server.mesh_url if "--mesh-only" in extra else server.gateway_url
            with urllib.request.urlopen(f"{probe}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"airlock serve did not become ready:\n{server.log()}")


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "home", "--demo")
    yield server
    stop_server(server)
