"""SQLite engine (aiosqlite, WAL).

Two connections: one writer, used only inside transactions (``BEGIN IMMEDIATE`` takes SQLite's write
lock, so other processes on the same file queue behind it), and one reader that sees only committed
data. An asyncio lock keeps two coroutines from interleaving statements on the single writer connection;
it serialises use of the connection and decides nothing — the conditional UPDATE does, also across
processes sharing the file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from .base import (
    PENDING,
    ApprovalRecord,
    AuditRecord,
    ChannelRecord,
    OutboxRecord,
    Store,
    TaskRecord,
    Tx,
    loads,
)
from .rows import SqlTx, approval_from_row, audit_from_row, channel_from_row, task_from_row
from .schema import MIGRATIONS, SCHEMA_VERSION

PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=10000")


class SQLiteTx(SqlTx):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        cur = await self._conn.execute(sql, args)
        return cur.rowcount

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> Any:
        cur = await self._conn.execute(sql, args)
        return await cur.fetchone()


class SQLiteStore(Store):
    engine = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        await self._migrate(self._writer)
        self._reader = await self._connect()

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            cur = await conn.execute("SELECT MAX(version) FROM schema_version")
            row = await cur.fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise RuntimeError(f"database schema v{current} is newer than this Airlock (v{SCHEMA_VERSION})")
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version - 1]:
                    await conn.execute(statement.replace("{autoincrement}", "AUTOINCREMENT"))
                await conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            await conn.execute("COMMIT")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        conn = self._writer
        assert conn is not None, "store is not open"
        async with self._write_lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield SQLiteTx(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        assert self._reader is not None, "store is not open"
        cur = await self._reader.execute(sql, args)
        return list(await cur.fetchall())

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        rows = await self._all(sql, args)
        return rows[0] if rows else None

    async def get_task(self, tenant: str, task_id: str) -> TaskRecord | None:
        row = await self._one("SELECT * FROM tasks WHERE id = ? AND tenant = ?", (task_id, tenant))
        return task_from_row(row) if row else None

    async def get_history(self, task_id: str, last: int | None = None) -> list[dict[str, Any]]:
        if last is None:
            rows = await self._all("SELECT message FROM history WHERE task_id = ? ORDER BY seq", (task_id,))
        else:
            rows = await self._all(
                "SELECT message FROM (SELECT seq, message FROM history WHERE task_id = ? "
                "ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (task_id, last),
            )
        return [loads(r[0]) for r in rows]

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        row = await self._one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return approval_from_row(row) if row else None

    async def latest_approval(self, task_id: str) -> ApprovalRecord | None:
        row = await self._one("SELECT * FROM approvals WHERE task_id = ? ORDER BY created_at DESC LIMIT 1", (task_id,))
        return approval_from_row(row) if row else None

    async def list_pending(
        self, tenant: str, *, session_id: str | None, now: float, limit: int, offset: int
    ) -> tuple[list[ApprovalRecord], int]:
        where = "tenant = ? AND status = ? AND expires_at > ?"
        args: list[Any] = [tenant, PENDING, now]
        if session_id is not None:
            where += " AND session_id = ?"
            args.append(session_id)
        total = (await self._one(f"SELECT COUNT(*) FROM approvals WHERE {where}", args))[0]
        rows = await self._all(
            f"SELECT * FROM approvals WHERE {where} ORDER BY created_at, id LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [approval_from_row(r) for r in rows], total

    async def due_expiries(self, now: float, limit: int = 500) -> list[ApprovalRecord]:
        rows = await self._all(
            "SELECT * FROM approvals WHERE status = ? AND expires_at <= ? ORDER BY expires_at LIMIT ?",
            (PENDING, now, limit),
        )
        return [approval_from_row(r) for r in rows]

    async def list_policies(self, tenant: str) -> list[dict[str, Any]]:
        rows = await self._all("SELECT body FROM policies WHERE tenant = ? ORDER BY name", (tenant,))
        return [loads(r[0]) for r in rows]

    async def get_policy(self, tenant: str, name: str) -> dict[str, Any] | None:
        row = await self._one("SELECT body FROM policies WHERE tenant = ? AND name = ?", (tenant, name))
        return loads(row[0]) if row else None

    async def list_channels(self, tenant: str) -> list[ChannelRecord]:
        rows = await self._all("SELECT * FROM channels WHERE tenant = ? ORDER BY name", (tenant,))
        return [channel_from_row(r) for r in rows]

    async def get_channel(self, tenant: str, name: str) -> ChannelRecord | None:
        row = await self._one("SELECT * FROM channels WHERE tenant = ? AND name = ?", (tenant, name))
        return channel_from_row(row) if row else None

    async def claim_outbox(self, now: float, limit: int = 50, lease_s: float = 30.0) -> list[OutboxRecord]:
        async with self.transaction() as tx:
            assert isinstance(tx, SQLiteTx)
            cur = await tx._conn.execute(
                "SELECT id, kind, payload, attempts FROM outbox WHERE delivered_at IS NULL "
                "AND next_attempt_at <= ? ORDER BY id LIMIT ?",
                (now, limit),
            )
            rows = list(await cur.fetchall())
            for row in rows:
                await tx.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", (now + lease_s, row[0]))
        return [OutboxRecord(id=r[0], kind=r[1], payload=loads(r[2]), attempts=r[3]) for r in rows]

    async def finish_outbox(
        self, row_id: int, *, ok: bool, now: float, error: str | None = None, retry_at: float | None = None
    ) -> None:
        async with self.transaction() as tx:
            if ok:
                await tx.execute(  # type: ignore[attr-defined]
                    "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
                    (now, row_id),
                )
            else:
                await tx.execute(  # type: ignore[attr-defined]
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
                    (error, retry_at if retry_at is not None else now + 60, row_id),
                )

    async def audit_entries(self, *, after: int = 0, limit: int = 100) -> list[AuditRecord]:
        rows = await self._all("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        return [audit_from_row(r) for r in rows]
