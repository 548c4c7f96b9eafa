"""The :class:`Guard`: ask Airlock before a tool call, and wait for a person when the call is held.

Each check opens its own HTTP session and closes it when done. A check is one tool call, rare next to the
work it guards, and a session tied to no event loop is what lets one guard serve ``asyncio`` code, plain
threads (:meth:`Guard.check_sync`), and sync functions called from inside a running loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import aclosing
from typing import Any, TypeVar, cast, overload

import aiohttp

from airlock.client.arguments import check_json, rebind, tool_arguments
from airlock.client.decision import Decision, decision_of
from airlock.client.durations import Duration, seconds
from airlock.client.errors import DecisionTimeout, RequestError, ServerUnavailable, refusal
from airlock.client.follow import follow, is_final, snapshots
from airlock.client.rpc import Rpc, endpoint

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


class Guard:
    """An agent's line to Airlock's mesh.

    ``token`` is the agent's (``airlock token --sub NAME --role agent``): the policies judge each call as
    made by the token's subject, which is what agent-scoped policies match. ``agent`` is a label kept with
    each call in the task's history (``metadata.caller``) for the people who read it; it is not sent as
    ``metadata.agent``, which the mesh reads as one of *its* agents to hand the message to. ``run_id`` ties
    the calls to a run a person can bulk-approve. ``timeout`` bounds each check from send to outcome
    (seconds, or ``"90s"``, ``"15m"``, ``"1h"``); past it the check raises :class:`DecisionTimeout`.
    """

    def __init__(
        self,
        mesh_url: str,
        token: str,
        *,
        agent: str | None = None,
        run_id: str | None = None,
        timeout: Duration = "1h",
    ) -> None:
        endpoint(mesh_url)  # a malformed URL is the caller's mistake now, not at the first call
        self.mesh_url = mesh_url
        self.agent = agent
        self.run_id = run_id
        self.timeout_s = seconds(timeout)
        self._token = token

    def __repr__(self) -> str:
        return f"Guard({self.mesh_url!r}, agent={self.agent!r}, run_id={self.run_id!r}, timeout={self.timeout_s}s)"

    # ------------------------------------------------------------------ checks

    async def check(
        self,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        wait: bool = True,
        push_url: str | None = None,
        push_token: str | None = None,
    ) -> Decision:
        """Ask whether ``tool`` may be called with ``arguments``.

        With ``wait`` (the default) a held call is followed to its outcome, so the answer is final: allowed,
        blocked, denied or expired. With ``wait=False`` the answer comes at once, and a held call answers
        ``pending`` with its ``task_id``, for an agent that learns the outcome from a push notification
        (``push_url``, with ``push_token`` sent back in ``X-A2A-Notification-Token``) or a later
        :meth:`wait`. Arguments that are not JSON are a ``TypeError`` before anything is sent.
        """
        if not isinstance(tool, str) or not tool:
            raise ValueError(f"tool must be a non-empty string, not {tool!r}")
        arguments = dict(arguments or {})
        check_json(arguments, "arguments")
        params = self._send_params(tool, arguments, push_url, push_token)
        task_id: str | None = None
        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline, self._rpc() as rpc:
                if not wait:
                    task = await rpc.call("message/send", params)
                    return decision_of(task, tool, arguments)
                task = None
                try:
                    # streamed, so the task's id arrives before its decision: a connection lost after
                    # that can be resumed rather than leaving a hold nobody waits for
                    async with aclosing(snapshots(rpc, "message/stream", params)) as stream:
                        async for task in stream:
                            task_id = task["id"]
                            if is_final(task):
                                break
                except ServerUnavailable:
                    if task_id is None:
                        raise
                if task_id is None or task is None:
                    raise RequestError("the mesh closed the stream without sending the task")
                if not is_final(task):
                    task = await follow(rpc, task_id)
                return decision_of(task, tool, arguments)
        except TimeoutError:
            if not deadline.expired():
                raise
            where = f"; the call is still held as task {task_id}" if task_id else ""
            raise DecisionTimeout(f"{tool}: no decision within {self.timeout_s:g}s{where}", task_id=task_id) from None

    async def wait(self, task_id: str) -> Decision:
        """Follow a task made by an earlier check (``wait=False``, or a check that timed out) to its outcome."""
        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline, self._rpc() as rpc:
                first = await rpc.call("tasks/get", {"id": task_id})
                task = first if is_final(first) else await follow(rpc, task_id)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise DecisionTimeout(f"task {task_id}: no decision within {self.timeout_s:g}s", task_id=task_id) from None
        tool, arguments = _asked(first)
        return decision_of(task, tool, arguments)

    def check_sync(
        self,
        tool: str,
        arguments: dict[str, Any] | None = None,
        *,
        wait: bool = True,
        push_url: str | None = None,
        push_token: str | None = None,
    ) -> Decision:
        """:meth:`check` for code without an event loop (or called from inside one: it then runs on a thread)."""
        return run_sync(self.check(tool, arguments, wait=wait, push_url=push_url, push_token=push_token))

    def wait_sync(self, task_id: str) -> Decision:
        """:meth:`wait` for code without an event loop."""
        return run_sync(self.wait(task_id))

    # ------------------------------------------------------------------ the decorator

    @overload
    def require_approval(self, tool: F) -> F: ...
    @overload
    def require_approval(self, tool: str | None = None) -> Callable[[F], F]: ...

    def require_approval(self, tool: str | Callable[..., Any] | None = None) -> Any:
        """Guard every call of the decorated function (sync or async); usable bare or as ``(tool="name")``.

        The call is checked as the tool ``tool`` (default: the function's name) with the function's bound
        arguments, defaults included. Allowed: the function runs, with the approver's arguments if they
        edited the call. Otherwise it does not run, and the call raises :class:`ApprovalDenied`,
        :class:`ApprovalExpired`, :class:`ActionBlocked` (all :class:`ActionRefused`) or, if the wait
        outlasts the guard's timeout, :class:`DecisionTimeout`.
        """
        if callable(tool):
            return self._decorate(tool, tool.__name__)
        return functools.partial(self._decorate, name=tool)

    def _decorate(self, fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
        signature = inspect.signature(fn)
        tool = name or fn.__name__

        def ask(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[inspect.BoundArguments, dict[str, Any]]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = tool_arguments(signature, bound)
            for key, value in arguments.items():
                check_json(value, f"argument {key!r} of {fn.__qualname__}()")
            return bound, arguments

        def call_with(
            bound: inspect.BoundArguments, arguments: dict[str, Any], decision: Decision
        ) -> tuple[list[Any] | tuple[Any, ...], dict[str, Any]]:
            if not decision.allowed:
                raise refusal(decision)
            if decision.arguments != arguments:  # the approver edited the call: theirs is the one to make
                return rebind(signature, bound, decision.arguments)
            return bound.args, bound.kwargs

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                bound, arguments = ask(args, kwargs)
                call_args, call_kwargs = call_with(bound, arguments, await self.check(tool, arguments))
                return await cast(Callable[..., Awaitable[Any]], fn)(*call_args, **call_kwargs)

            return guarded_async

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            bound, arguments = ask(args, kwargs)
            call_args, call_kwargs = call_with(bound, arguments, self.check_sync(tool, arguments))
            return fn(*call_args, **call_kwargs)

        return guarded

    # ------------------------------------------------------------------ wire

    def _send_params(
        self, tool: str, arguments: dict[str, Any], push_url: str | None, push_token: str | None
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {}
        if self.run_id:
            metadata["run_id"] = self.run_id
        if self.agent:
            metadata["caller"] = self.agent
        message: dict[str, Any] = {
            "kind": "message",
            "role": "user",
            "messageId": str(uuid.uuid4()),
            "parts": [{"kind": "data", "data": {"tool": tool, "arguments": arguments}}],
        }
        if metadata:
            message["metadata"] = metadata
        params: dict[str, Any] = {"message": message}
        if push_url:
            push: dict[str, Any] = {"url": push_url}
            if push_token:
                push["token"] = push_token
            params["configuration"] = {"pushNotificationConfig": push}
        return params

    def _rpc(self) -> _Session:
        return _Session(self.mesh_url, self._token)


class _Session:
    """An HTTP session for one check, as an :class:`Rpc`; closed with the check."""

    def __init__(self, mesh_url: str, token: str) -> None:
        self._mesh_url, self._token = mesh_url, token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Rpc:
        self._session = aiohttp.ClientSession()
        return Rpc(self._session, self._mesh_url, self._token)

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()


def _asked(task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The tool call that made a task, from its first message in history ("", {} if it is not there)."""
    for message in task.get("history") or []:
        for part in message.get("parts") or []:
            data = part.get("data") if isinstance(part, dict) else None
            if isinstance(data, dict) and isinstance(data.get("tool"), str):
                arguments = data.get("arguments")
                return data["tool"], arguments if isinstance(arguments, dict) else {}
    return "", {}


def run_sync(coro: Coroutine[Any, Any, R]) -> R:
    """Run ``coro`` to its end from sync code: on a fresh event loop, or on a thread of its own when this
    thread already runs one (a sync tool called from async code), since a loop cannot be nested."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="airlock-guard") as pool:
        return pool.submit(asyncio.run, coro).result()
