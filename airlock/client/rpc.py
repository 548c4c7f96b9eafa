"""JSON-RPC 2.0 over HTTP to the mesh, one request or one Server-Sent-Events stream at a time.

Plain aiohttp rather than the a2a-sdk client: aiohttp is already what Airlock installs, while the SDK
(a test-only dependency here) would add its own HTTP stack to every agent that only wants a yes or a no;
and the waiting this client must get right (resume a dropped stream, tell a refused token from a server
that is restarting, bound every read) needs the transport's errors as they are, not wrapped.

Every failure leaves here as an :mod:`airlock.client.errors` exception: the token refused →
:class:`AuthenticationError`; no connection, a dropped or silent one, 429 and 502-504 →
:class:`ServerUnavailable` (worth retrying); a JSON-RPC error → :class:`RequestError`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from airlock.client.errors import AuthenticationError, RequestError, ServerUnavailable

CONNECT_S = 10.0
"""How long a connection may take to open."""
REQUEST_S = 30.0
"""How long a plain request may take from start to end."""
STREAM_IDLE_S = 45.0
"""How long a stream may stay silent: the mesh writes a keep-alive comment every 15 s, so three missed in
a row mean the connection is gone even if no reset ever arrives."""

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, ConnectionError)


def endpoint(mesh_url: str) -> str:
    """The JSON-RPC endpoint for a mesh URL (``http://host:8080`` posts to ``http://host:8080/``)."""
    url = mesh_url.strip()
    if "://" not in url:
        raise ValueError(f"the mesh URL needs a scheme: {mesh_url!r} (e.g. http://127.0.0.1:8080)")
    scheme_end = url.index("://") + 3
    return url if "/" in url[scheme_end:] else url + "/"


class Rpc:
    """One caller's JSON-RPC channel to the mesh over a session the caller owns."""

    def __init__(self, session: aiohttp.ClientSession, mesh_url: str, token: str) -> None:
        self._session = session
        self._url = endpoint(mesh_url)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._ids = itertools.count(1)

    def _body(self, method: str, params: dict[str, Any]) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}).encode()

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """One request, its ``result``."""
        timeout = aiohttp.ClientTimeout(total=REQUEST_S, connect=CONNECT_S)
        try:
            async with self._session.post(
                self._url, data=self._body(method, params), headers=self._headers, timeout=timeout
            ) as resp:
                await _check_status(resp)
                body = await resp.read()
        except TRANSPORT_ERRORS as exc:
            raise _unavailable(exc, self._url) from exc
        return _result(_decode(body))

    async def stream(self, method: str, params: dict[str, Any]) -> AsyncGenerator[Any, None]:
        """A streaming request: each event's ``result`` in turn, until the server closes the stream."""
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_S, sock_read=STREAM_IDLE_S)
        headers = {**self._headers, "Accept": "text/event-stream"}
        try:
            async with self._session.post(
                self._url, data=self._body(method, params), headers=headers, timeout=timeout
            ) as resp:
                await _check_status(resp)
                if resp.content_type != "text/event-stream":  # an error before the stream began
                    yield _result(_decode(await resp.read()))
                    return
                async for data in _sse_data(resp.content):
                    yield _result(_decode(data))
        except TRANSPORT_ERRORS as exc:
            raise _unavailable(exc, self._url) from exc


async def _sse_data(content: aiohttp.StreamReader) -> AsyncGenerator[bytes, None]:
    """The ``data`` of each Server-Sent Event; comments (the keep-alives) and other fields are skipped.
    Lines are split here rather than with ``readline``, which caps a line's length."""
    pending = b""
    data: list[bytes] = []
    async for chunk in content.iter_any():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            line = line.removesuffix(b"\r")
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
    if data:
        yield b"\n".join(data)


async def _check_status(resp: aiohttp.ClientResponse) -> None:
    if resp.status == 200:
        return
    message = _error_message(await resp.read()) or resp.reason or f"HTTP {resp.status}"
    if resp.status in (401, 403):
        raise AuthenticationError(f"the mesh refused the token (HTTP {resp.status}): {message}")
    if resp.status in RETRYABLE_STATUS:
        raise ServerUnavailable(
            f"the mesh is busy or unavailable (HTTP {resp.status}): {message}", retry_after=_retry_after(resp)
        )
    raise RequestError(f"the mesh answered HTTP {resp.status}: {message}")


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _error_message(body: bytes) -> str | None:
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return None
    return str(error.get("message")) if isinstance(error, dict) and error.get("message") else None


def _decode(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise RequestError(f"the mesh answered something that is not JSON: {body[:200]!r}") from exc
    if not isinstance(answer, dict):
        raise RequestError(f"the mesh answered something that is not a JSON-RPC response: {body[:200]!r}")
    return answer


def _result(answer: dict[str, Any]) -> Any:
    error = answer.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        raise RequestError(f"{error.get('message')} (JSON-RPC {code})", code=code, data=error.get("data"))
    if "result" not in answer:
        raise RequestError(f"the mesh answered neither a result nor an error: {answer!r}")
    return answer["result"]


def _unavailable(exc: BaseException, url: str) -> ServerUnavailable:
    what = type(exc).__name__ if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
    return ServerUnavailable(f"could not talk to the mesh at {url}: {what}")
