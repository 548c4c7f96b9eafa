"""In-process publish/subscribe for state changes.

Published after the commit that made the change, so a subscriber never sees a state the store would not
return. Each subscriber gets its own bounded queue; a slow one loses events rather than stalling the
publisher (it can re-read the store).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    tenant: str
    subject: str
    data: dict[str, Any] = field(default_factory=dict)
    outbox: frozenset[str] = frozenset()  # kinds of outbox rows the change queued: their workers wake


CLOSED = Event(kind="bus.closed", tenant="", subject="")
"""Put in every subscriber's queue when the process shuts down: a stream that reads it ends, so a client
following a task is let go (it resumes elsewhere) rather than holding the shutdown open."""


class EventBus:
    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._queue_size = queue_size
        self.relay: Callable[[Event], None] | None = None  # set when replicas share a store

    def publish(self, event: Event, *, relay: bool = True) -> None:
        if relay and self.relay is not None:
            self.relay(event)
        for listener in list(self._listeners):
            listener(event)
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    def close(self) -> None:
        """Tell every subscriber the process is shutting down (a full queue drops its oldest event for it)."""
        for queue in list(self._subscribers):
            while True:
                try:
                    queue.put_nowait(CLOSED)
                    break
                except asyncio.QueueFull:
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()

    @contextlib.contextmanager
    def listen(self, listener: Callable[[Event], None]) -> Iterator[None]:
        """Call ``listener`` with every event as it is published, for the duration of the block. For a
        subscriber that only looks at an event to decide whether to act (an outbox worker): no queue, and
        no task woken for each event it ignores. ``listener`` must be quick and must not raise."""
        self._listeners.append(listener)
        try:
            yield
        finally:
            self._listeners.remove(listener)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
