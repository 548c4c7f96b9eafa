"""The store interface: records, a unit of work, and the reads the surfaces need.

Every engine implements the same two classes. State changes happen only inside a :class:`Tx` so that a
task's new state, its approval, its audit entry and its outbox rows commit together or not at all; the
answer to a request is sent only after the commit returns, so what was answered is on disk.

First-writer-wins is :meth:`Tx.decide_approval`: a single conditional ``UPDATE … WHERE status='pending'``
whose row count says whether this caller won. No engine takes a Python-side lock to decide it.
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

PENDING = "pending"

# Field metadata read by the SQL engines' row converters (``mesh.store.rows.from_row``). JSON is marked on the
# field rather than derived from its annotation: a type says what the value is in memory, not how its column
# keeps it, and the annotations here are strings (``from __future__ import annotations``) that would have to be
# resolved to tell.
JSON = {"json": True}  # the column holds the value as JSON text
NOT_STORED = {"column": False}  # no column: the field lives in memory only and a row leaves it at its default


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(value: str | bytes | None) -> Any:
    return None if value is None else orjson.loads(value)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class TaskRecord:
    """A task as stored: the wire fields (status, artifacts, metadata) kept as JSON-ready dicts."""

    id: str
    tenant: str
    context_id: str
    state: str
    owner: str
    owner_roles: list[str] = field(metadata=JSON)
    agent: str | None
    status: dict[str, Any] = field(metadata=JSON)
    artifacts: list[dict[str, Any]] = field(default_factory=list, metadata=JSON)
    metadata: dict[str, Any] = field(default_factory=dict, metadata=JSON)
    created_at: float = 0.0
    updated_at: float = 0.0
    # set on a task this request creates with no push config, so the write that creates it skips the lookup
    # (nothing else can name a task before it exists)
    no_push_configs: bool = field(default=False, compare=False, repr=False, metadata=NOT_STORED)
    # a write of this task queued push rows, so the event published after its commit wakes the push worker
    # (a change of a task nobody follows wakes nothing)
    pushes_queued: bool = field(default=False, compare=False, repr=False, metadata=NOT_STORED)

    def to_wire(self, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        task: dict[str, Any] = {
            "kind": "task",
            "id": self.id,
            "contextId": self.context_id,
            "status": self.status,
        }
        if self.artifacts:
            task["artifacts"] = self.artifacts
        if self.metadata:
            task["metadata"] = self.metadata
        if history is not None:
            task["history"] = history
        return task


@dataclass(frozen=True, slots=True)
class OutboxAttempt:
    """How one delivery of an outbox row went."""

    row_id: int
    ok: bool
    now: float
    error: str | None = None
    retry_at: float | None = None  # when a failed row is due again (a minute from ``now`` when not given)
    dead: bool = False  # the row used up its attempts, or can never be sent: a dead letter until retried


@dataclass(slots=True)
class ApprovalRecord:
    """A pause waiting for a person: a policy hold (``kind='approval'``) or an agent's input request.

    Its row converter is written out (``rows.approval_from_row``), not generated: ``values`` is kept in the
    ``resolution`` column and ``second_pair`` as an integer, so no field is marked here."""

    id: str
    task_id: str
    tenant: str
    kind: str
    status: str
    policy: str | None
    tool: str | None
    action: dict[str, Any]
    form: dict[str, Any]
    requested_by: str
    requester_roles: list[str]
    session_id: str | None
    user_input: str
    channels: list[str]
    token_hash: str | None
    fingerprint: str | None
    expires_at: float
    created_at: float
    updated_at: float
    run_id: str | None = None
    second_pair: bool = False
    resolved_at: float | None = None
    resolved_by: str | None = None
    surface: str | None = None
    values: dict[str, Any] | None = None
    reason: str | None = None
    approvals_required: int = 1
    approvals: list[dict[str, Any]] = field(default_factory=list)  # {by, at, surface}, in the order given
    escalate_at: float | None = None
    escalate_to: list[str] = field(default_factory=list)
    escalated_at: float | None = None
    allow_edits: bool = False
    edited_action: dict[str, Any] | None = None  # the call as an approver changed it (``action`` is the original)

    @property
    def pending(self) -> bool:
        return self.status == PENDING

    def approved_by(self, subject: str) -> bool:
        return any(a.get("by") == subject for a in self.approvals)


@dataclass(frozen=True, slots=True)
class RunGroupRow:
    run_id: str
    count: int
    ids: list[str]


@dataclass(slots=True)
class ChannelRecord:
    """Where a tenant's notifications go. Secret config values are kept sealed (see ``mesh.credentials``);
    ``events`` None means every event."""

    tenant: str
    name: str
    type: str
    config: dict[str, Any] = field(metadata=JSON)
    created_at: float
    events: list[str] | None = field(default=None, metadata=JSON)

    def takes(self, event: str) -> bool:
        return self.events is None or event in self.events


@dataclass(slots=True)
class PushConfigRecord:
    """Where to POST a task's updates (A2A push notifications); ``token`` is the client's own, echoed back
    in ``X-A2A-Notification-Token`` so it can authenticate the calls."""

    id: str
    task_id: str
    tenant: str
    url: str
    token: str | None
    authentication: dict[str, Any] | None = field(metadata=JSON)
    created_at: float


@dataclass(slots=True)
class AgentRecord:
    """A downstream A2A agent the mesh routes to, with the card fetched when it was added."""

    name: str
    url: str
    card: dict[str, Any] = field(metadata=JSON)
    created_at: float


@dataclass(slots=True)
class EventRecord:
    """One entry of the durable event log (what ``Last-Event-ID`` resumes from)."""

    seq: int
    at: float
    tenant: str
    kind: str
    subject: str
    data: dict[str, Any] = field(metadata=JSON)


@dataclass(slots=True)
class RunGrant:
    """A bulk approval of a run: later calls of that run, tenant, caller (the principal whose held calls were
    approved) and agent pass until it expires."""

    tenant: str
    caller: str
    agent: str
    run_id: str
    granted_by: str
    expires_at: float
    created_at: float


@dataclass(slots=True)
class OutboxRecord:
    id: int
    kind: str
    payload: dict[str, Any] = field(metadata=JSON)
    attempts: int


@dataclass(slots=True)
class OutboxEntry:
    """An outbox row as an admin sees it: what it is for and how its delivery went (never its payload,
    which may name where it goes but holds no secret)."""

    id: int
    kind: str
    tenant: str | None
    attempts: int
    next_attempt_at: float
    delivered_at: float | None
    dead_at: float | None
    last_error: str | None
    created_at: float


@dataclass(slots=True)
class AuditRecord:
    seq: int
    at: float
    tenant: str
    kind: str
    actor: str
    subject: str
    detail: dict[str, Any] = field(metadata=JSON)
    prev_hash: str
    hash: str


@dataclass(slots=True)
class DecisionRecord:
    """A policy decision's action as kept for dry-runs: what was called (``action`` holds its arguments, text
    and context, sensitive values already masked) and what was decided. ``seq`` is the decision's audit entry
    (the store sets it when the entry is written)."""

    tenant: str
    at: float
    task_id: str
    agent: str | None
    tool: str | None
    action: dict[str, Any] = field(metadata=JSON)
    enforcement: str
    policy: str | None
    seq: int = 0


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A dashboard session: kept by the SHA-256 of its cookie's token (the token itself is never stored)."""

    token_hash: str
    tenant: str
    sub: str
    roles: tuple[str, ...]
    created_at: float
    expires_at: float


def audit_hash(prev_hash: str, at: float, tenant: str, kind: str, actor: str, subject: str, detail: Any) -> str:
    """Each audit entry commits to the one before it, so an edited row breaks the chain after it."""
    body = dumps([prev_hash, round(at, 6), tenant, kind, actor, subject, detail])
    return hashlib.sha256(body.encode()).hexdigest()


def audit_head_mac(key: bytes, seq: int, digest: str) -> str:
    """The signature of the audit trail's head (its last entry's seq and hash), kept beside the trail so a
    trail whose last entries were deleted no longer matches it; under a key the database does not hold."""
    return hmac.new(key, f"airlock audit head {seq} {digest}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The last entry written to the trail, as recorded in the same transaction as the entry itself."""

    seq: int
    hash: str
    mac: str


class Tx(ABC):
    """One unit of work. Leaving the ``async with`` block commits; an exception rolls back."""

    audit_key: bytes = b""  # signs the audit head (see :func:`audit_head_mac`); the store hands its own

    @abstractmethod
    async def insert_task(
        self, task: TaskRecord, history: Sequence[dict[str, Any]] = (), *, final: bool = False
    ) -> None:
        """Write a new task and its first messages (numbered from 1: nothing else can have named the task).

        ``final``: the task ended in this turn and takes no more messages, so its history may be kept in the
        task's own row, one write instead of two (:meth:`Store.get_history` reads either)."""

    @abstractmethod
    async def update_task(self, task: TaskRecord, *, expect_state: str | None = None) -> bool:
        """Write the task; with ``expect_state``, only if it is still in that state (True when written)."""

    @abstractmethod
    async def append_history(self, task_id: str, messages: list[dict[str, Any]]) -> None: ...

    @abstractmethod
    async def insert_approval(self, approval: ApprovalRecord) -> None: ...

    @abstractmethod
    async def decide_approval(
        self,
        approval_id: str,
        *,
        status: str,
        now: float,
        resolved_by: str,
        surface: str,
        values: dict[str, Any] | None,
        reason: str | None = None,
        require_unexpired: bool = True,
        approvals: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None,
        edited_action: dict[str, Any] | None = None,
    ) -> bool:
        """Move a pending approval to ``status``; True only for the one caller whose write landed.

        ``approvals`` (the list as read, the list to write) makes the write also a compare-and-set on the
        approvals given so far: a quorum's last approval lands only if nobody else's did in between."""

    @abstractmethod
    async def add_approval(
        self, approval_id: str, *, before: list[dict[str, Any]], after: list[dict[str, Any]], now: float
    ) -> bool:
        """Record one more approval of a hold that still needs more: a compare-and-set on the list as read
        (False if another approval, a decision or expiry came first; the caller reads again)."""

    @abstractmethod
    async def claim_escalation(self, approval_id: str, now: float) -> bool:
        """Mark a pending hold escalated; True for the one caller (of any replica) whose write landed."""

    @abstractmethod
    async def enqueue(self, kind: str, payload: dict[str, Any], *, not_before: float = 0.0) -> None: ...

    @abstractmethod
    async def channels(self, tenant: str) -> list[ChannelRecord]:
        """The tenant's channels, read inside this unit (on its own connection: taking a second one from a
        pool while this one is held could wait forever when every connection is held the same way)."""

    @abstractmethod
    async def push_config_ids(self, task_id: str, tenant: str, limit: int) -> list[str]:
        """The ids of the tenant's push configs of the task, oldest first (then by id), at most ``limit``; read
        on this unit's own connection, so it sees the unit's own writes and takes no second connection from a
        pool while this one is held (which could wait forever when every connection is held the same way)."""

    @abstractmethod
    async def audit(
        self,
        *,
        tenant: str,
        kind: str,
        actor: str,
        subject: str,
        detail: dict[str, Any],
        now: float,
        decision: DecisionRecord | None = None,
    ) -> None:
        """Append an entry to the trail. ``decision`` (a policy decision's action) is kept beside it, under
        the entry's seq, in the same statement batch: no round trip and no sync of its own."""

    @abstractmethod
    async def put_policy(self, tenant: str, name: str, body: dict[str, Any], now: float, *, create: bool) -> bool:
        """Insert (``create``: False when the name is taken) or replace (False when missing)."""

    @abstractmethod
    async def delete_policy(self, tenant: str, name: str) -> bool: ...

    @abstractmethod
    async def put_channel(self, channel: ChannelRecord) -> bool: ...

    @abstractmethod
    async def log_event(self, *, tenant: str, kind: str, subject: str, data: dict[str, Any], now: float) -> None:
        """Append to the durable event log, in the same transaction as the change it tells of."""

    @abstractmethod
    async def put_run_grant(self, grant: RunGrant) -> None:
        """Open (or extend) the grant for its tenant, agent and run."""

    @abstractmethod
    async def put_push_config(self, config: PushConfigRecord) -> None:
        """Insert or replace the config with this (task_id, id)."""

    @abstractmethod
    async def delete_push_config(self, task_id: str, config_id: str) -> bool: ...

    @abstractmethod
    async def put_agent(self, agent: AgentRecord) -> bool:
        """Insert; False when the name is taken."""

    @abstractmethod
    async def delete_agent(self, name: str) -> bool: ...

    @abstractmethod
    async def delete_channel(self, tenant: str, name: str) -> bool: ...

    @abstractmethod
    async def update_channel(self, channel: ChannelRecord) -> bool:
        """Replace the config and events of the tenant's channel of that name; False when there is none."""

    @abstractmethod
    async def put_channel_message(
        self, approval_id: str, tenant: str, channel: str, ref: dict[str, Any], now: float
    ) -> None:
        """Keep what a channel posted for an approval (the same approval and channel replaces)."""


class Store(ABC):
    """The durable state of one Airlock deployment."""

    engine: str
    audit_key: bytes = b""  # the key the audit head is signed with; the mesh sets it from its callback key

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def transaction(self, *, durable: bool = True) -> AbstractAsyncContextManager[Tx]:
        """One unit of work, answered once committed. A unit that is not ``durable`` may be answered before
        its commit reaches the disk: a later durable commit carries it there, a crashed process loses none
        of it, and only a power loss or an operating-system crash can roll it back. Written so: bookkeeping
        whose loss repeats work — an outbox lease or a delivery's outcome (a lost one means the delivery is
        made again, which at-least-once delivery allows) — and, when the operator turns ``sync_turns`` off,
        a turn that leaves nobody waiting."""

    # tasks
    @abstractmethod
    async def get_task(self, tenant: str, task_id: str) -> TaskRecord | None: ...

    @abstractmethod
    async def get_tasks(self, tenant: str, task_ids: list[str]) -> dict[str, TaskRecord]:
        """The tenant's tasks among ``task_ids``, by id, in one read (a page of approvals shows its tasks)."""

    @abstractmethod
    async def get_history(self, task_id: str, last: int | None = None) -> list[dict[str, Any]]: ...

    # approvals
    @abstractmethod
    async def get_approval(self, approval_id: str) -> ApprovalRecord | None: ...

    @abstractmethod
    async def latest_approval(self, task_id: str) -> ApprovalRecord | None: ...

    @abstractmethod
    async def list_pending(
        self,
        tenant: str,
        *,
        session_id: str | None,
        now: float,
        limit: int,
        offset: int,
        run_id: str | None = None,
        after: tuple[float, str] | None = None,
    ) -> tuple[list[ApprovalRecord], int]:
        """The tenant's pending approvals in (created_at, id) order, and how many match before paging.

        ``after`` is a keyset cursor: only rows past that (created_at, id), so pages taken one after another
        neither repeat nor skip a row when holds are added or resolved in between (an offset would)."""

    @abstractmethod
    async def pending_total(self, tenant: str, now: float) -> int:
        """How many of the tenant's approvals are pending and unexpired at ``now`` (what ``list_pending``
        counts unfiltered), without reading a page: a hold checks the queue's room with it."""

    @abstractmethod
    async def approved_unfinished(self, limit: int = 500) -> list[ApprovalRecord]:
        """Approvals that won their write but whose action never finished (the latest of a ``working`` task)."""

    @abstractmethod
    async def due_expiries(self, now: float, limit: int = 500) -> list[ApprovalRecord]: ...

    @abstractmethod
    async def due_escalations(self, now: float, limit: int = 500) -> list[ApprovalRecord]:
        """Pending holds whose escalation time has come and that were not escalated yet."""

    @abstractmethod
    async def list_tasks(
        self,
        tenant: str,
        *,
        context_id: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[TaskRecord], int]:
        """Tasks of a tenant, most recently updated first, with the total that match."""

    @abstractmethod
    async def list_push_configs(self, task_id: str) -> list[PushConfigRecord]: ...

    @abstractmethod
    async def events_after(self, tenant: str, after: int, limit: int = 500) -> list[EventRecord]: ...

    @abstractmethod
    async def active_grant(self, tenant: str, caller: str, agent: str, run_id: str, now: float) -> RunGrant | None: ...

    @abstractmethod
    async def run_groups(
        self, tenant: str, now: float, *, run_id: str | None = None, limit: int = 100, ids_limit: int = 1000
    ) -> list[RunGroupRow]:
        """Runs with two or more pending approvals, the run whose oldest hold is oldest first: at most
        ``limit`` runs, each with its count and at most ``ids_limit`` approval ids, oldest first."""

    @abstractmethod
    async def count_pending(self, now: float) -> int:
        """Approvals pending and unexpired at ``now``, across every tenant (the metrics gauge)."""

    @abstractmethod
    async def latest_event_seq(self, tenant: str) -> int:
        """The seq of the tenant's newest event, 0 when it has none: where a fresh event stream starts."""

    @abstractmethod
    async def list_agents(self, *, after: str | None = None, limit: int | None = None) -> list[AgentRecord]:
        """Downstream agents by name; ``after``/``limit`` read one page (names after ``after``), else all."""

    # policies and channels
    @abstractmethod
    async def list_policies(
        self, tenant: str, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's policies by name; ``after``/``limit`` read one page (names after ``after``), else all."""

    @abstractmethod
    async def get_policy(self, tenant: str, name: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def list_channels(
        self, tenant: str, *, after: str | None = None, limit: int | None = None
    ) -> list[ChannelRecord]:
        """The tenant's channels by name; ``after``/``limit`` read one page (names after ``after``), else all."""

    @abstractmethod
    async def get_channel(self, tenant: str, name: str) -> ChannelRecord | None: ...

    @abstractmethod
    async def channels_of_type(self, type: str) -> list[ChannelRecord]:
        """Every tenant's channels of one type (an inbound call names no tenant until it is verified)."""

    @abstractmethod
    async def get_channel_message(self, approval_id: str, channel: str) -> dict[str, Any] | None:
        """What :meth:`Tx.put_channel_message` kept, or None."""

    @abstractmethod
    async def approval_and_channel(
        self, approval_id: str, tenant: str, channel: str
    ) -> tuple[ApprovalRecord | None, ChannelRecord | None]:
        """What a notification is built from, in one read: the approval and the tenant's channel it goes to."""

    # outbox
    @abstractmethod
    async def claim_outbox(
        self, now: float, limit: int = 50, lease_s: float = 30.0, kinds: tuple[str, ...] = ()
    ) -> list[OutboxRecord]:
        """Rows due for delivery, leased so that a concurrent worker does not take them too (the lease is
        not ``durable``: should it be lost, the rows are due again at once)."""

    async def finish_outbox(
        self, row_id: int, *, ok: bool, now: float, error: str | None = None, retry_at: float | None = None
    ) -> None:
        await self.finish_outbox_many([OutboxAttempt(row_id, ok=ok, now=now, error=error, retry_at=retry_at)])

    @abstractmethod
    async def finish_outbox_many(self, attempts: Sequence[OutboxAttempt]) -> None:
        """Record how deliveries went, all in one transaction (not ``durable``): sent, or failed and due again
        at ``retry_at``, or dead."""

    @abstractmethod
    async def list_outbox(self, tenant: str, state: str, *, after: int = 0, limit: int = 100) -> list[OutboxEntry]:
        """The tenant's rows in ``state`` (``pending``: not yet delivered nor dead; ``dead``; ``delivered``),
        oldest first, after the row id ``after``."""

    @abstractmethod
    async def retry_outbox(self, tenant: str, row_id: int, now: float) -> bool:
        """Make the tenant's undelivered row due now, with its attempts counted afresh; False when there is no
        such row (or it was delivered)."""

    # dashboard sessions and single-use login links
    @abstractmethod
    async def create_session(self, session: SessionRecord, now: float) -> None:
        """Keep a new session (and drop the sessions that have expired by ``now``)."""

    @abstractmethod
    async def get_session(self, token_hash: str, now: float) -> SessionRecord | None:
        """The session kept under ``token_hash``, None when there is none or it expired by ``now``."""

    @abstractmethod
    async def delete_session(self, token_hash: str) -> bool: ...

    @abstractmethod
    async def use_login_link(self, link_id: str, now: float, expires_at: float) -> bool:
        """Record a login link's id as used: True for the one caller whose insert landed, False when it was
        used before (one conditional insert; ids past their ``expires_at`` are dropped, the link itself is
        refused by then)."""

    # decisions' actions (dry-runs)
    @abstractmethod
    async def recent_decisions(
        self, tenant: str, *, since: float | None = None, limit: int = 1000
    ) -> list[DecisionRecord]:
        """The tenant's last ``limit`` decisions (made at or after ``since`` when given), newest first."""

    @abstractmethod
    async def prune_decisions(self, before: float, *, batch: int = 5000) -> int:
        """Drop the decisions made before ``before`` (every tenant's), a batch per transaction so a long
        backlog never holds the write lock for long; how many went."""

    # audit
    @abstractmethod
    async def audit_entries(self, *, after: int = 0, limit: int = 100) -> list[AuditRecord]: ...

    @abstractmethod
    async def audit_head(self) -> AuditHead | None:
        """The trail's head as last written (None before the first entry)."""

    # replication: events published by one process reach the others that share this store
    async def listen(self, callback: Callable[[dict[str, Any]], None]) -> bool:
        """Call ``callback`` with every payload :meth:`notify` sends, from any process sharing this store;
        True once listening. False (the answer here) when the engine has no channel between processes: no
        other process can be told anything, so the caller links no replicas."""
        return False

    async def notify(self, payload: dict[str, Any]) -> None:
        """Send ``payload`` to every listener (see :meth:`listen`); nothing to send where no process can listen."""

    async def ping(self) -> bool:
        """True when the store answers (health checks)."""
        try:
            await self.get_task("", "")
        except Exception:
            return False
        return True

    async def iter_audit(self, batch: int = 500) -> AsyncIterator[AuditRecord]:
        after = 0
        while True:
            rows = await self.audit_entries(after=after, limit=batch)
            if not rows:
                return
            for row in rows:
                yield row
            after = rows[-1].seq
