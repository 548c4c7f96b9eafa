"""Group commit's turn-taking, shared by the engines: units queue for the one connection a store writes on,
the unit that leaves nobody waiting commits the open group, and a unit that gives up before its turn never
leaves a group waiting for it. What a group is and how it commits is each engine's own."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, Protocol


class Lane(Protocol):
    """The connection units take turns on, seen from here: work queued on it may still be running."""

    def when_idle(self, callback: Any) -> None: ...


class GroupCommits(ABC):
    """The lock orders the units' use of the lane and decides nothing (the store's conditional writes do)."""

    def _init_groups(self) -> None:
        self._lock = asyncio.Lock()
        self._waiting = 0  # units queued for the lane
        self._group: Any = None  # the open transaction units are joining
        self._pending_commits: set[asyncio.Task[None]] = set()

    @abstractmethod
    def _lane(self) -> Lane | None:
        """The lane, None once the store is closed."""

    @abstractmethod
    async def _commit(self, lane: Any, group: Any) -> None:
        """Commit the open group (the lock is held)."""

    async def _take_turn(self) -> None:
        """Wait for the lane; counted as waiting meanwhile, so the unit before does not commit without it."""
        self._waiting += 1
        try:
            await self._lock.acquire()
        except BaseException:
            self._waiting -= 1
            self._commit_if_idle()
            raise
        self._waiting -= 1

    async def _end_turn(self, lane: Lane, group: Any, max_group: int) -> None:
        """A unit is done with the lane: it commits the group when nobody else is waiting to join it (or the
        group is full), and the lane passes to the next unit once the work queued on it is done."""
        try:
            if group is not None and not group.done.done() and (self._waiting == 0 or group.units >= max_group):
                await self._commit(lane, group)
        finally:
            lane.when_idle(self._lock.release)

    def _commit_if_idle(self) -> None:
        """A queued unit gave up before its turn: make sure an open group does not wait for it."""
        if self._group is not None and self._waiting == 0 and not self._lock.locked():
            task = asyncio.get_running_loop().create_task(self._commit_now())
            self._pending_commits.add(task)
            task.add_done_callback(self._pending_commits.discard)

    async def _commit_now(self) -> None:
        await self._lock.acquire()
        lane = self._lane()
        try:
            if self._group is not None and lane is not None:
                await self._commit(lane, self._group)
        finally:
            if lane is not None:
                lane.when_idle(self._lock.release)
            else:
                self._lock.release()
