"""What a server does before a request reaches an app: a cap on the connections a process keeps open, a
deadline for a request's header, an idle keep-alive timeout, accept errors logged once per interval, and
the process's descriptor limit raised at start.

- The cap counts every connection of the process, both ports together. A connection past it is answered
  ``503`` with ``Connection: close`` straight from the event loop, without a parser or a task, and closed:
  refusing costs a few microseconds, so a flood of sockets cannot push the process past its descriptor limit
  (which would stop it accepting anything, health checks included).
- A connection must finish a request's header within ``header_timeout`` of opening (or, between requests
  on a kept-alive connection, of its first byte); one that does not is answered ``408`` and closed.
- A kept-alive connection idle for ``idle_timeout`` is closed (aiohttp's own timer, given the value).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("airlock.connections")

DESCRIPTOR_RESERVE = 128
"""Descriptors kept for the store, outgoing HTTP (webhooks, push, agents) and logs, below the cap."""

ACCEPT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def _canned(status: str, code: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


REFUSED = _canned("503 Service Unavailable", "unavailable", "too many open connections", "Retry-After: 1\r\n")
HEADER_TIMEOUT = _canned("408 Request Timeout", "request_timeout", "the request header took too long")


@dataclass(slots=True)
class ConnectionLimits:
    max_connections: int = 10_000
    header_timeout: float = 10.0  # seconds to finish a request's header; 0: no deadline
    idle_timeout: float = 75.0  # seconds a kept-alive connection may sit idle


class Gate:
    """The process's count of open connections, shared by every site."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0


class _Refused(asyncio.Protocol):
    """A connection past the cap: answered and closed as soon as it is made; whatever it sends is ignored."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(REFUSED)
        transport.close()


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler, counted by the gate and held to the header deadline."""

    __slots__ = ("_gate", "_header_count", "_header_handle", "_header_timeout")

    def __init__(self, manager: web.Server, *, gate: Gate, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gate = gate
        self._header_timeout = header_timeout
        self._header_handle: asyncio.TimerHandle | None = None
        self._header_count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()  # the first request's header is due within the deadline of the connection opening

    def data_received(self, data: bytes) -> None:
        # bytes that arrive while the handler waits for a request, and do not complete one, start a header
        idle = self._header_handle is None and self._waiter is not None
        count = self._request_count
        super().data_received(data)
        if idle and self._request_count == count:
            self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_handle is not None:
            self._header_handle.cancel()
            self._header_handle = None
        self._gate.open -= 1
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timeout > 0:
            self._header_count = self._request_count
            self._header_handle = self._loop.call_later(self._header_timeout, self._header_due)

    def _header_due(self) -> None:
        self._header_handle = None
        transport = self.transport
        if transport is None or self._request_count != self._header_count:
            return  # a request came in time (or the connection is gone)
        if not transport.is_closing():
            transport.write(HEADER_TIMEOUT)
        self.force_close()


def handler_factory(server: web.Server, gate: Gate, limits: ConnectionLimits) -> Any:
    """The protocol factory a listening socket is served with: a guarded handler while the gate has room,
    else a refusal."""
    loop, kwargs = server._loop, server._kwargs  # what web.Server itself passes each handler

    def make() -> asyncio.BaseProtocol:
        if gate.open >= gate.limit:
            gate.refused += 1
            return _Refused()
        gate.open += 1  # counted here, not at connection_made: one accept burst must not overshoot
        try:
            return GuardedHandler(server, gate=gate, header_timeout=limits.header_timeout, loop=loop, **kwargs)
        except BaseException:
            gate.open -= 1
            raise

    return make


class GuardedSite(web.TCPSite):
    """A TCP site whose connections go through the gate."""

    __slots__ = ("_factory",)

    def __init__(self, runner: web.AppRunner, host: str, port: int, *, gate: Gate, limits: ConnectionLimits) -> None:
        super().__init__(runner, host, port, backlog=1024)
        self._factory = (gate, limits)

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        gate, limits = self._factory
        self._server = await asyncio.get_running_loop().create_server(
            handler_factory(server, gate, limits),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    @property
    def port(self) -> int:
        return int(self._bound_port or 0)


def runner_for(app: web.Application, limits: ConnectionLimits) -> web.AppRunner:
    """A runner whose handlers close idle kept-alive connections after ``idle_timeout``, and never linger
    reading the rest of a body nobody read (a refused request's: the connection is closed instead)."""
    return web.AppRunner(app, access_log=None, keepalive_timeout=limits.idle_timeout, lingering_time=0)


# ---------------------------------------------------------------- descriptors and accept errors


def raise_descriptor_limit() -> tuple[int, int]:
    """Raise the soft limit on open descriptors to the hard one where allowed; returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.info("could not raise the descriptor limit from %d to %d: %s", soft, target, exc)
    return soft, hard


def connection_cap(wanted: int, soft_limit: int) -> int:
    """The cap to use: ``wanted``, lowered to leave ``DESCRIPTOR_RESERVE`` of the process's descriptors."""
    if soft_limit == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft_limit - DESCRIPTOR_RESERVE))


class AcceptErrors:
    """An event-loop exception handler that turns a storm of accept failures (``Too many open files`` and
    the like) into one warning per ``interval`` with a count; anything else goes to the previous handler."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = 10.0) -> None:
        self._loop = loop
        self._previous = loop.get_exception_handler()
        self.interval = interval
        self.count = 0  # since the last report
        self.total = 0
        self._last = ""
        self._flush: asyncio.TimerHandle | None = None
        self._quiet_until = 0.0

    def install(self) -> AcceptErrors:
        self._loop.set_exception_handler(self)
        return self

    def uninstall(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._report()
        self._loop.set_exception_handler(self._previous)

    @staticmethod
    def is_accept_error(context: dict[str, Any]) -> bool:
        message = str(context.get("message", ""))
        exc = context.get("exception")
        if message.startswith(("socket.accept() out of system resource", "Error on transport creation")):
            return True
        return isinstance(exc, OSError) and exc.errno in ACCEPT_ERRNOS

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not self.is_accept_error(context):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self.count += 1
        self.total += 1
        self._last = f"{context.get('message', '')}: {context.get('exception')}"
        now = loop.time()
        if now >= self._quiet_until:
            self._report()
            self._quiet_until = now + self.interval
        elif self._flush is None:
            self._flush = loop.call_at(self._quiet_until, self._report)

    def _report(self) -> None:
        self._flush = None
        if self.count:
            log.warning(
                "%d accept error(s) in the last %.0fs (%d since start); the last: %s",
                self.count,
                self.interval,
                self.total,
                self._last,
            )
            self.count = 0
