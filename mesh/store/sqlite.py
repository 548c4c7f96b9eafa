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

from .base import OutboxRecord, Tx, loads
from .rows import SqlTx
from .schema import MIGRATIONS, SCHEMA_VERSION
from .sql import SqlStore

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


class SQLiteStore(SqlStore):
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

    async def claim_outbox(
        self, now: float, limit: int = 50, lease_s: float = 30.0, kinds: tuple[str, ...] = ()
    ) -> list[OutboxRecord]:
        async with self.transaction() as tx:
            assert isinstance(tx, SQLiteTx)
            only = f" AND kind IN ({','.join('?' for _ in kinds)})" if kinds else ""
            cur = await tx._conn.execute(
                "SELECT id, kind, payload, attempts FROM outbox WHERE delivered_at IS NULL "
                f"AND next_attempt_at <= ?{only} ORDER BY id LIMIT ?",
                (now, *kinds, limit),
            )
            rows = list(await cur.fetchall())
            for row in rows:
                await tx.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", (now + lease_s, row[0]))
        return [OutboxRecord(id=r[0], kind=r[1], payload=loads(r[2]), attempts=r[3]) for r in rows]
