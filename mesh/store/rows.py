"""SQL shared by the engines: the unit-of-work statements and row → record conversion.

Statements use ``?`` placeholders; an engine whose driver wants another style rewrites them in its own
``execute``. Rows are read by column name (sqlite3.Row and asyncpg.Record both allow it).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from .base import (
    PENDING,
    AgentRecord,
    ApprovalRecord,
    AuditRecord,
    ChannelRecord,
    EventRecord,
    PushConfigRecord,
    RunGrant,
    TaskRecord,
    Tx,
    audit_hash,
    dumps,
    loads,
)

GENESIS = "0" * 64
TENANT_CHANNELS = "SELECT * FROM channels WHERE tenant = ? ORDER BY name"
AUDIT_HEAD = "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1"
AUDIT_INSERT = (
    "INSERT INTO audit (at, tenant, kind, actor, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def audit_row(
    head: Any, now: float, tenant: str, kind: str, actor: str, subject: str, detail: dict[str, Any]
) -> tuple[Any, ...]:
    """The values of :data:`AUDIT_INSERT` for an entry after ``head`` (the row :data:`AUDIT_HEAD` read)."""
    prev = head[0] if head else GENESIS
    digest = audit_hash(prev, now, tenant, kind, actor, subject, detail)
    return (now, tenant, kind, actor, subject, dumps(detail), prev, digest)


def task_from_row(row: Any) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        tenant=row["tenant"],
        context_id=row["context_id"],
        state=row["state"],
        owner=row["owner"],
        owner_roles=loads(row["owner_roles"]),
        agent=row["agent"],
        status=loads(row["status"]),
        artifacts=loads(row["artifacts"]),
        metadata=loads(row["metadata"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def approval_from_row(row: Any) -> ApprovalRecord:
    return ApprovalRecord(
        id=row["id"],
        task_id=row["task_id"],
        tenant=row["tenant"],
        kind=row["kind"],
        status=row["status"],
        policy=row["policy"],
        tool=row["tool"],
        action=loads(row["action"]),
        form=loads(row["form"]),
        requested_by=row["requested_by"],
        requester_roles=loads(row["requester_roles"]),
        session_id=row["session_id"],
        user_input=row["user_input"],
        channels=loads(row["channels"]),
        token_hash=row["token_hash"],
        fingerprint=row["fingerprint"],
        run_id=row["run_id"],
        second_pair=bool(row["second_pair"]),
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
        surface=row["surface"],
        values=loads(row["resolution"]),
        reason=row["reason"],
    )


def channel_from_row(row: Any) -> ChannelRecord:
    return ChannelRecord(
        tenant=row["tenant"],
        name=row["name"],
        type=row["type"],
        config=loads(row["config"]),
        created_at=row["created_at"],
    )


def push_config_from_row(row: Any) -> PushConfigRecord:
    return PushConfigRecord(
        id=row["id"],
        task_id=row["task_id"],
        tenant=row["tenant"],
        url=row["url"],
        token=row["token"],
        authentication=loads(row["authentication"]),
        created_at=row["created_at"],
    )


def agent_from_row(row: Any) -> AgentRecord:
    return AgentRecord(name=row["name"], url=row["url"], card=loads(row["card"]), created_at=row["created_at"])


def event_from_row(row: Any) -> EventRecord:
    return EventRecord(
        seq=row["seq"],
        at=row["at"],
        tenant=row["tenant"],
        kind=row["kind"],
        subject=row["subject"],
        data=loads(row["data"]),
    )


def grant_from_row(row: Any) -> RunGrant:
    return RunGrant(
        tenant=row["tenant"],
        caller=row["caller"],
        agent=row["agent"],
        run_id=row["run_id"],
        granted_by=row["granted_by"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
    )


def audit_from_row(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=row["seq"],
        at=row["at"],
        tenant=row["tenant"],
        kind=row["kind"],
        actor=row["actor"],
        subject=row["subject"],
        detail=loads(row["detail"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


TASK_COLUMNS = (
    "id, tenant, context_id, state, owner, owner_roles, agent, status, artifacts, metadata, created_at, updated_at"
)
APPROVAL_COLUMNS = (
    "id, task_id, tenant, kind, status, policy, tool, action, form, requested_by, requester_roles, "
    "session_id, user_input, channels, token_hash, fingerprint, run_id, second_pair, expires_at, "
    "created_at, updated_at"
)


def _insert(table: str, columns: str) -> str:
    """The INSERT of a whole row, built once at import rather than on every write."""
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' for _ in columns.split(','))})"


TASK_INSERT = _insert("tasks", TASK_COLUMNS)
APPROVAL_INSERT = _insert("approvals", APPROVAL_COLUMNS)


class SqlTx(Tx):
    """The unit of work in SQL; an engine supplies ``execute`` and ``fetchone``."""

    @abstractmethod
    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    @abstractmethod
    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> Any: ...

    @abstractmethod
    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[Any]: ...

    async def defer(self, sql: str, args: Sequence[Any] = ()) -> None:
        """A statement whose result nobody reads: an engine may send it with the next one that needs an
        answer (or at the end of the unit) rather than on its own. Order is kept."""
        await self.execute(sql, args)

    async def insert_task(self, task: TaskRecord, history: Sequence[dict[str, Any]] = ()) -> None:
        await self.defer(
            TASK_INSERT,
            (
                task.id,
                task.tenant,
                task.context_id,
                task.state,
                task.owner,
                dumps(task.owner_roles),
                task.agent,
                dumps(task.status),
                dumps(task.artifacts),
                dumps(task.metadata),
                task.created_at,
                task.updated_at,
            ),
        )
        if history:  # one statement, its numbers known: no MAX(seq) to read, no lock to take
            await self.defer(
                "INSERT INTO history (task_id, seq, message) VALUES " + ", ".join("(?, ?, ?)" for _ in history),
                [v for seq, message in enumerate(history, 1) for v in (task.id, seq, dumps(message))],
            )

    async def update_task(self, task: TaskRecord, *, expect_state: str | None = None) -> bool:
        sql = (
            "UPDATE tasks SET state = ?, agent = ?, status = ?, artifacts = ?, metadata = ?, updated_at = ? "
            "WHERE id = ?"
        )
        args: list[Any] = [
            task.state,
            task.agent,
            dumps(task.status),
            dumps(task.artifacts),
            dumps(task.metadata),
            task.updated_at,
            task.id,
        ]
        if expect_state is None:
            await self.defer(sql, args)  # the task exists (it was read or written in this unit)
            return True
        sql += " AND state = ?"
        args.append(expect_state)
        return await self.execute(sql, args) == 1

    async def append_history(self, task_id: str, messages: list[dict[str, Any]]) -> None:
        for message in messages:  # the next seq is computed by the statement itself: no read first
            await self.defer(
                "INSERT INTO history (task_id, seq, message) "
                "SELECT ?, COALESCE(MAX(seq), 0) + 1, ? FROM history WHERE task_id = ?",
                (task_id, dumps(message), task_id),
            )

    async def insert_approval(self, approval: ApprovalRecord) -> None:
        a = approval
        await self.defer(
            APPROVAL_INSERT,
            (
                a.id,
                a.task_id,
                a.tenant,
                a.kind,
                a.status,
                a.policy,
                a.tool,
                dumps(a.action),
                dumps(a.form),
                a.requested_by,
                dumps(a.requester_roles),
                a.session_id,
                a.user_input,
                dumps(a.channels),
                a.token_hash,
                a.fingerprint,
                a.run_id,
                int(a.second_pair),
                a.expires_at,
                a.created_at,
                a.updated_at,
            ),
        )

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
    ) -> bool:
        sql = (
            "UPDATE approvals SET status = ?, resolved_at = ?, resolved_by = ?, surface = ?, resolution = ?, "
            "reason = ?, updated_at = ? WHERE id = ? AND status = ?"
        )
        args: list[Any] = [
            status,
            now,
            resolved_by,
            surface,
            None if values is None else dumps(values),
            reason,
            now,
            approval_id,
            PENDING,
        ]
        if require_unexpired:
            sql += " AND expires_at > ?"
            args.append(now)
        return await self.execute(sql, args) == 1

    async def channels(self, tenant: str) -> list[ChannelRecord]:
        rows = await self.fetchall(TENANT_CHANNELS, (tenant,))
        return [channel_from_row(r) for r in rows]

    async def enqueue(self, kind: str, payload: dict[str, Any], *, not_before: float = 0.0) -> None:
        await self.defer(
            "INSERT INTO outbox (kind, payload, attempts, next_attempt_at, created_at) VALUES (?, ?, 0, ?, ?)",
            (kind, dumps(payload), not_before, not_before),
        )

    async def audit(
        self, *, tenant: str, kind: str, actor: str, subject: str, detail: dict[str, Any], now: float
    ) -> None:
        """The entry extends the chain's head as read in this transaction; an engine whose writers can run
        side by side serialises this first (PostgreSQL takes an advisory lock)."""
        head = await self.fetchone(AUDIT_HEAD)
        await self.defer(AUDIT_INSERT, audit_row(head, now, tenant, kind, actor, subject, detail))

    async def _insert_new(self, insert: str, args: Sequence[Any]) -> bool:
        """Insert unless the key exists, in one statement: two concurrent creates of one name get one True
        and one False on either engine (a read-then-insert lets both pass the read on PostgreSQL)."""
        return await self.execute(f"{insert} ON CONFLICT DO NOTHING", args) == 1

    async def put_policy(self, tenant: str, name: str, body: dict[str, Any], now: float, *, create: bool) -> bool:
        if create:
            return await self._insert_new(
                "INSERT INTO policies (tenant, name, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (tenant, name, dumps(body), now, now),
            )
        changed = await self.execute(
            "UPDATE policies SET body = ?, updated_at = ? WHERE tenant = ? AND name = ?",
            (dumps(body), now, tenant, name),
        )
        return changed == 1

    async def delete_policy(self, tenant: str, name: str) -> bool:
        return await self.execute("DELETE FROM policies WHERE tenant = ? AND name = ?", (tenant, name)) == 1

    async def put_channel(self, channel: ChannelRecord) -> bool:
        return await self._insert_new(
            "INSERT INTO channels (tenant, name, type, config, created_at) VALUES (?, ?, ?, ?, ?)",
            (channel.tenant, channel.name, channel.type, dumps(channel.config), channel.created_at),
        )

    async def delete_channel(self, tenant: str, name: str) -> bool:
        return await self.execute("DELETE FROM channels WHERE tenant = ? AND name = ?", (tenant, name)) == 1

    async def put_push_config(self, config: PushConfigRecord) -> None:
        await self.execute("DELETE FROM push_configs WHERE task_id = ? AND id = ?", (config.task_id, config.id))
        await self.execute(
            "INSERT INTO push_configs (id, task_id, tenant, url, token, authentication, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                config.id,
                config.task_id,
                config.tenant,
                config.url,
                config.token,
                None if config.authentication is None else dumps(config.authentication),
                config.created_at,
            ),
        )

    async def delete_push_config(self, task_id: str, config_id: str) -> bool:
        return await self.execute("DELETE FROM push_configs WHERE task_id = ? AND id = ?", (task_id, config_id)) == 1

    async def put_agent(self, agent: AgentRecord) -> bool:
        return await self._insert_new(
            "INSERT INTO agents (name, url, card, created_at) VALUES (?, ?, ?, ?)",
            (agent.name, agent.url, dumps(agent.card), agent.created_at),
        )

    async def delete_agent(self, name: str) -> bool:
        return await self.execute("DELETE FROM agents WHERE name = ?", (name,)) == 1

    async def log_event(self, *, tenant: str, kind: str, subject: str, data: dict[str, Any], now: float) -> None:
        await self.defer(
            "INSERT INTO events (at, tenant, kind, subject, data) VALUES (?, ?, ?, ?, ?)",
            (now, tenant, kind, subject, dumps(data)),
        )

    async def put_run_grant(self, grant: RunGrant) -> None:
        await self.execute(
            "DELETE FROM run_grants WHERE tenant = ? AND caller = ? AND agent = ? AND run_id = ?",
            (grant.tenant, grant.caller, grant.agent, grant.run_id),
        )
        await self.execute(
            "INSERT INTO run_grants (tenant, caller, agent, run_id, granted_by, expires_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                grant.tenant,
                grant.caller,
                grant.agent,
                grant.run_id,
                grant.granted_by,
                grant.expires_at,
                grant.created_at,
            ),
        )
