"""``airlock serve``'s own apps and sites, started in this process on free loopback ports (so ``caplog``
sees their logs), and raw sockets to talk to them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.cli import build_parser
from gateway.connections import ConnectionLimits, Gate
from gateway.serve import build_apps, connection_limits, start_sites
from tests.conftest import SECRET

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Served:
    mesh_port: int
    gateway_port: int
    gate: Gate

    @property
    def mesh_url(self) -> str:
        return f"http://{HOST}:{self.mesh_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.gateway_port}"


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRLOCK_HOME", str(tmp_path / "home"))

    @contextlib.asynccontextmanager
    async def running(*argv: str, limits: ConnectionLimits | None = None) -> AsyncIterator[Served]:
        mesh_port, gateway_port = free_port(), free_port()
        args = build_parser().parse_args(
            [
                "serve",
                "--mesh-port",
                str(mesh_port),
                "--gateway-port",
                str(gateway_port),
                "--jwt-secret",
                SECRET.decode(),
                "--store",
                f"sqlite:///{tmp_path}/airlock.db",
                *argv,
            ]
        )
        apps, _, _ = build_apps(args)
        runners, gate = await start_sites(apps, HOST, limits or connection_limits(args))
        try:
            yield Served(mesh_port, gateway_port, gate)
        finally:
            for runner in reversed(runners):
                await runner.cleanup()

    return running


async def raw(port: int, data: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    if data:
        writer.write(data)
        await writer.drain()
    return reader, writer


async def read_all(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything until the server closes the connection (fails the test past ``timeout``)."""
    async with asyncio.timeout(timeout):
        return await reader.read()
