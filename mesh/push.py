"""A2A push notifications: the ``tasks/pushNotificationConfig/*`` methods and their delivery.

A task's push configs say where to POST its updates. Every transaction that changes a task's state also
writes one outbox row per config (:func:`queue_pushes`, a state hook), carrying the status that change
wrote, so the change and its notifications commit together and a retry sends what happened then, not a
later state. The outbox worker sends each row as the Task JSON (as ``tasks/get`` returns it, without
history) with ``X-A2A-Notification-Token`` set to the client's own token, retrying with backoff.

Push URLs are checked when a config is set and again before every send: only http(s), and, unless
``push_allow_private`` is set, never a host that resolves to a private, loopback, link-local, multicast,
reserved or unspecified address (the mesh must not become a way into the network it runs in).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import Field

from mesh import jsonrpc as rpc
from mesh.auth import Principal
from mesh.models import MessageSendParams, PushNotificationConfig, TaskIdParams, Wire, new_id
from mesh.outbox import Delivery, OutboxWorker, Undeliverable, running
from mesh.store import OutboxRecord, PushConfigRecord, TaskRecord, Tx
from mesh.store.rows import SqlTx

if TYPE_CHECKING:
    from mesh.service import Mesh

KIND = "push"
TOKEN_HEADER = "X-A2A-Notification-Token"
MAX_CONFIGS_PER_TASK = 10
MAX_URL_LENGTH = 2048


# ---------------------------------------------------------------- URL checks


class RefusedUrl(ValueError):
    """A push URL the mesh will not call; the message says why."""


class UnresolvedHost(RefusedUrl):
    """The URL's host name did not resolve (a set is refused; a send goes on and fails, then retries)."""


def _refused_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (
        addr.is_private
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
        or not addr.is_global
    )


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise :class:`RefusedUrl` for a URL push notifications must not be sent to."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedUrl(f"the URL is not valid: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise RefusedUrl("the URL must be http or https")
    host = parts.hostname
    if not host:
        raise RefusedUrl("the URL has no host")
    if allow_private:
        return
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            raise UnresolvedHost(f"the host {host!r} does not resolve ({type(exc).__name__})") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise UnresolvedHost(f"the host {host!r} does not resolve")
    for addr in addresses:
        if _refused_address(addr):
            raise RefusedUrl(
                f"the host {host!r} is a private, loopback, link-local, multicast, reserved or unspecified "
                f"address ({addr}); push notifications go only to public addresses"
            )


async def _check_for_set(mesh: Mesh, url: str) -> None:
    try:
        await check_url(url, allow_private=mesh.config.push_allow_private)
    except RefusedUrl as exc:
        raise rpc.RpcError(rpc.INVALID_PARAMS, f"Invalid params: pushNotificationConfig.url refused: {exc}") from None


def url_guard(mesh: Mesh) -> Callable[[str], Any]:
    """The worker's check before each send: a refused URL makes the row undeliverable. A host that does not
    resolve is let through to the POST, which fails on the same lookup and is retried with backoff."""

    async def guard(url: str) -> None:
        try:
            await check_url(url, allow_private=mesh.config.push_allow_private)
        except UnresolvedHost:
            return
        except RefusedUrl as exc:
            raise Undeliverable(f"push URL refused: {exc}") from None

    return guard


# ---------------------------------------------------------------- configs


def _wire(config: PushConfigRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"id": config.id, "url": config.url}
    if config.token is not None:
        out["token"] = config.token
    if config.authentication is not None:
        out["authentication"] = config.authentication
    return {"taskId": config.task_id, "pushNotificationConfig": out}


async def _task(mesh: Mesh, principal: Principal, task_id: str) -> TaskRecord:
    task = await mesh.store.get_task(principal.tenant, task_id)
    if task is None:
        raise rpc.task_not_found(task_id)
    return task


async def _configs(mesh: Mesh, task: TaskRecord) -> list[PushConfigRecord]:
    return [c for c in await mesh.store.list_push_configs(task.id) if c.tenant == task.tenant]


async def store_config(mesh: Mesh, task: TaskRecord, config: PushNotificationConfig) -> PushConfigRecord:
    """Check the URL and save the config for ``task`` (the same id replaces); the id is made when none given."""
    await _check_for_set(mesh, config.url)
    config_id = config.id or new_id()
    existing = await _configs(mesh, task)
    if config_id not in {c.id for c in existing} and len(existing) >= MAX_CONFIGS_PER_TASK:
        raise rpc.RpcError(
            rpc.INVALID_PARAMS, f"Invalid params: a task takes at most {MAX_CONFIGS_PER_TASK} push configs"
        )
    record = PushConfigRecord(
        id=config_id,
        task_id=task.id,
        tenant=task.tenant,
        url=config.url,
        token=config.token,
        authentication=config.authentication,
        created_at=mesh.clock(),
    )
    async with mesh.store.transaction() as tx:
        await tx.put_push_config(record)
    return record


async def set_config(mesh: Mesh, principal: Principal, task_id: str, config: PushNotificationConfig) -> dict[str, Any]:
    task = await _task(mesh, principal, task_id)
    return _wire(await store_config(mesh, task, config))


async def get_config(mesh: Mesh, principal: Principal, task_id: str, config_id: str | None) -> dict[str, Any]:
    """One config of a task: by id; the first one when no id is given or none has that id (what the
    reference server answers, and what clients that ask for a placeholder id such as "default" expect)."""
    configs = await _configs(mesh, await _task(mesh, principal, task_id))
    found = next((c for c in configs if c.id == config_id), configs[0] if configs else None)
    if found is None:
        which = f"{config_id!r}" if config_id is not None else "set"
        raise rpc.RpcError(
            rpc.INVALID_PARAMS, f"Invalid params: no push notification config {which} for task {task_id}"
        )
    return _wire(found)


async def list_configs(mesh: Mesh, principal: Principal, task_id: str) -> list[dict[str, Any]]:
    return [_wire(c) for c in await _configs(mesh, await _task(mesh, principal, task_id))]


async def delete_config(mesh: Mesh, principal: Principal, task_id: str, config_id: str) -> None:
    """Remove a config; removing one that is not there is not an error (the result is the same)."""
    task = await _task(mesh, principal, task_id)
    async with mesh.store.transaction() as tx:
        await tx.delete_push_config(task.id, config_id)


def config_from_send(
    mesh: Mesh, task: TaskRecord, params: MessageSendParams, *, new: bool
) -> contextlib.AbstractAsyncContextManager[None]:
    """``message/send``'s ``configuration.pushNotificationConfig``: saved before the turn writes the task's
    first state, so that change is notified too; dropped again when a new task's turn fails before it exists.
    Most sends name none: they get a context that does nothing."""
    config = params.configuration.push_notification_config if params.configuration else None
    if config is None:
        return _NO_CONFIG
    return _config_kept(mesh, task, config, new=new)


_NO_CONFIG: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()


@contextlib.asynccontextmanager
async def _config_kept(
    mesh: Mesh, task: TaskRecord, config: PushNotificationConfig, *, new: bool
) -> AsyncIterator[None]:
    record = await store_config(mesh, task, config)
    try:
        yield
    except BaseException:
        if new and await mesh.store.get_task(task.tenant, task.id) is None:
            async with mesh.store.transaction() as tx:
                await tx.delete_push_config(record.task_id, record.id)
        raise


# ---------------------------------------------------------------- JSON-RPC methods


class SetParams(Wire):
    task_id: str = Field(min_length=1)
    push_notification_config: PushNotificationConfig


class GetParams(Wire):
    id: str = Field(min_length=1)
    push_notification_config_id: str | None = None


class DeleteParams(Wire):
    id: str = Field(min_length=1)
    push_notification_config_id: str = Field(min_length=1)


async def on_set(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> Any:
    p = rpc.parse_params(SetParams, params)
    return await set_config(mesh, principal, p.task_id, p.push_notification_config)


async def on_get(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> Any:
    p = rpc.parse_params(GetParams, params)
    return await get_config(mesh, principal, p.id, p.push_notification_config_id)


async def on_list(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> Any:
    return await list_configs(mesh, principal, rpc.parse_params(TaskIdParams, params).id)


async def on_delete(mesh: Mesh, principal: Principal, params: dict[str, Any]) -> Any:
    p = rpc.parse_params(DeleteParams, params)
    await delete_config(mesh, principal, p.id, p.push_notification_config_id)
    return None


# ---------------------------------------------------------------- delivery


async def _config_ids(mesh: Mesh, tx: Tx, task: TaskRecord) -> list[str]:
    """The task's config ids, read on the transaction's own connection: a second one taken from a pool while
    this one is held could wait forever when every connection is held the same way."""
    if not isinstance(tx, SqlTx):
        return [c.id for c in await mesh.store.list_push_configs(task.id) if c.tenant == task.tenant]
    rows = await tx.fetchall(
        "SELECT id FROM push_configs WHERE task_id = ? AND tenant = ? ORDER BY created_at, id LIMIT ?",
        (task.id, task.tenant, MAX_CONFIGS_PER_TASK),
    )
    return [row[0] for row in rows]


def state_hook(mesh: Mesh) -> Callable[[Tx, TaskRecord], Any]:
    """A :data:`mesh.service.StateHook`: one outbox row per push config of the task, in the same transaction
    as the state change. The row keeps the status written (no secrets: the token is read at send time)."""

    async def queue_pushes(tx: Tx, task: TaskRecord) -> None:
        if task.no_push_configs:  # true for the write that creates the task; a later one looks again
            task.no_push_configs = False
            return
        for config_id in await _config_ids(mesh, tx, task):
            payload = {
                "tenant": task.tenant,
                "task_id": task.id,
                "config_id": config_id,
                "state": task.state,
                "status": task.status,
            }
            await tx.enqueue(KIND, payload)
            task.pushes_queued = True

    return queue_pushes


async def build_push(mesh: Mesh, row: OutboxRecord) -> Delivery:
    """The Task as ``tasks/get`` returns it (no history), with the status its change wrote."""
    data = row.payload
    task = await mesh.store.get_task(data["tenant"], data["task_id"])
    if task is None:
        raise Undeliverable("task gone")
    config = next((c for c in await _configs(mesh, task) if c.id == data["config_id"]), None)
    if config is None:
        raise Undeliverable("push config deleted")
    body = task.to_wire()
    body["status"] = data["status"]
    headers = {TOKEN_HEADER: config.token} if config.token else {}
    return Delivery(url=config.url, body=body, headers=headers)


def push_worker(mesh: Mesh) -> OutboxWorker:
    return OutboxWorker(mesh, {KIND: build_push}, url_guard=url_guard(mesh))


def delivery_ctx(mesh: Mesh) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp ``cleanup_ctx`` that sends push notifications for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with running(push_worker(mesh)):
            yield

    return ctx


METHODS: dict[str, Any] = {
    "tasks/pushNotificationConfig/set": on_set,
    "tasks/pushNotificationConfig/get": on_get,
    "tasks/pushNotificationConfig/list": on_list,
    "tasks/pushNotificationConfig/delete": on_delete,
}
STREAM_METHODS: dict[str, Any] = {}
