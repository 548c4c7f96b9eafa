"""The outbox worker: delivers rows written with a state change, with retries, until they land.

A row is written in the same transaction as the change it announces, so a crash between commit and send
loses nothing: the next worker run (in this process or another replica) sends it. Each kind of row has a
sender that turns it into what leaves the process (an HTTP POST, a Slack call, a mail) at send time —
secrets such as callback tokens are derived then, never stored. A worker claims only the kinds it can
send, so the mesh and the gateway may run apart. A row that fails is retried with backoff; one that used
up its attempts, or can never be sent, is a dead letter an admin can list and retry. Neither payloads nor
tokens are logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from mesh.core.events import Event, EventBus
from mesh.core.kernel import Clock
from mesh.store import OutboxAttempt, OutboxRecord, Store

log = logging.getLogger("airlock.outbox")

MAX_ATTEMPTS = 12
CLAIM = 50  # rows claimed, sent together and recorded together
POLL_S = 0.5
NEVER = 10 * 365 * 86400.0


@dataclass(slots=True)
class Delivery:
    url: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Undeliverable(Exception):
    """The row can never be sent (its subject is gone, or its URL is refused): a dead letter at once."""


class DeliveryFailed(Exception):
    """This attempt failed (the receiver answered an error, the service is down): tried again later."""


Sender = Callable[[OutboxRecord, aiohttp.ClientSession], Awaitable[None]]
"""Sends a row; raises :class:`Undeliverable` or :class:`DeliveryFailed` (or a network error) when it did not
land. The session is the worker's, shared by its sends."""

Builder = Callable[[OutboxRecord], Awaitable[Delivery]]
"""Turns a row into a JSON POST; raises :class:`Undeliverable` when there is nothing left to send."""

UrlGuard = Callable[[str], Awaitable[None]]
"""Raises :class:`Undeliverable` for a URL that must not be called (checked again at send time)."""


def backoff(attempts: int) -> float:
    return float(min(2**attempts, 900))


async def post_json(http: aiohttp.ClientSession, delivery: Delivery, *, data: bytes | None = None) -> None:
    """POST a delivery's body (or ``data``, its exact bytes, when a signature covers them); a non-2xx answer
    is a failed attempt."""
    async with http.post(
        delivery.url,
        data=data if data is not None else orjson.dumps(delivery.body),  # orjson: a tenth of a send otherwise
        headers={"Content-Type": "application/json", **delivery.headers},
        allow_redirects=False,
    ) as resp:
        if not 200 <= resp.status < 300:
            raise DeliveryFailed(f"HTTP {resp.status}")


def posting(builder: Builder, url_guard: UrlGuard | None = None) -> Sender:
    """A sender that builds a row's delivery, checks its URL, and POSTs it as JSON."""

    async def send(row: OutboxRecord, http: aiohttp.ClientSession) -> None:
        delivery = await builder(row)
        if url_guard is not None:
            await url_guard(delivery.url)
        await post_json(http, delivery)

    return send


class OutboxWorker:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        events: EventBus,
        senders: dict[str, Sender],
        *,
        wake_on: frozenset[str] = frozenset(),
    ) -> None:
        self.store = store
        self.clock = clock
        self.events = events
        self.senders = senders
        self.wake_on = wake_on
        self._kinds = frozenset(senders)
        self.wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    async def attempt(self, row: OutboxRecord) -> OutboxAttempt:
        """Send one row; how it went is recorded by the caller, with the rest of its batch in one write."""
        assert self._session is not None
        now = self.clock()
        try:
            await self.senders[row.kind](row, self._session)
        except Undeliverable as exc:
            log.warning("outbox row %s (%s) dropped: %s", row.id, row.kind, exc)
            return OutboxAttempt(row.id, ok=False, now=now, error=str(exc), retry_at=now + NEVER, dead=True)
        except DeliveryFailed as exc:
            return self._failed(row, now, str(exc))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return self._failed(row, now, type(exc).__name__)
        except Exception as exc:  # a sender's bug is a failed attempt, retried with backoff, never a lost row
            log.exception("outbox row %s (%s): the delivery failed", row.id, row.kind)
            return self._failed(row, now, f"failed: {type(exc).__name__}")
        return OutboxAttempt(row.id, ok=True, now=self.clock())

    @staticmethod
    def _failed(row: OutboxRecord, now: float, error: str) -> OutboxAttempt:
        attempts = row.attempts + 1
        log.warning("outbox row %s (%s) failed, attempt %d: %s", row.id, row.kind, attempts, error)
        if attempts >= MAX_ATTEMPTS:
            return OutboxAttempt(row.id, ok=False, now=now, error=error, retry_at=now + NEVER, dead=True)
        return OutboxAttempt(row.id, ok=False, now=now, error=error, retry_at=now + backoff(attempts))

    async def run_once(self) -> int:
        """Claim what is due, send it all at once, then record every outcome in one write (a write per
        row would be a third of what a webhook costs the server). A row whose outcome a crash loses is still
        leased; it is sent again when the lease runs out."""
        rows = await self.store.claim_outbox(self.clock(), limit=CLAIM, kinds=tuple(self.senders))
        if rows:
            await self.store.finish_outbox_many(await asyncio.gather(*(self.attempt(r) for r in rows)))
        return len(rows)

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[None]:
        """The HTTP session the worker's sends share, open for the block (:meth:`run` opens its own)."""
        timeout = aiohttp.ClientTimeout(total=10)
        # no cookie jar: a receiver's cookies mean nothing to a notification, and looking them up would be paid
        # on every send
        async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as self._session:
            try:
                yield
            finally:
                self._session = None

    async def run(self) -> None:
        async with self.connected():
            with self.events.listen(self._wake_on):
                while True:
                    try:
                        if await self.run_once() >= CLAIM:
                            continue  # a full batch: more may be due, so no pause
                    except Exception:
                        log.exception("outbox run failed")
                    self.wake.clear()
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that lands as the
                    # event is set, and the worker would never stop
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_S):
                            await self.wake.wait()

    def _wake_on(self, event: Event) -> None:
        """Woken by the events of ``wake_on`` and by every change that queued rows of a kind it sends; other
        changes (most of them: a task nobody follows) cost it nothing, not even a look at the table."""
        if event.kind in self.wake_on or not self._kinds.isdisjoint(event.outbox):
            self.wake.set()


@contextlib.asynccontextmanager
async def running(worker: OutboxWorker) -> AsyncIterator[OutboxWorker]:
    """Run ``worker`` in the background for the duration of the block."""
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def worker_ctx(make: Callable[[], OutboxWorker]) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp ``cleanup_ctx`` that runs the worker ``make`` builds for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with running(make()):
            yield

    return ctx
