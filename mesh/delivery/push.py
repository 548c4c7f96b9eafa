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
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from mesh.core.config import MeshConfig
from mesh.core.events import EventBus
from mesh.core.kernel import Clock
from mesh.delivery.outbox import Builder, Delivery, DeliveryFailed, OutboxWorker, Undeliverable, UrlGuard, posting
from mesh.store import OutboxRecord, PushConfigRecord, Store, TaskRecord, Tx
from mesh.wire import jsonrpc as rpc
from mesh.wire.models import MessageSendParams, PushNotificationConfig, new_id

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


def url_guard(config: MeshConfig) -> UrlGuard:
    """The worker's check before each send: a refused URL makes the row undeliverable. A host that does not
    resolve is let through to the POST, which fails on the same lookup and is retried with backoff."""

    async def guard(url: str) -> None:
        try:
            await check_url(url, allow_private=config.push_allow_private)
        except UnresolvedHost:
            return
        except RefusedUrl as exc:
            raise Undeliverable(f"push URL refused: {exc}") from None

    return guard


# ---------------------------------------------------------------- configs


def config_wire(config: PushConfigRecord) -> dict[str, Any]:
    """A v0.3 TaskPushNotificationConfig."""
    out: dict[str, Any] = {"id": config.id, "url": config.url}
    if config.token is not None:
        out["token"] = config.token
    if config.authentication is not None:
        out["authentication"] = config.authentication
    return {"taskId": config.task_id, "pushNotificationConfig": out}


_NO_CONFIG: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()


class PushConfigs:
    """A task's push configs: where to POST its updates."""

    def __init__(self, store: Store, clock: Clock, config: MeshConfig) -> None:
        self._store = store
        self._clock = clock
        self._config = config

    async def _task(self, tenant: str, task_id: str) -> TaskRecord:
        task = await self._store.get_task(tenant, task_id)
        if task is None:
            raise rpc.task_not_found(task_id)
        return task

    async def _configs(self, task: TaskRecord) -> list[PushConfigRecord]:
        return [c for c in await self._store.list_push_configs(task.id) if c.tenant == task.tenant]

    async def store_config(self, task: TaskRecord, config: PushNotificationConfig) -> PushConfigRecord:
        """Check the URL and save the config for ``task`` (the same id replaces); the id is made when none given."""
        try:
            await check_url(config.url, allow_private=self._config.push_allow_private)
        except RefusedUrl as exc:
            raise rpc.RpcError(
                rpc.INVALID_PARAMS, f"Invalid params: pushNotificationConfig.url refused: {exc}"
            ) from None
        config_id = config.id or new_id()
        existing = await self._configs(task)
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
            created_at=self._clock(),
        )
        async with self._store.transaction() as tx:
            await tx.put_push_config(record)
        return record

    async def set_config(self, tenant: str, task_id: str, config: PushNotificationConfig) -> dict[str, Any]:
        task = await self._task(tenant, task_id)
        return config_wire(await self.store_config(task, config))

    async def get_config(self, tenant: str, task_id: str, config_id: str | None) -> dict[str, Any]:
        """One config of a task: by id; the first one when no id is given or none has that id (what the
        reference server answers, and what clients that ask for a placeholder id such as "default" expect)."""
        configs = await self._configs(await self._task(tenant, task_id))
        found = next((c for c in configs if c.id == config_id), configs[0] if configs else None)
        if found is None:
            which = f"{config_id!r}" if config_id is not None else "set"
            raise rpc.RpcError(
                rpc.INVALID_PARAMS, f"Invalid params: no push notification config {which} for task {task_id}"
            )
        return config_wire(found)

    async def list_configs(self, tenant: str, task_id: str) -> list[dict[str, Any]]:
        return [config_wire(c) for c in await self._configs(await self._task(tenant, task_id))]

    async def delete_config(self, tenant: str, task_id: str, config_id: str) -> None:
        """Remove a config; removing one that is not there is not an error (the result is the same)."""
        task = await self._task(tenant, task_id)
        async with self._store.transaction() as tx:
            await tx.delete_push_config(task.id, config_id)

    def from_send(
        self, task: TaskRecord, params: MessageSendParams, *, new: bool
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """``message/send``'s ``configuration.pushNotificationConfig``: saved before the turn writes the task's
        first state, so that change is notified too; dropped again when a new task's turn fails before it
        exists. Most sends name none: they get a context that does nothing."""
        config = params.configuration.push_notification_config if params.configuration else None
        if config is None:
            return _NO_CONFIG
        return self._kept(task, config, new=new)

    @contextlib.asynccontextmanager
    async def _kept(self, task: TaskRecord, config: PushNotificationConfig, *, new: bool) -> AsyncIterator[None]:
        record = await self.store_config(task, config)
        try:
            yield
        except BaseException:
            if new and await self._store.get_task(task.tenant, task.id) is None:
                async with self._store.transaction() as tx:
                    await tx.delete_push_config(record.task_id, record.id)
            raise


# ---------------------------------------------------------------- delivery


async def queue_pushes(tx: Tx, task: TaskRecord) -> None:
    """A state hook: one outbox row per push config of the task, in the same transaction as the state change.
    The row keeps the status written (no secrets: the token is read at send time). The ids are read on the
    transaction's own connection: a second one taken from a pool while this one is held could wait forever
    when every connection is held the same way."""
    if task.no_push_configs:  # true for the write that creates the task; a later one looks again
        task.no_push_configs = False
        return
    for config_id in await tx.push_config_ids(task.id, task.tenant, MAX_CONFIGS_PER_TASK):
        payload = {
            "tenant": task.tenant,
            "task_id": task.id,
            "config_id": config_id,
            "state": task.state,
            "status": task.status,
        }
        await tx.enqueue(KIND, payload)
        task.pushes_queued = True


def push_builder(store: Store) -> Builder:
    async def build_push(row: OutboxRecord) -> Delivery:
        """The Task as ``tasks/get`` returns it (no history), with the status its change wrote."""
        data = row.payload
        task = await store.get_task(data["tenant"], data["task_id"])
        if task is None:  # tasks are never deleted: not visible yet to this connection, so tried again
            raise DeliveryFailed("task not visible yet")
        configs = await store.list_push_configs(task.id)
        config = next((c for c in configs if c.id == data["config_id"] and c.tenant == task.tenant), None)
        if config is None:
            raise Undeliverable("push config deleted")
        body = task.to_wire()
        body["status"] = data["status"]
        headers = {TOKEN_HEADER: config.token} if config.token else {}
        return Delivery(url=config.url, body=body, headers=headers)

    return build_push


def push_worker(store: Store, clock: Clock, events: EventBus, config: MeshConfig) -> OutboxWorker:
    """Push URLs are checked again before every send, against the settings as they are then."""
    return OutboxWorker(store, clock, events, {KIND: posting(push_builder(store), url_guard(config))})
