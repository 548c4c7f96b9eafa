"""Reads shared by the SQL engines, written once with ``?`` placeholders.

An engine supplies ``_all`` (run a query, return rows addressable by column name) and its own
transaction; everything here is plain SQL both SQLite and PostgreSQL accept.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from .base import (
    PENDING,
    AgentRecord,
    ApprovalRecord,
    AuditHead,
    AuditRecord,
    ChannelRecord,
    DecisionRecord,
    EventRecord,
    OutboxAttempt,
    OutboxEntry,
    PushConfigRecord,
    RunGrant,
    RunGroupRow,
    SessionRecord,
    Store,
    TaskRecord,
    dumps,
    loads,
)
from .rows import (
    OUTBOX_STATES,
    TENANT_CHANNELS,
    SqlTx,
    agent_from_row,
    approval_from_row,
    audit_from_row,
    channel_from_row,
    decision_from_row,
    event_from_row,
    grant_from_row,
    outbox_entry_from_row,
    push_config_from_row,
    task_from_row,
)

PENDING_OF_TENANT = "tenant = ? AND status = ? AND expires_at > ?"
"""The approvals a tenant's queue holds: pending and unexpired (args: tenant, ``PENDING``, now)."""


class SqlStore(Store):
    @abstractmethod
    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]: ...

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        rows = await self._all(sql, args)
        return rows[0] if rows else None

    async def get_task(self, tenant: str, task_id: str) -> TaskRecord | None:
        row = await self._one("SELECT * FROM tasks WHERE id = ? AND tenant = ?", (task_id, tenant))
        return task_from_row(row) if row else None

    async def get_tasks(self, tenant: str, task_ids: list[str]) -> dict[str, TaskRecord]:
        if not task_ids:
            return {}
        # by primary key alone: with the tenant in the WHERE clause SQLite's planner walks the tenant's index,
        # every task the tenant has, to find a page's fifty
        marks = ", ".join("?" for _ in task_ids)
        rows = await self._all(f"SELECT * FROM tasks WHERE id IN ({marks})", task_ids)
        return {row["id"]: task_from_row(row) for row in rows if row["tenant"] == tenant}

    async def list_tasks(
        self,
        tenant: str,
        *,
        context_id: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[TaskRecord], int]:
        where, args = "tenant = ?", [tenant]
        if context_id is not None:
            where += " AND context_id = ?"
            args.append(context_id)
        if state is not None:
            where += " AND state = ?"
            args.append(state)
        total = (await self._one(f"SELECT COUNT(*) FROM tasks WHERE {where}", args))[0]
        rows = await self._all(
            f"SELECT * FROM tasks WHERE {where} ORDER BY updated_at DESC, id LIMIT ? OFFSET ?", [*args, limit, offset]
        )
        return [task_from_row(r) for r in rows], total

    async def list_push_configs(self, task_id: str) -> list[PushConfigRecord]:
        rows = await self._all("SELECT * FROM push_configs WHERE task_id = ? ORDER BY created_at, id", (task_id,))
        return [push_config_from_row(r) for r in rows]

    async def events_after(self, tenant: str, after: int, limit: int = 500) -> list[EventRecord]:
        rows = await self._all(
            "SELECT * FROM events WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?", (tenant, after, limit)
        )
        return [event_from_row(r) for r in rows]

    async def active_grant(self, tenant: str, caller: str, agent: str, run_id: str, now: float) -> RunGrant | None:
        row = await self._one(
            "SELECT * FROM run_grants WHERE tenant = ? AND caller = ? AND agent = ? AND run_id = ? AND expires_at > ?",
            (tenant, caller, agent, run_id, now),
        )
        return grant_from_row(row) if row else None

    async def run_groups(
        self, tenant: str, now: float, *, run_id: str | None = None, limit: int = 100, ids_limit: int = 1000
    ) -> list[RunGroupRow]:
        one = " AND run_id = ?" if run_id is not None else ""
        where = f"tenant = ? AND status = ? AND expires_at > ? AND run_id IS NOT NULL{one}"
        args: tuple[Any, ...] = (tenant, PENDING, now, *(() if run_id is None else (run_id,)))
        counted = await self._all(
            f"SELECT run_id, COUNT(*) AS n, MIN(created_at) AS first FROM approvals WHERE {where} "
            "GROUP BY run_id HAVING COUNT(*) >= 2 ORDER BY MIN(created_at), run_id LIMIT ?",
            (*args, limit),
        )
        groups = []
        for row in counted:
            ids = await self._all(
                "SELECT id FROM approvals WHERE tenant = ? AND status = ? AND expires_at > ? AND run_id = ? "
                "ORDER BY created_at, id LIMIT ?",
                (tenant, PENDING, now, row["run_id"], ids_limit),
            )
            groups.append(RunGroupRow(row["run_id"], int(row["n"]), [r[0] for r in ids]))
        return groups

    async def count_pending(self, now: float) -> int:
        row = await self._one("SELECT COUNT(*) FROM approvals WHERE status = ? AND expires_at > ?", (PENDING, now))
        return int(row[0])

    async def latest_event_seq(self, tenant: str) -> int:
        row = await self._one("SELECT COALESCE(MAX(seq), 0) FROM events WHERE tenant = ?", (tenant,))
        return int(row[0])

    async def list_agents(self, *, after: str | None = None, limit: int | None = None) -> list[AgentRecord]:
        where, tail, args = _page(after, limit)
        rows = await self._all(f"SELECT * FROM agents WHERE {where} ORDER BY name{tail}", args)
        return [agent_from_row(r) for r in rows]

    async def get_history(self, task_id: str, last: int | None = None) -> list[dict[str, Any]]:
        """The history kept in the task's row (a task that ended in its first turn), then its rows of
        ``history``, in one read: either may be empty, and messages are never in both."""
        rows_of = "SELECT seq, message FROM history WHERE task_id = ?"
        args: tuple[Any, ...] = (task_id, task_id)
        if last is not None:
            rows_of = f"SELECT seq, message FROM ({rows_of} ORDER BY seq DESC LIMIT ?) AS recent"
            args = (task_id, task_id, last)
        rows = await self._all(
            "SELECT 0 AS part, 0 AS seq, history AS message FROM tasks WHERE id = ? AND history IS NOT NULL "
            f"UNION ALL SELECT 1 AS part, seq, message FROM ({rows_of}) AS kept ORDER BY part, seq",
            args,
        )
        messages: list[dict[str, Any]] = []
        for row in rows:
            if row[0] == 0:
                messages.extend(loads(row[2]))
            else:
                messages.append(loads(row[2]))
        return messages if last is None else messages[-last:] if last > 0 else []

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        row = await self._one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return approval_from_row(row) if row else None

    async def latest_approval(self, task_id: str) -> ApprovalRecord | None:
        row = await self._one("SELECT * FROM approvals WHERE task_id = ? ORDER BY created_at DESC LIMIT 1", (task_id,))
        return approval_from_row(row) if row else None

    pending_source = "approvals"  # what a page of pending approvals is read from (an engine may name an index)

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
        where = PENDING_OF_TENANT
        args: list[Any] = [tenant, PENDING, now]
        if session_id is not None:
            where += " AND session_id = ?"
            args.append(session_id)
        if run_id is not None:
            where += " AND run_id = ?"
            args.append(run_id)
        page, page_args = where, list(args)
        if after is not None:
            # a row value: both engines walk the (tenant, status, created_at, id) index from that point on
            page += " AND (created_at, id) > (?, ?)"
            page_args += list(after)
        rows = await self._all(
            f"SELECT * FROM {self.pending_source} WHERE {page} ORDER BY created_at, id LIMIT ? OFFSET ?",
            [*page_args, limit, offset],
        )
        filtered = session_id is not None or run_id is not None
        total = await self._pending_total(tenant, now, where, args, filtered=filtered)
        return [approval_from_row(r) for r in rows], total

    async def pending_total(self, tenant: str, now: float) -> int:
        return await self._pending_total(tenant, now, PENDING_OF_TENANT, [tenant, PENDING, now], filtered=False)

    async def _pending_total(self, tenant: str, now: float, where: str, args: list[Any], *, filtered: bool) -> int:
        """How many approvals match ``where``; an engine that keeps a count may answer from it."""
        return int((await self._one(f"SELECT COUNT(*) FROM approvals WHERE {where}", args))[0])

    async def approved_unfinished(self, limit: int = 500) -> list[ApprovalRecord]:
        rows = await self._all(
            "SELECT a.* FROM approvals a JOIN tasks t ON t.id = a.task_id WHERE t.state = ? AND a.status = ? "
            "AND a.created_at = (SELECT MAX(created_at) FROM approvals b WHERE b.task_id = a.task_id) "
            "ORDER BY a.resolved_at LIMIT ?",
            ("working", "approved", limit),
        )
        return [approval_from_row(r) for r in rows]

    async def due_expiries(self, now: float, limit: int = 500) -> list[ApprovalRecord]:
        rows = await self._all(
            "SELECT * FROM approvals WHERE status = ? AND expires_at <= ? ORDER BY expires_at LIMIT ?",
            (PENDING, now, limit),
        )
        return [approval_from_row(r) for r in rows]

    async def due_escalations(self, now: float, limit: int = 500) -> list[ApprovalRecord]:
        rows = await self._all(
            "SELECT * FROM approvals WHERE status = ? AND escalate_at <= ? AND escalated_at IS NULL "
            "AND expires_at > ? ORDER BY escalate_at LIMIT ?",
            (PENDING, now, now, limit),
        )
        return [approval_from_row(r) for r in rows]

    async def list_policies(
        self, tenant: str, *, after: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        where, tail, args = _page(after, limit)
        rows = await self._all(
            f"SELECT body FROM policies WHERE tenant = ? AND {where} ORDER BY name{tail}", (tenant, *args)
        )
        return [loads(r[0]) for r in rows]

    async def get_policy(self, tenant: str, name: str) -> dict[str, Any] | None:
        row = await self._one("SELECT body FROM policies WHERE tenant = ? AND name = ?", (tenant, name))
        return loads(row[0]) if row else None

    async def list_channels(
        self, tenant: str, *, after: str | None = None, limit: int | None = None
    ) -> list[ChannelRecord]:
        if after is None and limit is None:
            rows = await self._all(TENANT_CHANNELS, (tenant,))
        else:
            where, tail, args = _page(after, limit)
            rows = await self._all(
                f"SELECT * FROM channels WHERE tenant = ? AND {where} ORDER BY name{tail}", (tenant, *args)
            )
        return [channel_from_row(r) for r in rows]

    async def get_channel(self, tenant: str, name: str) -> ChannelRecord | None:
        row = await self._one("SELECT * FROM channels WHERE tenant = ? AND name = ?", (tenant, name))
        return channel_from_row(row) if row else None

    async def channels_of_type(self, type: str) -> list[ChannelRecord]:
        rows = await self._all("SELECT * FROM channels WHERE type = ? ORDER BY tenant, name", (type,))
        return [channel_from_row(r) for r in rows]

    async def get_channel_message(self, approval_id: str, channel: str) -> dict[str, Any] | None:
        row = await self._one(
            "SELECT ref FROM channel_messages WHERE approval_id = ? AND channel = ?", (approval_id, channel)
        )
        return loads(row[0]) if row else None

    async def list_outbox(self, tenant: str, state: str, *, after: int = 0, limit: int = 100) -> list[OutboxEntry]:
        where = OUTBOX_STATES[state]
        rows = await self._all(
            "SELECT id, kind, tenant, attempts, next_attempt_at, delivered_at, dead_at, last_error, created_at "
            f"FROM outbox WHERE tenant = ? AND id > ? AND {where} ORDER BY id LIMIT ?",
            (tenant, after, limit),
        )
        return [outbox_entry_from_row(r) for r in rows]

    async def retry_outbox(self, tenant: str, row_id: int, now: float) -> bool:
        async with self.transaction() as tx:
            changed = await tx.execute(
                "UPDATE outbox SET attempts = 0, dead_at = NULL, last_error = NULL, next_attempt_at = ? "
                "WHERE id = ? AND tenant = ? AND delivered_at IS NULL",
                (now, row_id, tenant),
            )
        return changed == 1

    async def approval_and_channel(
        self, approval_id: str, tenant: str, channel: str
    ) -> tuple[ApprovalRecord | None, ChannelRecord | None]:
        row = await self._one(
            "SELECT a.*, c.type AS channel_type, c.config AS channel_config, c.created_at AS channel_created_at, "
            "c.events AS channel_events "
            "FROM approvals a LEFT JOIN channels c ON c.tenant = ? AND c.name = ? WHERE a.id = ?",
            (tenant, channel, approval_id),
        )
        if row is None:
            return None, await self.get_channel(tenant, channel)
        if row["channel_type"] is None:
            return approval_from_row(row), None
        joined = {
            "tenant": tenant,
            "name": channel,
            "type": row["channel_type"],
            "config": row["channel_config"],
            "created_at": row["channel_created_at"],
            "events": row["channel_events"],
        }
        return approval_from_row(row), channel_from_row(joined)

    async def create_session(self, session: SessionRecord, now: float) -> None:
        async with self.transaction() as tx:
            await tx.execute("DELETE FROM dashboard_sessions WHERE expires_at <= ?", (now,))
            await tx.execute(
                "INSERT INTO dashboard_sessions (token_hash, tenant, sub, roles, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    session.token_hash,
                    session.tenant,
                    session.sub,
                    dumps(list(session.roles)),
                    session.created_at,
                    session.expires_at,
                ),
            )

    async def get_session(self, token_hash: str, now: float) -> SessionRecord | None:
        row = await self._one(
            "SELECT * FROM dashboard_sessions WHERE token_hash = ? AND expires_at > ?", (token_hash, now)
        )
        if row is None:
            return None
        return SessionRecord(
            token_hash=row["token_hash"],
            tenant=row["tenant"],
            sub=row["sub"],
            roles=tuple(loads(row["roles"])),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )

    async def delete_session(self, token_hash: str) -> bool:
        async with self.transaction() as tx:
            return await tx.execute("DELETE FROM dashboard_sessions WHERE token_hash = ?", (token_hash,)) == 1

    async def use_login_link(self, link_id: str, now: float, expires_at: float) -> bool:
        async with self.transaction() as tx:
            await tx.execute("DELETE FROM login_links WHERE expires_at <= ?", (now,))
            inserted = await tx.execute(
                "INSERT INTO login_links (id, used_at, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (link_id, now, expires_at),
            )
        return inserted == 1

    async def recent_decisions(
        self, tenant: str, *, since: float | None = None, limit: int = 1000
    ) -> list[DecisionRecord]:
        # newest first along the (tenant, at, seq) index: a bounded walk from its end, whatever the table holds
        bound, args = ("", (tenant,)) if since is None else (" AND at >= ?", (tenant, since))
        rows = await self._all(
            f"SELECT * FROM decisions WHERE tenant = ?{bound} ORDER BY at DESC, seq DESC LIMIT ?", (*args, limit)
        )
        return [decision_from_row(r) for r in rows]

    async def prune_decisions(self, before: float, *, batch: int = 5000) -> int:
        pruned = 0
        while True:
            # the batch's own bound, read along the age index: at most about ``batch`` rows go per transaction
            edge = await self._one(
                "SELECT at FROM decisions WHERE at < ? ORDER BY at LIMIT 1 OFFSET ?", (before, batch - 1)
            )
            async with self.transaction(durable=False) as tx:
                if edge is None:
                    gone = await tx.execute("DELETE FROM decisions WHERE at < ?", (before,))
                else:
                    gone = await tx.execute("DELETE FROM decisions WHERE at <= ?", (edge[0],))
            pruned += gone
            if edge is None or gone == 0:
                return pruned

    async def audit_entries(self, *, after: int = 0, limit: int = 100) -> list[AuditRecord]:
        rows = await self._all("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        return [audit_from_row(r) for r in rows]

    async def audit_head(self) -> AuditHead | None:
        rows = await self._all("SELECT seq, hash, mac FROM audit_head WHERE id = 1")
        return AuditHead(int(rows[0]["seq"]), rows[0]["hash"], rows[0]["mac"]) if rows else None

    async def finish_outbox_many(self, attempts: Sequence[OutboxAttempt]) -> None:
        async with self.transaction(durable=False) as tx:
            assert isinstance(tx, SqlTx)
            for a in attempts:
                if a.ok:
                    await tx.defer(
                        "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
                        (a.now, a.row_id),
                    )
                else:
                    await tx.defer(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, dead_at = ? "
                        "WHERE id = ?",
                        (
                            a.error,
                            a.retry_at if a.retry_at is not None else a.now + 60,
                            a.now if a.dead else None,
                            a.row_id,
                        ),
                    )


def _page(after: str | None, limit: int | None) -> tuple[str, str, tuple[Any, ...]]:
    """The condition that starts a page of rows ordered by name after ``after``, the ``LIMIT`` that ends it,
    and their arguments. Names are unique in each listing, so ``name > after`` neither repeats nor skips a row
    between pages; the database compares as it orders, whatever its collation."""
    where, args = ("name > ?", (after,)) if after is not None else ("1 = 1", ())
    if limit is None:
        return where, "", args
    return where, " LIMIT ?", (*args, limit)
