"""The connection cap, the header and idle timeouts, oversized bodies and clients that go away."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from gateway.connections import AcceptErrors, ConnectionLimits
from tests.conftest import bearer
from tests.flood.conftest import raw, read_all

CAP = 20


async def health(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as resp:
        return resp.status


async def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_cap_refuses_connections_past_it_and_health_answers_after(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(limits=ConnectionLimits(max_connections=CAP, header_timeout=30, idle_timeout=30)) as served:
        # idle sockets on both ports up to the cap: the process's cap counts both together
        held = [await raw(served.mesh_port if i % 2 else served.gateway_port) for i in range(CAP)]
        await wait_for(lambda: served.gate.open == CAP)
        # the flood past the cap: each is answered 503 and closed at once, nothing more is kept open
        started = time.monotonic()
        extra = await asyncio.gather(*(raw(served.mesh_port, b"GET /healthz HTTP/1.1\r\n\r\n") for _ in range(100)))
        answers = await asyncio.gather(*(read_all(reader, 5) for reader, _ in extra))
        elapsed = time.monotonic() - started
        assert all(a.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in a for a in answers), answers[0]
        assert served.gate.refused == 100 and served.gate.open == CAP
        assert elapsed < 5
        for _, writer in extra:
            writer.close()
        # the flood ends: health answers on both ports
        for _, writer in held:
            writer.close()
        await wait_for(lambda: served.gate.open == 0)
        assert await health(served.mesh_url) == 200
        assert await health(served.gateway_url) == 200


async def test_a_header_that_never_finishes_is_closed_after_the_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    limits = ConnectionLimits(max_connections=100, header_timeout=0.5, idle_timeout=30)
    async with serve(limits=limits) as served:
        for port in (served.mesh_port, served.gateway_port):
            started = time.monotonic()
            reader, writer = await raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            answer = await read_all(reader, 5)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert 0.4 < time.monotonic() - started < 3
            writer.close()
        # between requests on a kept-alive connection too: the deadline starts with the next header's first byte
        reader, writer = await raw(served.gateway_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await reader.readuntil(b'"ok"}')
        assert first.startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(0.7)  # idle is allowed (the idle timeout is 30 s)
        writer.write(b"GET /healthz HTTP/1.1\r\nHo")
        started = time.monotonic()
        answer = await read_all(reader, 5)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert time.monotonic() - started < 3
        # a header that completes in time is served
        reader, writer = await raw(served.mesh_port, b"GET /healthz HTTP/1.1\r\n")
        await asyncio.sleep(0.2)
        writer.write(b"Host: x\r\nConnection: close\r\n\r\n")
        assert (await read_all(reader, 5)).startswith(b"HTTP/1.1 200 ")
        assert served.gate.open <= 1


async def test_an_idle_kept_alive_connection_is_closed(serve) -> None:  # type: ignore[no-untyped-def]
    async with serve(limits=ConnectionLimits(max_connections=100, header_timeout=5, idle_timeout=1)) as served:
        reader, writer = await raw(served.mesh_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        answer = await read_all(reader, 5)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert 0.8 < time.monotonic() - started < 4
        writer.close()


@pytest.mark.parametrize("face", ["mesh", "gateway"])
async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(serve, face: str) -> None:  # type: ignore[no-untyped-def]
    async with serve() as served:
        port, path = (served.mesh_port, "/") if face == "mesh" else (served.gateway_port, "/v1/approvals")
        token = bearer("bot", "agent")["Authorization"]
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000000\r\n\r\n"
        )
        reader, writer = await raw(port, head.encode() + b'{"jsonrpc": "2.0"')  # the body never comes
        answer = await read_all(reader, 3)  # answered, and closed, without waiting for the body
        assert answer.startswith(b"HTTP/1.1 413 "), answer
        assert b"Connection: close" in answer
        writer.close()


@pytest.mark.parametrize("face", ["mesh", "gateway"])
async def test_a_client_gone_mid_body_logs_no_traceback(
    serve,  # type: ignore[no-untyped-def]
    face: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve() as served:
        port, path = (served.mesh_port, "/") if face == "mesh" else (served.gateway_port, "/v1/approvals")
        token = bearer("bot", "agent")["Authorization"]
        for _ in range(3):
            head = (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\nContent-Type: application/json\r\n"
                "Content-Length: 5000\r\n\r\n"
            )
            _, writer = await raw(port, head.encode() + b'{"jsonrpc": "2.0", "id"')
            await asyncio.sleep(0.1)  # the handler is reading the body
            writer.close()
        await asyncio.sleep(0.3)
        assert await health(served.mesh_url if face == "mesh" else served.gateway_url) == 200
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [(r.name, r.getMessage()) for r in bad]
    assert any("client went away" in r.getMessage() for r in caplog.records)


def test_accept_errors_are_reported_once_per_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        errors = AcceptErrors(loop, interval=60).install()
        context = {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many open files")}
        with caplog.at_level(logging.WARNING, logger="airlock.connections"):
            for _ in range(3000):
                loop.call_exception_handler(context)
            reports = [r.getMessage() for r in caplog.records if r.name == "airlock.connections"]
            assert len(reports) == 1 and reports[0].startswith("1 accept error(s)"), reports
            errors.uninstall()  # the rest are reported when it stops (or when the interval ends)
            reports = [r.getMessage() for r in caplog.records if r.name == "airlock.connections"]
            assert len(reports) == 2 and reports[1].startswith("2999 accept error(s)"), reports
            assert "Too many open files" in reports[1]
        # anything else still reaches the loop's handler
        seen: list[dict] = []
        loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))
        AcceptErrors(loop).install()
        loop.call_exception_handler({"message": "something else"})
        assert seen == [{"message": "something else"}]
    finally:
        loop.close()
