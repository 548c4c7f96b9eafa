"""Limits both faces apply before a request reaches its handler: token buckets per caller, and a declared
body larger than the app takes refused before any of it is read.

A caller is its principal (tenant and subject) when its Bearer token verifies, else its client address:
a request without a token, or with a bad one, is counted against the address it came from, so a flood of
forged tokens is refused as cheaply as a flood of anonymous calls. A verified principal is kept on the
request (:data:`VERIFIED`) so the handler does not check the token twice.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*([smh])\s*(?::\s*(\d+))?\s*$")


def _request_key(name: str, kind: type) -> Any:
    maker = getattr(web, "RequestKey", None)  # aiohttp 3.14+
    return maker(name, kind) if maker is not None else name


VERIFIED = _request_key("airlock_verified_principal", object)
EXEMPT_PATHS = frozenset({"/healthz"})  # probes answer whatever else is going on


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_s`` tokens a second into a bucket of ``burst``."""

    per_s: float
    burst: int

    def __str__(self) -> str:
        return f"{self.per_s:g}/s:{self.burst}"


def parse_rate(text: str) -> Rate | None:
    """``50/s``, ``600/m``, ``5/10s``, with an optional burst after a colon (``50/s:100``; default: twice
    the per-second rate, at least 1); ``off`` (or ``0``) is None: no limit."""
    value = text.strip().lower()
    if value in ("off", "none", "0", ""):
        return None
    match = _SPEC.match(value)
    if not match:
        raise ValueError(f"invalid rate {text!r}: expected e.g. 50/s, 600/m or 50/s:100 (burst), or off")
    count, span, unit, burst = match.groups()
    seconds = (int(span) if span else 1) * _UNITS[unit]
    per_s = float(count) / seconds if seconds else 0.0
    if per_s <= 0:
        raise ValueError(f"invalid rate {text!r}: must be more than zero (or off)")
    size = int(burst) if burst else max(1, math.ceil(per_s * 2))
    if size < 1:
        raise ValueError(f"invalid rate {text!r}: the burst must be at least 1")
    return Rate(per_s, size)


class RateLimiter:
    """Token buckets by key, at most ``max_keys`` of them (the least recently used is forgotten: at worst a
    forgotten caller starts again with a full bucket)."""

    def __init__(self, rate: Rate, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self.clock = clock
        self.limited = 0  # requests refused since start
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, at]

    def take(self, key: str) -> float:
        """Take one token for ``key``: 0 when there was one, else the seconds until there is."""
        now = self.clock()
        rate = self.rate
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(rate.burst), now]
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(float(rate.burst), bucket[0] + (now - bucket[1]) * rate.per_s)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        self.limited += 1
        return (1.0 - bucket[0]) / rate.per_s


def retry_after(wait_s: float) -> int:
    """Whole seconds for a ``Retry-After`` header: never 0 for a refused request."""
    return max(1, math.ceil(wait_s))


class Verifier(Protocol):
    def verify_header(self, header: str | None) -> Any: ...


def caller_key(request: web.Request, verifier: Verifier | None) -> str:
    """The bucket a request draws on: its principal when its token verifies (kept as :data:`VERIFIED`),
    else its client address."""
    header = request.headers.get("Authorization")
    if verifier is not None and header:
        try:
            principal = verifier.verify_header(header)
        except Exception:  # a bad token: counted by address; the handler refuses it as it always did
            pass
        else:
            request[VERIFIED] = principal
            return f"p:{principal.tenant}\x00{principal.sub}"
    return f"a:{request.remote}"


Refusal = Callable[[web.Request, int], web.StreamResponse]


@dataclass(slots=True)
class RequestLimits:
    """What a face limits: a caller's rate (None: unlimited) and the largest body it takes."""

    max_body: int
    rate: RateLimiter | None = None
    # extra limits keyed by what the request is about (an approval's id for a callback token or a signed
    # link): (the limiter, a function giving the key or None when the request is not one of those)
    extra: tuple[tuple[RateLimiter, Callable[[web.Request], str | None]], ...] = ()


def limits_middleware(
    limits: RequestLimits,
    verifier: Verifier | None,
    *,
    too_large: Callable[[web.Request], web.StreamResponse],
    too_many: Refusal,
) -> Any:
    """The middleware that applies ``limits``; put it first, so a refused request costs nothing more."""

    @web.middleware
    async def limit(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        length = request.content_length
        if length is not None and length > limits.max_body:
            response = too_large(request)
            response.force_close()  # the body is never read: the connection cannot carry another request
            return response
        if request.path in EXEMPT_PATHS:
            return await handler(request)
        for limiter, key_of in limits.extra:
            key = key_of(request)
            if key is not None:
                wait = limiter.take(key)
                if wait:
                    return too_many(request, retry_after(wait))
        if limits.rate is not None:
            wait = limits.rate.take(caller_key(request, verifier))
            if wait:
                return too_many(request, retry_after(wait))
        return await handler(request)

    return limit
