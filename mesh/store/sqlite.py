"""SQLite engine (aiosqlite, WAL, ``synchronous=FULL``).

Two connections: one writer, used only inside transactions (``BEGIN IMMEDIATE`` takes SQLite's write
lock, so other processes on the same file queue behind it), and one reader that sees only committed
data. An asyncio lock keeps two coroutines from interleaving statements on the single writer connection;
it serialises use of the connection and decides nothing — the conditional UPDATE does, also across
processes sharing the file.

Group commit: units of work that arrive while another is running join one SQLite transaction, each in
a SAVEPOINT of its own (a failing unit rolls back only itself), and the last of them commits — one
commit and one fsync for the group. Every unit waits for that commit before it returns, so nothing is
answered before it is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from .base import OutboxRecord, Tx, loads
from .rows import SqlTx
from .schema import MIGRATIONS, SCHEMA_VERSION
from .sql import SqlStore

MAX_GROUP = 64  # units sharing one commit at most, so a steady stream still commits often
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

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        cur = await self._conn.execute(sql, args)
        return list(await cur.fetchall())


class _Group:
    """Units of work sharing one SQLite transaction; ``done`` resolves when it is committed."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.units = 0


class SQLiteStore(SqlStore):
    engine = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._waiting = 0  # units queued for the writer
        self._group: _Group | None = None  # the open transaction units are joining
        self._pending_commits: set[asyncio.Task[None]] = set()

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
        self._waiting += 1
        try:
            await self._write_lock.acquire()
        except BaseException:
            self._waiting -= 1
            self._commit_if_idle()
            raise
        self._waiting -= 1
        group: _Group | None = None
        ok = False
        try:
            if self._group is None:
                await conn.execute("BEGIN IMMEDIATE")
                self._group = _Group()
            group = self._group
            group.units += 1
            await conn.execute("SAVEPOINT unit")
            try:
                yield SQLiteTx(conn)
            except BaseException:
                await conn.execute("ROLLBACK TO unit")
                await conn.execute("RELEASE unit")
                raise
            await conn.execute("RELEASE unit")
            ok = True
        finally:
            try:
                if group is not None and (self._waiting == 0 or group.units >= MAX_GROUP):
                    await self._commit(conn, group)
            finally:
                self._write_lock.release()
        if ok and group is not None:
            await asyncio.shield(group.done)

    async def _commit(self, conn: aiosqlite.Connection, group: _Group) -> None:
        """Commit the open group (the writer lock is held); every unit in it learns the outcome."""
        self._group = None
        try:
            await conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            group.done.set_exception(exc)
            group.done.exception()  # retrieved here too, so an unobserved failure is not logged twice
            raise
        group.done.set_result(None)

    def _commit_if_idle(self) -> None:
        """A queued unit gave up before its turn: make sure an open group does not wait for it."""
        if self._group is not None and self._waiting == 0 and not self._write_lock.locked():
            task = asyncio.get_running_loop().create_task(self._commit_now())
            self._pending_commits.add(task)
            task.add_done_callback(self._pending_commits.discard)

    async def _commit_now(self) -> None:
        async with self._write_lock:
            if self._group is not None and self._writer is not None:
                await self._commit(self._writer, self._group)

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
