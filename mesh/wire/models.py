"""A2A v0.3.0 wire shapes as pydantic models.

These models are the one place the mesh decides what a well-formed message, part or task looks like, so
the JSON-RPC layer validates once at the edge and everything behind it trusts the objects it gets.
Field names are camelCase on the wire (``populate_by_name`` lets code use snake_case too).
"""

from __future__ import annotations

import os
import threading
import time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

_SECOND: tuple[int, str] = (-1, "")  # the last second stamped, and its text up to the seconds


def utc_stamp(ns: int) -> str:
    """``ns`` (nanoseconds since the epoch) as ISO-8601 UTC with milliseconds and a ``Z`` suffix, the form
    every A2A client parses. The text up to the second is formatted once per second: building and formatting
    a ``datetime`` for every status would cost a fiftieth of a turn."""
    global _SECOND
    second, ms = divmod(ns // 1_000_000, 1000)
    stamped, prefix = _SECOND
    if second != stamped:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _SECOND = (second, prefix)  # one tuple swapped whole, so threads never see half of it
    return f"{prefix}.{ms:03d}Z"


def utc_now() -> str:
    return utc_stamp(time.time_ns())


class _Entropy(threading.local):
    """The operating system's randomness, read a few kilobytes at a time: one ``getrandom`` call per id was
    a tenth of a turn's time. Per thread, so no two threads hand out the same bytes, and dropped in a forked
    child, so parent and child never do either."""

    def __init__(self) -> None:
        self.pool = b""
        self.at = 0


_ENTROPY = _Entropy()
_ENTROPY_CHUNK = 4096


def _random_bytes(n: int) -> bytes:
    entropy = _ENTROPY
    at = entropy.at
    if at + n > len(entropy.pool):
        entropy.pool, at = os.urandom(_ENTROPY_CHUNK), 0
    entropy.at = at + n
    return entropy.pool[at : at + n]


def _drop_entropy() -> None:
    global _ENTROPY
    _ENTROPY = _Entropy()


os.register_at_fork(after_in_child=_drop_entropy)


def new_id() -> str:
    """A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds, then 74 random bits.

    Ids made one after another sort together, so the indexes keyed by them (tasks, history, approvals, a
    task's context) grow at their right edge: a write dirties the pages it shares with its neighbours
    instead of one random page per index, and a group commit writes and syncs that many fewer pages.
    Built from bytes rather than a ``uuid.UUID``, whose checks would be half the cost of an id."""
    raw = bytearray((time.time_ns() // 1_000_000).to_bytes(6, "big") + _random_bytes(10))
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Wire(BaseModel):
    """Base for wire objects: camelCase aliases, extra keys kept (A2A allows extensions)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class TaskState(StrEnum):
    SUBMITTED = "submitted"
    WORKING = "working"
    INPUT_REQUIRED = "input-required"
    COMPLETED = "completed"
    CANCELED = "canceled"
    FAILED = "failed"
    REJECTED = "rejected"
    AUTH_REQUIRED = "auth-required"
    UNKNOWN = "unknown"


MAX_HISTORY_LENGTH = 1_000_000  # past any task's history; bounds a number a database must hold
TERMINAL_STATES = frozenset({TaskState.COMPLETED, TaskState.CANCELED, TaskState.FAILED, TaskState.REJECTED})
INTERRUPTED_STATES = frozenset({TaskState.INPUT_REQUIRED, TaskState.AUTH_REQUIRED})


class TextPart(Wire):
    kind: Literal["text"] = "text"
    text: str
    metadata: dict[str, Any] | None = None


class FileContent(Wire):
    name: str | None = None
    mime_type: str | None = None
    bytes: str | None = None
    uri: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FileContent:
        if (self.bytes is None) == (self.uri is None):
            raise ValueError("a file part needs exactly one of 'bytes' or 'uri'")
        return self


class FilePart(Wire):
    kind: Literal["file"] = "file"
    file: FileContent
    metadata: dict[str, Any] | None = None


class DataPart(Wire):
    kind: Literal["data"] = "data"
    data: dict[str, Any]
    metadata: dict[str, Any] | None = None


Part = Annotated[TextPart | FilePart | DataPart, Field(discriminator="kind")]


class Message(Wire):
    """An A2A message. ``messageId`` and ``kind`` are optional on input because the guide omits them."""

    kind: Literal["message"] = "message"
    role: Literal["user", "agent"]
    parts: list[Part] = Field(min_length=1)
    message_id: str = Field(default_factory=new_id)
    task_id: str | None = None
    context_id: str | None = None
    reference_task_ids: list[str] | None = None
    extensions: list[str] | None = None
    metadata: dict[str, Any] | None = None

    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    def data_parts(self) -> list[DataPart]:
        return [p for p in self.parts if isinstance(p, DataPart)]


class TaskStatus(Wire):
    state: TaskState
    message: Message | None = None
    timestamp: str = Field(default_factory=utc_now)


class Artifact(Wire):
    artifact_id: str = Field(default_factory=new_id)
    name: str | None = None
    description: str | None = None
    parts: list[Part] = Field(min_length=1)
    metadata: dict[str, Any] | None = None


class Task(Wire):
    kind: Literal["task"] = "task"
    id: str
    context_id: str
    status: TaskStatus
    history: list[Message] | None = None
    artifacts: list[Artifact] | None = None
    metadata: dict[str, Any] | None = None


class PushNotificationConfig(Wire):
    id: str | None = None
    url: str
    token: str | None = None
    authentication: dict[str, Any] | None = None


class MessageSendConfiguration(Wire):
    accepted_output_modes: list[str] | None = None
    blocking: bool | None = None
    history_length: int | None = Field(default=None, ge=0, le=MAX_HISTORY_LENGTH)
    push_notification_config: PushNotificationConfig | None = None


class MessageSendParams(Wire):
    message: Message
    configuration: MessageSendConfiguration | None = None
    metadata: dict[str, Any] | None = None


class TaskQueryParams(Wire):
    id: str = Field(min_length=1)
    history_length: int | None = Field(default=None, ge=0, le=MAX_HISTORY_LENGTH)
    metadata: dict[str, Any] | None = None


class TaskIdParams(Wire):
    id: str = Field(min_length=1)
    metadata: dict[str, Any] | None = None


def agent_message(parts: list[Any], task_id: str, context_id: str, **metadata: Any) -> Message:
    """A message from the agent side of a task (status messages, replies)."""
    return Message(
        role="agent",
        parts=parts,
        task_id=task_id,
        context_id=context_id,
        metadata=metadata or None,
    )
