"""A downstream A2A agent reached over JSON-RPC (protocol v0.3).

``plan`` turns the caller's message into an :class:`Action` for the policy engine and keeps the message in
the action's context, so a held message can be forwarded as it was sent once a person approves it.
``execute`` forwards it with a blocking ``message/send`` and relays the downstream task's state, status
message and new artifacts under the mesh's own task. The downstream task and context ids are kept in the
mesh task's metadata (``airlock.remote``) so a follow-up continues the same downstream task.

Every failure to get a usable answer (unreachable, timed out, not JSON, a JSON-RPC error, a malformed
task) becomes a ``failed`` reply naming the agent; nothing waits longer than the agent timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson
from pydantic import TypeAdapter, ValidationError
from yarl import URL

from a2ui import MASK
from mesh.policy import Action
from mesh.wire.models import Artifact, Message, Part, TaskState, new_id

from .base import Agent, Execution, Plan, Reply, TurnContext

log = logging.getLogger("airlock.agents.remote")

PROTOCOL = "0.3"
RUNNING = frozenset({TaskState.SUBMITTED, TaskState.WORKING})
RELAYED = frozenset(
    {
        TaskState.COMPLETED,
        TaskState.FAILED,
        TaskState.CANCELED,
        TaskState.REJECTED,
        TaskState.INPUT_REQUIRED,
        TaskState.AUTH_REQUIRED,
    }
)
POLL_INTERVAL_S = 0.5
CANCEL_TIMEOUT_S = 5.0
MAX_KEPT_ANSWERS = 1000  # answers with sensitive values waiting (in memory only) for a held forward

_PARTS = TypeAdapter(list[Part])
_ARTIFACTS = TypeAdapter(list[Artifact])


class RemoteAgentError(Exception):
    """The downstream agent gave no usable answer; the message says why, for the task's caller."""


def _legacy(version: Any) -> bool:
    return version is None or (isinstance(version, str) and version.strip().startswith("0."))


def card_endpoint(card: Mapping[str, Any], base_url: str) -> str:
    """The JSON-RPC URL a v0.3 client calls, read from the card (clients call the card's URL, not the one
    the card was fetched from). Raises ValueError when the card offers no JSON-RPC interface at v0.3."""
    candidates: list[tuple[Any, Any, Any]] = []
    if card.get("url"):
        candidates.append((card.get("url"), card.get("preferredTransport") or "JSONRPC", card.get("protocolVersion")))
    for iface in card.get("additionalInterfaces") or []:
        if isinstance(iface, Mapping):
            candidates.append((iface.get("url"), iface.get("transport"), card.get("protocolVersion")))
    for iface in card.get("supportedInterfaces") or []:
        if isinstance(iface, Mapping):
            candidates.append((iface.get("url"), iface.get("protocolBinding"), iface.get("protocolVersion")))
    for url, transport, version in candidates:
        if isinstance(url, str) and url and str(transport).upper() in ("JSONRPC", "JSON-RPC") and _legacy(version):
            return urljoin(base_url.rstrip("/") + "/", url)
    raise ValueError(f"the agent card offers no JSON-RPC interface at protocol {PROTOCOL}")


def remote_state(metadata: Mapping[str, Any], agent: str) -> dict[str, Any]:
    """What the mesh task remembers of its downstream task at ``agent`` (empty when none)."""
    airlock = metadata.get("airlock")
    remote = airlock.get("remote") if isinstance(airlock, Mapping) else None
    if isinstance(remote, Mapping) and remote.get("agent") == agent:
        return dict(remote)
    return {}


def _failed(text: str, metadata: dict[str, Any] | None = None) -> Reply:
    return Reply(state=TaskState.FAILED, parts=[{"kind": "text", "text": text}], metadata=metadata or {})


class RemoteAgent(Agent):
    continues_tasks = True

    def __init__(self, name: str, url: str, card: Mapping[str, Any], *, timeout_s: float = 30.0) -> None:
        self.name = name
        self.url = url
        self.card = dict(card)
        self.endpoint = card_endpoint(card, url)
        self.description = str(card.get("description") or "")
        self.timeout_s = float(timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._inflight = 0
        self._retired = False
        self._background: set[asyncio.Task[None]] = set()
        # answers to a form with sensitive values, by message id: the action keeps a masked copy (it may
        # be stored with a hold), the clear one lives here until it is forwarded
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # ------------------------------------------------------------ card

    def skills(self) -> list[dict[str, Any]]:
        out = []
        for skill in self.card.get("skills") or []:
            if not isinstance(skill, Mapping) or not skill.get("id"):
                continue
            tags = [str(t) for t in skill.get("tags") or [] if isinstance(t, str)]
            out.append(
                {
                    **skill,
                    "id": str(skill["id"]),
                    "name": str(skill.get("name") or skill["id"]),
                    "description": str(skill.get("description") or f"A skill of the agent {self.name}"),
                    "tags": [*tags, f"agent:{self.name}"],
                }
            )
        return out

    # ------------------------------------------------------------ lifecycle

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
        await self._close()

    def retire(self) -> None:
        """Unregistered: close the connection pool once calls still running are done."""
        self._retired = True
        if not self._inflight:
            task = asyncio.get_running_loop().create_task(self._close())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # ------------------------------------------------------------ the turn

    async def plan(self, message: Message, ctx: TurnContext) -> Plan:
        tool: str | None = None
        arguments: dict[str, Any] = {}
        for part in message.data_parts():
            candidate = part.data.get("tool")
            if isinstance(candidate, str) and candidate:
                args = part.data.get("arguments") or {}
                if not isinstance(args, dict):
                    raise ValueError("a tool call's arguments must be an object")
                tool, arguments = candidate, args
                break
        dumped = message.dump()
        secret = _sensitive_of(dumped)
        if secret:
            self._answers[dumped["messageId"]] = dumped
            while len(self._answers) > MAX_KEPT_ANSWERS:
                self._answers.popitem(last=False)
            dumped = _masked(dumped, secret)
        context: dict[str, Any] = {"contextId": ctx.context_id, "sender": ctx.sender, "message": dumped}
        remote = remote_state(ctx.metadata, self.name)
        if remote:
            context["remote"] = remote
        return Plan(
            action=Action(agent=self.name, tool=tool, arguments=arguments, text=message.text(), context=context)
        )

    async def execute(self, execution: Execution, ctx: TurnContext) -> Reply:
        action = execution.action
        message = action.context.get("message")
        remote = dict(action.context.get("remote") or remote_state(ctx.metadata, self.name))
        if not isinstance(message, Mapping):
            return _failed(f"{self.name}: no message to forward")
        if _sensitive_of(message):
            clear = self._answers.pop(str(message.get("messageId")), None)
            if clear is None:  # held, then the server restarted: the masked copy must not be forwarded
                return _failed(
                    f"{self.name}: the answer's sensitive values are not kept once the server stops; "
                    "send the request again"
                )
            message = clear
        deadline = time.monotonic() + self.timeout_s
        outgoing = self._outgoing(message, remote, execution)
        params = {"message": outgoing, "configuration": {"blocking": True}}
        try:
            result = await self._call("message/send", params, deadline)
            if isinstance(result, Mapping) and "status" in result:
                result = await self._settle(result, deadline)
            return self._relay(result, remote, ctx)
        except RemoteAgentError as exc:
            return _failed(str(exc), self._metadata(ctx, remote) if remote else None)

    def _outgoing(self, message: Mapping[str, Any], remote: dict[str, Any], execution: Execution) -> dict[str, Any]:
        out = {k: v for k, v in message.items() if k not in ("taskId", "contextId", "metadata")}
        out["kind"] = "message"
        out["role"] = "user"
        out.setdefault("messageId", new_id())
        if remote.get("taskId"):
            out["taskId"] = remote["taskId"]
        if remote.get("contextId"):
            out["contextId"] = remote["contextId"]
        metadata = {k: v for k, v in (message.get("metadata") or {}).items() if k != "agent"}
        shown = {k: v for k, v in execution.values.items() if k != "decision" and k not in execution.sensitive}
        if shown:
            metadata["airlock"] = {"approval": shown}
        if metadata:
            out["metadata"] = metadata
        return out

    async def _settle(self, task: Mapping[str, Any], deadline: float) -> Mapping[str, Any]:
        """A task still running downstream is polled with ``tasks/get`` until it settles or time runs out."""
        while _state_of(task) in RUNNING:
            await asyncio.sleep(max(0.0, min(POLL_INTERVAL_S, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                self.forward_cancel(str(task.get("id") or ""))
                raise RemoteAgentError(f"{self.name} did not finish within {self.timeout_s:g}s")
            task = await self._call("tasks/get", {"id": task.get("id")}, deadline)
            if not isinstance(task, Mapping):
                raise RemoteAgentError(f"{self.name} answered tasks/get without a task")
        return task

    def _relay(self, result: Any, remote: dict[str, Any], ctx: TurnContext) -> Reply:
        if not isinstance(result, Mapping):
            raise RemoteAgentError(f"{self.name} answered message/send without a task or a message")
        if result.get("kind") == "message" or ("parts" in result and "status" not in result):
            parts = self._parts(result.get("parts"))
            if result.get("contextId"):
                remote["contextId"] = result["contextId"]
            if result.get("taskId"):
                remote["taskId"] = result["taskId"]
            return Reply(state=TaskState.COMPLETED, parts=parts, metadata=self._metadata(ctx, remote))
        if not isinstance(result.get("id"), str) or not isinstance(result.get("status"), Mapping):
            raise RemoteAgentError(f"{self.name} answered message/send with a malformed task")
        state = _state_of(result)
        remote["taskId"] = result["id"]
        if isinstance(result.get("contextId"), str):
            remote["contextId"] = result["contextId"]
        status_message = result["status"].get("message")
        parts = self._parts(status_message.get("parts")) if isinstance(status_message, Mapping) else []
        seen = [str(i) for i in remote.get("artifactIds") or []]
        artifacts = [a for a in self._artifacts(result.get("artifacts")) if a["artifactId"] not in seen]
        if artifacts:
            remote["artifactIds"] = seen + [a["artifactId"] for a in artifacts]
        metadata = self._metadata(ctx, remote)
        if state not in RELAYED:
            return _failed(f"{self.name} left its task in state {state or 'unknown'!s}", metadata)
        if not parts and state in (TaskState.FAILED, TaskState.REJECTED, TaskState.CANCELED):
            parts = [{"kind": "text", "text": f"{self.name} reported its task {state}."}]
        return Reply(state=state, parts=parts, artifacts=artifacts, metadata=metadata)

    def _parts(self, raw: Any) -> list[dict[str, Any]]:
        if raw is None:
            return []
        try:
            return [p.dump() for p in _PARTS.validate_python(raw)]
        except ValidationError:
            raise RemoteAgentError(f"{self.name} answered with malformed message parts") from None

    def _artifacts(self, raw: Any) -> list[dict[str, Any]]:
        if not raw:
            return []
        try:
            return [a.dump() for a in _ARTIFACTS.validate_python(raw)]
        except ValidationError:
            raise RemoteAgentError(f"{self.name} answered with malformed artifacts") from None

    def _metadata(self, ctx: TurnContext, remote: dict[str, Any]) -> dict[str, Any]:
        """``airlock.remote`` set, the rest of the task's ``airlock`` entry kept."""
        current = ctx.metadata.get("airlock")
        airlock = dict(current) if isinstance(current, Mapping) else {}
        airlock["remote"] = {**remote, "agent": self.name}
        return {"airlock": airlock}

    # ------------------------------------------------------------ cancel

    async def cancel(self, ctx: TurnContext) -> None:
        task_id = remote_state(ctx.metadata, self.name).get("taskId")
        if task_id:
            self.forward_cancel(str(task_id))

    def forward_cancel(self, task_id: str) -> None:
        """Ask the downstream agent to cancel its task, in the background (best effort)."""
        if not task_id:
            return

        async def run() -> None:
            try:
                await self._call(
                    "tasks/cancel", {"id": task_id}, time.monotonic() + min(self.timeout_s, CANCEL_TIMEOUT_S)
                )
            except RemoteAgentError as exc:
                log.info("could not cancel task %s at %s: %s", task_id, self.name, exc)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------ JSON-RPC

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _call(self, method: str, params: dict[str, Any], deadline: float) -> Any:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RemoteAgentError(f"{self.name} did not answer within {self.timeout_s:g}s")
        body = {"jsonrpc": "2.0", "id": new_id(), "method": method, "params": params}
        self._inflight += 1
        try:
            async with self._client().post(
                self.endpoint,
                data=orjson.dumps(body),
                headers={"Content-Type": "application/json", "A2A-Version": PROTOCOL},
                timeout=aiohttp.ClientTimeout(total=remaining),
            ) as resp:
                status, raw = resp.status, await resp.read()
        except TimeoutError:
            raise RemoteAgentError(f"{self.name} did not answer within {self.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            shown = without_credentials(self.endpoint)
            reason = (str(exc) or type(exc).__name__).replace(self.endpoint, shown)
            raise RemoteAgentError(f"{self.name} is unreachable at {shown}: {reason}") from None
        finally:
            self._inflight -= 1
            if self._retired and not self._inflight:
                await self._close()
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise RemoteAgentError(f"{self.name} answered {method} with HTTP {status} and no valid JSON") from None
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            raise RemoteAgentError(f"{self.name} answered {method} with HTTP {status} and no JSON-RPC response")
        if answer.get("error") is not None:
            err = answer["error"]
            if isinstance(err, Mapping):
                raise RemoteAgentError(
                    f"{self.name} answered {method} with error {err.get('code')}: {err.get('message')}"
                )
            raise RemoteAgentError(f"{self.name} answered {method} with error {err!r}")
        return answer["result"]


def _sensitive_of(message: Mapping[str, Any]) -> list[str]:
    """The sensitive field ids of a message that answers a form (named in its ``airlock`` metadata)."""
    metadata = message.get("metadata")
    airlock = metadata.get("airlock") if isinstance(metadata, Mapping) else None
    sensitive = airlock.get("sensitive") if isinstance(airlock, Mapping) and airlock.get("inputRequest") else None
    return [str(f) for f in sensitive] if isinstance(sensitive, list) else []


def _masked(message: dict[str, Any], secret: list[str]) -> dict[str, Any]:
    """A copy of an answer with its sensitive values masked."""
    parts = []
    for part in message.get("parts") or []:
        if isinstance(part, Mapping) and part.get("kind") == "data" and isinstance(part.get("data"), Mapping):
            part = {**part, "data": {k: MASK if k in secret else v for k, v in part["data"].items()}}
        parts.append(part)
    return {**message, "parts": parts}


def _state_of(task: Mapping[str, Any]) -> TaskState | None:
    status = task.get("status")
    state = status.get("state") if isinstance(status, Mapping) else None
    try:
        return TaskState(state)
    except ValueError:
        return None


def without_credentials(url: str) -> str:
    """``url`` as it may appear in a task's status or a log: an endpoint's ``user:password@`` left out."""
    try:
        return str(URL(url).with_user(None))
    except ValueError:
        return "<invalid url>"
