"""Waiting for a held call's outcome, across dropped connections and server restarts.

A held task may wait hours for a person, so the wait must survive what hours bring: a proxy that cuts
long requests, a server restarted for a deploy, a network blip. The client follows the task with
``tasks/resubscribe`` (a stream that begins with the task as it is now, so reconnecting never misses an
outcome that came while it was away) and reconnects with backoff when the stream breaks. If streams keep
breaking while plain requests get through (something in between does not pass Server-Sent Events), or
the server does not offer ``tasks/resubscribe``, it falls back to polling ``tasks/get``. A refused token
or an unknown task ends the wait at once; only the caller's deadline ends it otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from airlock.client.decision import TERMINAL_STATES
from airlock.client.errors import RequestError, ServerUnavailable
from airlock.client.rpc import Rpc

METHOD_NOT_FOUND, UNSUPPORTED_OPERATION = -32601, -32004
BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Pauses between attempts while the server is away; the last one repeats."""
POLL_S = 2.0
"""How often ``tasks/get`` is asked once streaming has been given up."""
BROKEN_STREAMS = 3
"""Streams ended early in a row, with ``tasks/get`` answering in between, before streaming is given up."""
HEALTHY_S = 30.0
"""A stream that lasted this long was working; one that ended sooner without an outcome counts as broken."""


def state_of(task: dict[str, Any]) -> str | None:
    return (task.get("status") or {}).get("state")


def is_final(task: dict[str, Any]) -> bool:
    return state_of(task) in TERMINAL_STATES


async def snapshots(rpc: Rpc, method: str, params: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    """The task as a stream reveals it: the Task event, then the same task with each status update
    applied (artifact updates are not the guard's business)."""
    task: dict[str, Any] | None = None
    async for event in rpc.stream(method, params):
        if not isinstance(event, dict):
            continue
        if event.get("kind") == "task" or (task is None and "status" in event and "id" in event):
            task = dict(event)
        elif event.get("kind") == "status-update" and task is not None:
            task = {**task, "status": event.get("status") or {}}
        else:
            continue
        yield task


async def follow(rpc: Rpc, task_id: str) -> dict[str, Any]:
    """The task once it has ended. Runs until then: the caller bounds it (``asyncio.timeout``)."""
    loop = asyncio.get_running_loop()
    streaming = True
    broken = 0  # rounds in a row whose stream ended early although the server answered tasks/get
    failures = 0  # rounds in a row the server did not answer at all
    while True:
        started = loop.time()
        retry_after: float | None = None
        try:
            if streaming:
                try:
                    async for task in snapshots(rpc, "tasks/resubscribe", {"id": task_id}):
                        if is_final(task):
                            return task
                except RequestError as exc:
                    if exc.code not in (METHOD_NOT_FOUND, UNSUPPORTED_OPERATION):
                        raise
                    streaming = False  # this server follows no task by stream
                except ServerUnavailable as exc:
                    retry_after = exc.retry_after
            # the stream ended without an outcome (dropped, cut by a proxy, or none): look directly
            found: dict[str, Any] = await rpc.call("tasks/get", {"id": task_id, "historyLength": 0})
            if is_final(found):
                return found
        except ServerUnavailable as exc:  # the server is away (restarting?): back off and try again
            failures += 1
            retry_after = exc.retry_after or retry_after
            pause = BACKOFF_S[min(failures, len(BACKOFF_S)) - 1]
        else:
            failures = 0
            if not streaming:
                pause = POLL_S
            elif loop.time() - started < HEALTHY_S:
                broken += 1
                streaming = broken < BROKEN_STREAMS
                pause = BACKOFF_S[min(broken, len(BACKOFF_S)) - 1]
            else:
                broken, pause = 0, 0.0  # a long wait that ended (a proxy's limit): follow again at once
        await asyncio.sleep(max(pause, retry_after or 0.0))
