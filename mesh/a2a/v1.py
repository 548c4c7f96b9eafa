"""A2A v1.0 method names and wire shapes on the same endpoint, over the same task model.

Each v1.0 method translates its params to the v0.3 params of its twin, calls the twin's method of the
v0.3 :class:`~mesh.a2a.handler.RequestHandler`, and translates the result back. v1.0 shapes are the
protobuf JSON mapping of ``a2a.proto``: no ``kind``, ``ROLE_*`` and ``TASK_STATE_*`` enums, parts
``{text}`` / ``{data}`` / ``{raw}`` / ``{url}`` with ``mediaType`` and ``filename``, push configs flat
(``{taskId, id, url, token}``), send results wrapped as ``{"task"}`` or ``{"message"}`` and stream events
as ``{"task"}``, ``{"message"}``, ``{"statusUpdate"}``, ``{"artifactUpdate"}``. A request's ``tenant`` is
not read: the caller's token decides the tenant.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from mesh.a2a.handler import RequestHandler
from mesh.auth import Principal
from mesh.wire import jsonrpc as rpc
from mesh.wire.models import MAX_HISTORY_LENGTH

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_OFFSET = 2**31 - 1  # a page token's offset past this was not one this server gave

STATES = {
    "submitted": "TASK_STATE_SUBMITTED",
    "working": "TASK_STATE_WORKING",
    "input-required": "TASK_STATE_INPUT_REQUIRED",
    "completed": "TASK_STATE_COMPLETED",
    "canceled": "TASK_STATE_CANCELED",
    "failed": "TASK_STATE_FAILED",
    "rejected": "TASK_STATE_REJECTED",
    "auth-required": "TASK_STATE_AUTH_REQUIRED",
}
STATE_NUMBERS = {
    "TASK_STATE_UNSPECIFIED": 0,
    "TASK_STATE_SUBMITTED": 1,
    "TASK_STATE_WORKING": 2,
    "TASK_STATE_COMPLETED": 3,
    "TASK_STATE_FAILED": 4,
    "TASK_STATE_CANCELED": 5,
    "TASK_STATE_INPUT_REQUIRED": 6,
    "TASK_STATE_REJECTED": 7,
    "TASK_STATE_AUTH_REQUIRED": 8,
}
V03_STATES = {v1: v03 for v03, v1 in STATES.items()}
ROLES = {"ROLE_USER": "user", "ROLE_AGENT": "agent", 1: "user", 2: "agent"}
V1_ROLES = {"user": "ROLE_USER", "agent": "ROLE_AGENT"}
DATA_PART_COMPAT = "data_part_compat"
"""Metadata flag the a2a-sdk uses to carry a non-object ``data`` value in a v0.3 DataPart's ``{"value"}``."""

# ---------------------------------------------------------------- params: checks


def _bad(where: str, problem: str) -> rpc.RpcError:
    return rpc.RpcError(rpc.INVALID_PARAMS, f"Invalid params: {where}: {problem}")


def _str(obj: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    """A string field; absent, null and "" (protobuf's unset) are None, or an error when required."""
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise _bad(f"{where}{key}", "field required")
        return None
    if not isinstance(value, str):
        raise _bad(f"{where}{key}", "must be a string")
    return value


def _int(obj: dict[str, Any], key: str, where: str = "") -> int | None:
    """A protobuf JSON int32: a number, or a string of digits."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise _bad(f"{where}{key}", "must be an integer") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{where}{key}", "must be an integer")
    return value


def _bool(obj: dict[str, Any], key: str, where: str = "") -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise _bad(f"{where}{key}", "must be a boolean")
    return value


def _object(obj: dict[str, Any], key: str, where: str = "") -> dict[str, Any] | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        raise _bad(f"{where}{key}", "must be an object")
    return value


def _strings(obj: dict[str, Any], key: str, where: str = "") -> list[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{where}{key}", "must be a list of strings")
    return value


def _history_length(obj: dict[str, Any], where: str = "") -> int | None:
    length = _int(obj, "historyLength", where)
    if length is not None and not 0 <= length <= MAX_HISTORY_LENGTH:
        raise _bad(f"{where}historyLength", f"must be from 0 to {MAX_HISTORY_LENGTH}")
    return length


def _task_state(value: Any, where: str) -> str | None:
    """A v1.0 TaskState (name or number) as the v0.3 state string; unspecified is None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _bad(where, "not a TaskState")
    if isinstance(value, int):
        names = {n: s for s, n in STATE_NUMBERS.items()}
        if value not in names:
            raise _bad(where, f"not a TaskState: {value}")
        value = names[value]
    if value is None or value == "TASK_STATE_UNSPECIFIED":
        return None
    if value not in V03_STATES:
        raise _bad(where, f"not a TaskState: {value!r}")
    return V03_STATES[value]


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None}


# ---------------------------------------------------------------- v1.0 -> v0.3


def part_to_v03(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _bad(where, "a part must be an object")
    contents = [key for key in ("text", "data", "raw", "url") if part.get(key) is not None]
    if len(contents) != 1:
        raise _bad(where, "a part needs exactly one of 'text', 'data', 'raw' or 'url'")
    metadata = _object(part, "metadata", f"{where}.")
    media_type = _str(part, "mediaType", f"{where}.")
    filename = _str(part, "filename", f"{where}.")
    kind = contents[0]
    if kind in ("text", "data") and media_type and not (metadata or {}).get("mimeType"):
        metadata = {**(metadata or {}), "mimeType": media_type}
    if kind == "text":
        text = _str(part, "text", f"{where}.")
        return _clean({"kind": "text", "text": text or "", "metadata": metadata})
    if kind == "data":
        data = part["data"]
        if not isinstance(data, dict):
            data = {"value": data}
            metadata = {**(metadata or {}), DATA_PART_COMPAT: True}
        return _clean({"kind": "data", "data": data, "metadata": metadata})
    file: dict[str, Any] = {"name": filename, "mimeType": media_type}
    if kind == "raw":
        raw = _str(part, "raw", f"{where}.") or ""
        try:
            base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"{where}.raw", "must be base64") from None
        file["bytes"] = raw
    else:
        file["uri"] = _str(part, "url", f"{where}.")
    return _clean({"kind": "file", "file": _clean(file), "metadata": metadata})


def message_to_v03(message: Any, where: str = "message") -> dict[str, Any]:
    if not isinstance(message, dict):
        raise _bad(where, "field required" if message is None else "must be an object")
    role = message.get("role")
    if not isinstance(role, str | int) or isinstance(role, bool) or role not in ROLES:
        raise _bad(f"{where}.role", "must be ROLE_USER or ROLE_AGENT")
    parts = message.get("parts")
    if not isinstance(parts, list) or not parts:
        raise _bad(f"{where}.parts", "must be a non-empty list")
    out: dict[str, Any] = {
        "kind": "message",
        "role": ROLES[role],
        "parts": [part_to_v03(p, f"{where}.parts.{i}") for i, p in enumerate(parts)],
        "messageId": _str(message, "messageId", f"{where}."),
        "taskId": _str(message, "taskId", f"{where}."),
        "contextId": _str(message, "contextId", f"{where}."),
        "referenceTaskIds": _strings(message, "referenceTaskIds", f"{where}."),
        "extensions": _strings(message, "extensions", f"{where}."),
        "metadata": _object(message, "metadata", f"{where}."),
    }
    return _clean(out)


def push_config_to_v03(config: dict[str, Any], where: str = "") -> dict[str, Any]:
    """A v1.0 TaskPushNotificationConfig (flat) as a v0.3 PushNotificationConfig."""
    auth = _object(config, "authentication", where)
    authentication = None
    if auth is not None:
        scheme = _str(auth, "scheme", f"{where}authentication.")
        authentication = _clean({"schemes": [scheme] if scheme else [], "credentials": auth.get("credentials")})
    return _clean(
        {
            "id": _str(config, "id", where),
            "url": _str(config, "url", where, required=True),
            "token": _str(config, "token", where),
            "authentication": authentication,
        }
    )


def send_params_to_v03(params: dict[str, Any]) -> dict[str, Any]:
    config = _object(params, "configuration") or {}
    v03_config: dict[str, Any] = {
        "acceptedOutputModes": _strings(config, "acceptedOutputModes", "configuration."),
        "historyLength": _history_length(config, "configuration."),
    }
    immediately = _bool(config, "returnImmediately", "configuration.")
    if immediately is not None:
        v03_config["blocking"] = not immediately
    push = _object(config, "taskPushNotificationConfig", "configuration.")
    if push is not None:
        v03_config["pushNotificationConfig"] = push_config_to_v03(push, "configuration.taskPushNotificationConfig.")
    return _clean(
        {
            "message": message_to_v03(params.get("message")),
            "configuration": _clean(v03_config) or None,
            "metadata": _object(params, "metadata"),
        }
    )


def _task_id(params: dict[str, Any], key: str = "id") -> str:
    task_id = _str(params, key, "", required=True)
    assert task_id is not None
    return task_id


# ---------------------------------------------------------------- v0.3 -> v1.0


def part_to_v1(part: dict[str, Any]) -> dict[str, Any]:
    metadata = part.get("metadata")
    kind = part.get("kind")
    out: dict[str, Any] = {}
    if kind == "text" or (kind is None and "text" in part):
        out["text"] = part.get("text", "")
    elif kind == "data" or (kind is None and "data" in part):
        data = part.get("data")
        if isinstance(metadata, dict) and metadata.get(DATA_PART_COMPAT) and isinstance(data, dict):
            data = data.get("value")
            metadata = {k: v for k, v in metadata.items() if k != DATA_PART_COMPAT}
        out["data"] = data
        media_type = metadata.get("mimeType") if isinstance(metadata, dict) else None
        if isinstance(media_type, str) and media_type:
            out["mediaType"] = media_type
    else:
        file = part.get("file") or {}
        if file.get("bytes") is not None:
            out["raw"] = file["bytes"]
        else:
            out["url"] = file.get("uri", "")
        if file.get("mimeType"):
            out["mediaType"] = file["mimeType"]
        if file.get("name"):
            out["filename"] = file["name"]
    if metadata:
        out["metadata"] = metadata
    return out


def message_to_v1(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k not in ("kind", "role", "parts") and v is not None}
    out["role"] = V1_ROLES.get(message.get("role", ""), "ROLE_UNSPECIFIED")
    out["parts"] = [part_to_v1(p) for p in message.get("parts") or []]
    return out


def status_to_v1(status: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"state": STATES.get(status.get("state", ""), "TASK_STATE_UNSPECIFIED")}
    if status.get("message"):
        out["message"] = message_to_v1(status["message"])
    if status.get("timestamp"):
        out["timestamp"] = status["timestamp"]
    return out


def artifact_to_v1(artifact: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in artifact.items() if k not in ("kind", "parts") and v is not None}
    out["parts"] = [part_to_v1(p) for p in artifact.get("parts") or []]
    return out


def task_to_v1(task: dict[str, Any], *, artifacts: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"id": task["id"], "contextId": task["contextId"], "status": status_to_v1(task["status"])}
    if artifacts and task.get("artifacts"):
        out["artifacts"] = [artifact_to_v1(a) for a in task["artifacts"]]
    if task.get("history") is not None:
        out["history"] = [message_to_v1(m) for m in task["history"]]
    if task.get("metadata"):
        out["metadata"] = task["metadata"]
    return out


def event_to_v1(event: dict[str, Any]) -> dict[str, Any]:
    """A v0.3 send or stream result (Task, Message, status or artifact update) as a v1.0 StreamResponse."""
    kind = event.get("kind")
    if kind == "task" or (kind is None and "status" in event and "id" in event):
        return {"task": task_to_v1(event)}
    if kind == "message" or (kind is None and "messageId" in event):
        return {"message": message_to_v1(event)}
    base = {k: event[k] for k in ("taskId", "contextId", "metadata") if event.get(k) is not None}
    if kind == "status-update" or (kind is None and "status" in event):
        return {"statusUpdate": {**base, "status": status_to_v1(event["status"])}}
    if kind == "artifact-update" or (kind is None and "artifact" in event):
        update = {**base, "artifact": artifact_to_v1(event["artifact"])}
        for key in ("append", "lastChunk"):
            if event.get(key) is not None:
                update[key] = event[key]
        return {"artifactUpdate": update}
    raise rpc.RpcError(rpc.INTERNAL_ERROR, f"Internal error: an event of unknown kind {kind!r}")


def push_config_to_v1(config: dict[str, Any]) -> dict[str, Any]:
    """A v0.3 TaskPushNotificationConfig ``{taskId, pushNotificationConfig}`` as the flat v1.0 one."""
    inner = config.get("pushNotificationConfig") or {}
    out: dict[str, Any] = {"taskId": config.get("taskId")}
    for key in ("id", "url", "token"):
        if inner.get(key) is not None:
            out[key] = inner[key]
    auth = inner.get("authentication")
    if isinstance(auth, dict):
        schemes = auth.get("schemes") or []
        out["authentication"] = _clean(
            {"scheme": schemes[0] if schemes else None, "credentials": auth.get("credentials")}
        )
    return _clean(out)


# ---------------------------------------------------------------- pages


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def _page_offset(params: dict[str, Any]) -> int:
    token = _str(params, "pageToken", "")
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, number = text.partition(":")
        offset = int(number)
        if prefix != "offset" or not 0 <= offset <= MAX_OFFSET:
            raise ValueError(text)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise _bad("pageToken", "not a token this server gave") from None
    return offset


def _page_size(params: dict[str, Any]) -> int:
    size = _int(params, "pageSize")
    if not size:
        return DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise _bad("pageSize", f"must be between 1 and {MAX_PAGE_SIZE}")
    return size


def _timestamp(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(where, "must be an RFC 3339 timestamp")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(where, "must be an RFC 3339 timestamp") from None
    if stamp.tzinfo is None:
        raise _bad(where, "must name its UTC offset")
    return stamp


def _status_time(task: dict[str, Any]) -> datetime:
    stamp = (task.get("status") or {}).get("timestamp") or "1970-01-01T00:00:00Z"
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# ---------------------------------------------------------------- handlers


class V1Handler:
    """The v1.0 operations, each the translation of its v0.3 twin."""

    def __init__(self, v03: RequestHandler) -> None:
        self.v03 = v03

    async def send_message(self, principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
        result = await self.v03.send_message(principal, send_params_to_v03(params))
        wrapped = event_to_v1(result)
        if "task" not in wrapped and "message" not in wrapped:
            raise rpc.RpcError(rpc.INTERNAL_ERROR, "Internal error: message/send answered neither a task nor a message")
        return wrapped

    async def send_streaming_message(self, principal: Principal, params: dict[str, Any]) -> AsyncIterator[Any]:
        v03 = send_params_to_v03(params)
        async for event in self.v03.stream_message(principal, v03):
            yield event_to_v1(event)

    async def get_task(self, principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
        v03 = _clean({"id": _task_id(params), "historyLength": _history_length(params)})
        return task_to_v1(await self.v03.get_task(principal, v03))

    async def cancel_task(self, principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
        v03 = _clean({"id": _task_id(params), "metadata": _object(params, "metadata")})
        return task_to_v1(await self.v03.cancel_task(principal, v03))

    async def subscribe_to_task(self, principal: Principal, params: dict[str, Any]) -> AsyncIterator[Any]:
        async for event in self.v03.resubscribe(principal, {"id": _task_id(params)}):
            yield event_to_v1(event)

    async def list_tasks(self, principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
        """Newest first. ``historyLength`` absent means no history; ``includeArtifacts`` absent means none."""
        service = self.v03.tasks
        context_id = _str(params, "contextId", "")
        state = _task_state(params.get("status"), "status")
        size, offset = _page_size(params), _page_offset(params)
        history = _history_length(params) or 0
        artifacts = bool(_bool(params, "includeArtifacts"))
        after = _timestamp(params.get("statusTimestampAfter"), "statusTimestampAfter")
        if after is None:
            tasks, total = await service.list_tasks(
                principal, context_id=context_id, state=state, limit=size, offset=offset, history_length=history
            )
        else:
            # the status timestamp is not a stored column: filter every match, then page
            matched: list[dict[str, Any]] = []
            scanned, chunk = 0, 500
            while True:
                batch, count = await service.list_tasks(
                    principal, context_id=context_id, state=state, limit=chunk, offset=scanned, history_length=0
                )
                matched.extend(t for t in batch if _status_time(t) >= after)
                scanned += len(batch)
                if not batch or scanned >= count:
                    break
            total = len(matched)
            tasks = matched[offset : offset + size]
            if history:
                for task in tasks:
                    task["history"] = await service.history(task["id"], history)
        following = offset + len(tasks)
        return {
            "tasks": [task_to_v1(t, artifacts=artifacts) for t in tasks],
            "nextPageToken": _page_token(following) if following < total else "",
            "pageSize": size,
            "totalSize": total,
        }

    async def create_push_config(self, principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
        v03 = {"taskId": _task_id(params, "taskId"), "pushNotificationConfig": push_config_to_v03(params)}
        return push_config_to_v1(await self.v03.set_push_config(principal, v03))

    async def get_push_config(self, principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
        v03 = _clean({"id": _task_id(params, "taskId"), "pushNotificationConfigId": _str(params, "id", "")})
        return push_config_to_v1(await self.v03.get_push_config(principal, v03))

    async def list_push_configs(self, principal: Principal, params: dict[str, Any]) -> dict[str, Any]:
        task_id = _task_id(params, "taskId")
        size, offset = _page_size(params), _page_offset(params)
        configs = await self.v03.list_push_configs(principal, {"id": task_id})
        page = [push_config_to_v1(c) for c in (configs or [])[offset : offset + size]]
        out: dict[str, Any] = {"configs": page}
        if offset + len(page) < len(configs or []):
            out["nextPageToken"] = _page_token(offset + len(page))
        return out

    async def delete_push_config(self, principal: Principal, params: dict[str, Any]) -> None:
        v03 = {"id": _task_id(params, "taskId"), "pushNotificationConfigId": _task_id(params, "id")}
        await self.v03.delete_push_config(principal, v03)

    async def get_extended_agent_card(self, principal: Principal, params: dict[str, Any]) -> Any:
        """The public card is all there is; the card does not declare ``capabilities.extendedAgentCard``."""
        raise rpc.RpcError(rpc.EXTENDED_CARD_NOT_CONFIGURED, "Authenticated Extended Card is not configured")
