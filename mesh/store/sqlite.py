"""SQLite engine (WAL, ``synchronous=FULL``).

Two connections: one writer, used only inside transactions (``BEGIN IMMEDIATE`` takes SQLite's write
lock, so other processes on the same file queue behind it), and one reader (aiosqlite) that sees only
committed data.

The writer's statements run on the event loop's own thread: inside an open transaction an indexed insert
or update costs microseconds, far less than handing it to a thread and back (those hand-offs, each a
wait for the GIL, were most of a write's cost). What can wait — ``BEGIN IMMEDIATE`` behind another
process's write lock, and ``COMMIT`` with its fsync — runs on a thread of the writer's own, and while it
does, no statement runs on the loop: one thing at a time touches the connection, in order.

An asyncio lock keeps two units from interleaving on the writer; it serialises use of the connection and
decides nothing — the conditional UPDATE does, also across processes sharing the file.

Group commit: units that arrive while another is running join one SQLite transaction, each in a SAVEPOINT
of its own (a failing unit rolls back only itself), and the last of them commits — one commit and one
fsync for the group. Every unit waits for that commit before it returns, so nothing is answered before it
is on disk.

The writer runs with ``synchronous=NORMAL`` (in WAL mode a commit is written to the WAL, not synced) and
syncs the WAL itself after a group's commit when any unit in the group is ``durable`` — the one sync
``FULL`` would make. A group of bookkeeping alone (outbox leases, delivery outcomes) costs no sync, and the
next durable group's sync carries it to disk with its own (the WAL is one file, written in order). SQLite
still syncs the WAL before every checkpoint, as it does under ``FULL``.

That sync runs on a thread of its own, not the writer's: once a group's ``COMMIT`` has written its pages to
the WAL, the writer lock is released and the next group's statements run while the disk syncs the last
group's (its units are answered only when the sync is done). Syncs run one at a time in commit order, and a
sync of the WAL carries every commit written to it before, so a unit is never answered before its own
commit is on disk; without this, the writer sat idle through every fsync, and under load the allow path
spent half its time waiting for the disk with the CPU free.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .base import PENDING, DecisionRecord, OutboxRecord, Tx
from .groups import GroupCommits
from .rows import (
    AUDIT_HEAD,
    AUDIT_HEAD_PUT,
    AUDIT_INSERT,
    DECISION_INSERT,
    SqlTx,
    audit_entry,
    decision_args,
    head_row,
    outbox_from_row,
)
from .schema import MIGRATIONS, SCHEMA_VERSION
from .sql import SqlStore

MAX_GROUP = 64  # units sharing one commit at most, so a steady stream still commits often
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=10000")
WRITER_CACHE_KIB = 16 * 1024  # the writer's page cache: the indexes its inserts walk stay in memory
BUSY_TIMEOUT_S = 10.0  # how long a write waits for another process's write lock
FETCH = "fetch"  # an op whose rows are read
COUNT = "count"  # an op whose changed-row count is read
QUIET = "quiet"  # an op nobody reads

T = TypeVar("T")
Op = tuple[str, Sequence[Any], str] | Callable[[sqlite3.Connection], Any]


class _Unit:
    """Where one unit stands on the writer connection."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = False  # its SAVEPOINT is open


class _Writer:
    """The writer connection. Statements run on the loop's thread (``here``); what may block — taking the
    write lock, committing — goes to a thread of its own (``submit``). ``busy`` says such work is still
    under way, so that nothing else touches the connection until it is done."""

    def __init__(self, path: Path) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airlock-sqlite")
        # the WAL's syncs: one at a time, in commit order, beside the writer's thread (see the module's doc)
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="airlock-sqlite-sync")
        self.path = path
        self.conn: sqlite3.Connection | None = None
        self._last: asyncio.Future[Any] | None = None
        self._wal_fd: int | None = None

    def here(self) -> sqlite3.Connection:
        assert self.conn is not None, "store is not open"
        assert not self.busy, "the writer connection is in use on its thread"
        return self.conn

    @property
    def busy(self) -> bool:
        return self._last is not None and not self._last.done()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn`` on the writer's thread now (it runs even if nobody awaits it); FIFO."""

        def call() -> T:
            assert self.conn is not None, "store is not open"
            return fn(self.conn)

        fut = asyncio.wrap_future(self._pool.submit(call))
        self._last = fut
        return fut

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the thread's queued work is done (at once when there is none)."""
        if self._last is not None and not self._last.done():
            self._last.add_done_callback(lambda _: callback())
        else:
            callback()

    async def open(self) -> None:
        def connect(_: Any = None) -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            for pragma in PRAGMAS:
                conn.execute(pragma)
            conn.execute("PRAGMA busy_timeout=0")  # waiting for the write lock happens on the thread
            conn.execute("PRAGMA synchronous=NORMAL")  # a durable group's commit is synced by sync_wal
            conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")  # SQLite's default is 2 MiB
            # each unit's savepoint copies the pages it changes to a sub-journal: in memory, not a temp file
            conn.execute("PRAGMA temp_store=MEMORY")
            return conn

        self.conn = await asyncio.wrap_future(self._pool.submit(connect))

    def sync_wal(self) -> None:
        """On the writer's thread, after a commit: the WAL, and with it every commit before this one, on disk.
        The WAL lives as long as a connection to the file is open (the writer's is), so its descriptor is
        opened once, at the first sync, when the file surely exists."""
        if self._wal_fd is None:
            self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        os.fdatasync(self._wal_fd)

    def sync_later(self) -> concurrent.futures.Future[None]:
        """Queue a sync of the WAL behind those already queued: called on the writer's thread right after a
        commit, so the sync starts at once rather than after a pass through the event loop."""
        return self._syncer.submit(self.sync_wal)

    async def close(self) -> None:
        def close() -> None:
            self._syncer.shutdown(wait=True)  # every queued sync done before the WAL's descriptor goes
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None
            if self.conn is not None:
                self.conn.close()
                self.conn = None

        await asyncio.wrap_future(self._pool.submit(close))
        self._pool.shutdown(wait=False)


def _run_ops(conn: sqlite3.Connection, unit: _Unit, ops: list[Op]) -> list[Any]:
    """Open the unit's savepoint if need be (the group's transaction is open), then run ``ops``."""
    if not unit.open:
        conn.execute("SAVEPOINT unit")
        unit.open = True
    results: list[Any] = []
    for op in ops:
        if callable(op):
            results.append(op(conn))
            continue
        sql, args, want = op
        cur = conn.execute(sql, args)
        results.append(cur.fetchall() if want == FETCH else cur.rowcount)
    return results


def _begin_now(conn: sqlite3.Connection) -> bool:
    """Take the write lock if it is free (the writer's ``busy_timeout`` is 0): never waits."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
            raise
        return False
    return True


def _begin_patiently(conn: sqlite3.Connection) -> None:
    """On the writer's thread: wait, up to ``BUSY_TIMEOUT_S``, while another process holds the write lock."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = 0.001
    while not conn.in_transaction and not _begin_now(conn):
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError("database is locked")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _abort_unit(conn: sqlite3.Connection, unit: _Unit) -> None:
    """Undo whatever of the unit ran; the group's other units are untouched. (When SQLite has already
    rolled back the whole transaction — a full disk, an I/O error — there is nothing left to undo.)"""
    if unit.open and conn.in_transaction:
        conn.execute("ROLLBACK TO unit")
        conn.execute("RELEASE unit")
    unit.open = False


def _commit(conn: sqlite3.Connection) -> None:
    """On the writer's thread: the group's one commit (written to the WAL, not yet synced)."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            conn.execute("ROLLBACK")
        raise


class _Chain:
    """The audit chain's head as the writer last left it, kept in memory: a unit's entry extends it without
    reading the ``audit_head`` row, and the row is written once per group, just before its commit, with the
    head the group's last entry made (the row and the entries are in one transaction, as before).

    Valid only while no other connection has committed to the file since this writer last did — SQLite's
    ``data_version`` on the writer's connection says so; it is checked when a group takes the write lock,
    and the head is read from its row again when it changed. A unit rolled back takes its entries' head
    back with it; a group lost or a commit failed forgets the head (it is read again)."""

    __slots__ = ("head", "known", "unwritten", "version")

    def __init__(self) -> None:
        self.head: tuple[Any, ...] | None = None  # (seq, hash) of the last entry, None before the first
        self.known = False
        self.version: int | None = None  # data_version when the head was last known
        self.unwritten: tuple[Any, ...] | None = None  # (seq, hash) of the head this group's commit must write

    def check(self, conn: sqlite3.Connection) -> None:
        """At a group's start, with the write lock taken: forget the head if another connection wrote."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version:
            self.known = False
            self.version = version

    def forget(self) -> None:
        self.known = False
        self.unwritten = None


def _audit_op(
    chain: _Chain,
    tenant: str,
    kind: str,
    actor: str,
    subject: str,
    detail: dict[str, Any],
    now: float,
    decision: DecisionRecord | None = None,
) -> Op:
    """The audit entry as one op: the chain's head (kept in memory, see :class:`_Chain`) is extended inside
    the transaction that holds SQLite's write lock, so the chain stays linear across processes too. A
    decision's action is inserted in the same op, under the entry's seq (no pass over the connection of its
    own)."""

    def write(conn: sqlite3.Connection) -> None:
        if not chain.known:
            chain.head = conn.execute(AUDIT_HEAD).fetchone()
            chain.known = True
        entry = audit_entry(chain.head, now, tenant, kind, actor, subject, detail)
        conn.execute(AUDIT_INSERT, entry)
        if decision is not None:
            conn.execute(DECISION_INSERT, decision_args(entry[0], decision))
        chain.head = chain.unwritten = (entry[0], entry[-1])  # signed once per group, when its row is written

    return write


class SQLiteTx(SqlTx):
    """Statements whose result nobody reads wait in the unit and run with the next one that needs an answer,
    or at the unit's end: one pass over the connection, not one per call."""

    def __init__(self, writer: _Writer, unit: _Unit, group: _Group, chain: _Chain) -> None:
        self._writer = writer
        self._unit = unit
        self._group = group
        self._pending: list[Op] = []
        self._chain = chain
        # the chain as this unit found it: what a rollback of the unit returns it to
        self._chain_before = (chain.head, chain.known, chain.unwritten)

    async def _run(self, ops: list[Op]) -> list[Any]:
        conn = self._writer.here()
        if not conn.in_transaction:
            if self._group.begun:  # the group's transaction is gone: never start a second one under it
                raise sqlite3.OperationalError("the transaction this write was to join was rolled back")
            if not _begin_now(conn):
                await self._writer.submit(_begin_patiently)
            self._group.begun = True
            self._chain.check(self._writer.here())
            self._chain_before = (self._chain.head, self._chain.known, self._chain.unwritten)
        return _run_ops(self._writer.here(), self._unit, ops)

    async def _send(self, op: Op) -> Any:
        ops, self._pending = [*self._pending, op], []
        return (await self._run(ops))[-1]

    async def defer(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._pending.append((sql, args, QUIET))

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return int(await self._send((sql, args, COUNT)))

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> Any:
        rows = await self._send((sql, args, FETCH))
        return rows[0] if rows else None

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        return list(await self._send((sql, args, FETCH)))

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
        self._pending.append(_audit_op(self._chain, tenant, kind, actor, subject, detail, now, decision))

    async def _end(self) -> None:
        """The unit's last statements, then its savepoint released into the group's transaction."""
        if self._pending:
            ops, self._pending = self._pending, []
            await self._run(ops)
        if self._unit.open:
            self._writer.here().execute("RELEASE unit")
            self._unit.open = False

    def _abort(self) -> bool:
        """Undo the unit; True when SQLite rolled back the whole group's transaction instead."""
        self._pending = []
        self._chain.head, self._chain.known, self._chain.unwritten = self._chain_before
        unit = self._unit
        if self._writer.busy:  # cancelled while the thread works: undo after it, in order
            self._writer.submit(lambda conn: _abort_unit(conn, unit))
            return False
        conn = self._writer.here()
        lost = self._group.begun and not conn.in_transaction
        _abort_unit(conn, unit)
        return lost


class _Group:
    """Units of work sharing one SQLite transaction; ``done`` resolves when it is committed (or fails when
    the transaction is lost, so that no unit in it is answered as written)."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.units = 0
        self.begun = False  # its transaction was opened
        self.durable = False  # a unit in it must be on disk before it is answered


class SQLiteStore(SqlStore, GroupCommits):
    engine = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: _Writer | None = None
        self._reader: aiosqlite.Connection | None = None
        self._init_groups()
        self._group: _Group | None = None  # the open transaction units are joining
        self._chain = _Chain()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private(self.path)
        writer = _Writer(self.path)
        await writer.open()
        await writer.submit(lambda conn: (_migrate(conn), writer.sync_wal()))
        self._writer = writer
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader.row_factory = aiosqlite.Row
        for pragma in PRAGMAS:
            await self._reader.execute(pragma)

    async def close(self) -> None:
        """Units already answered are on disk; an open group is committed before the writer goes."""
        if self._reader is not None:
            await self._reader.close()
        writer = self._writer
        if writer is not None:
            await self._lock.acquire()
            try:
                if self._group is not None:
                    await self._commit(writer, self._group)
            finally:
                await writer.close()
                self._lock.release()
        self._reader = self._writer = None

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Tx]:
        writer = self._writer
        assert writer is not None, "store is not open"
        await self._take_turn()
        group: _Group | None = None
        ok = False
        try:
            if self._group is None:
                self._group = _Group()
            group = self._group
            group.units += 1
            group.durable = group.durable or durable
            tx = SQLiteTx(writer, _Unit(), group, self._chain)
            tx.audit_key = self.audit_key
            try:
                yield tx
                await tx._end()
            except BaseException as exc:
                if tx._abort():
                    self._lose(group, exc)
                raise
            ok = True
        finally:
            await self._end_turn(writer, group, MAX_GROUP)
        if ok and group is not None:
            await asyncio.shield(group.done)

    def _lane(self) -> _Writer | None:
        return self._writer

    def _lose(self, group: _Group, exc: BaseException) -> None:
        """SQLite rolled back the group's whole transaction (a full disk, an I/O error): the units released
        into it are gone, and each learns so instead of being answered as written."""
        self._chain.forget()
        if not group.done.done():
            group.done.set_exception(sqlite3.OperationalError(f"the shared transaction was rolled back: {exc}"))
            group.done.exception()  # retrieved, so it is not logged as unobserved when no other unit waits
        if self._group is group:
            self._group = None

    async def _commit(self, writer: _Writer, group: _Group) -> None:
        """Commit the open group (the writer lock is held); every unit in it learns the outcome, even when
        the coroutine that asked for the commit is cancelled while it runs."""
        self._group = None
        chain = self._chain
        try:
            head, chain.unwritten = chain.unwritten, None
            key, durable = self.audit_key, group.durable

            def commit_group(conn: sqlite3.Connection) -> concurrent.futures.Future[None] | None:
                """The commit and, for a durable group, its sync queued straight from this thread."""
                if head is not None and conn.in_transaction:  # where the group's entries end: one signed head row
                    conn.execute(AUDIT_HEAD_PUT, head_row(key, *head))
                _commit(conn)
                return writer.sync_later() if durable else None

            commit = writer.submit(commit_group)
        except BaseException as exc:  # the writer is shut down: nobody may wait on this group forever
            self._lose(group, exc)
            raise

        def settle(fut: asyncio.Future[Any]) -> None:
            if group.done.done():
                return
            error = RuntimeError("the commit was abandoned") if fut.cancelled() else fut.exception()
            if error is None:
                group.done.set_result(None)
                return
            chain.forget()  # the commit may not have happened: the head is read from the file again
            group.done.set_exception(error)
            group.done.exception()  # retrieved here too, so a failure nobody else awaits is not logged twice

        def committed(fut: asyncio.Future[concurrent.futures.Future[None] | None]) -> None:
            """The group is answered when its sync is done (a sync queued after the commit, in commit order,
            behind any earlier group's); a group that needs none, or whose commit failed, at once. (A shut-down
            syncer refuses the sync: the commit's future carries that error, and the group learns it.)"""
            synced = None if fut.cancelled() or fut.exception() is not None else fut.result()
            if synced is None:
                settle(fut)
                return
            asyncio.wrap_future(synced).add_done_callback(settle)

        commit.add_done_callback(committed)
        await asyncio.shield(commit)

    # rows in index order: a page is not a sort of the whole queue
    pending_source = "approvals INDEXED BY approvals_pending_page"

    async def _pending_total(self, tenant: str, now: float, where: str, args: list[Any], *, filtered: bool) -> int:
        """Unfiltered, the total is the count the triggers keep less the few that expired and wait for the
        sweeper, so a page costs the same with 100 or 100 000 held."""
        if filtered:
            return await super()._pending_total(tenant, now, where, args, filtered=filtered)
        rows = await self._all(
            "SELECT COALESCE((SELECT pending FROM pending_counts WHERE tenant = ?), 0) - "
            "(SELECT COUNT(*) FROM approvals WHERE status = ? AND expires_at <= ? AND tenant = ?)",
            (tenant, PENDING, now, tenant),
        )  # one statement, so the count and the expired-but-unswept rows are read from one snapshot
        return int(rows[0][0])

    async def count_pending(self, now: float) -> int:
        """The triggers' counts, summed, less the pending ones already expired: a scrape costs the same with
        100 or 100 000 held."""
        rows = await self._all(
            "SELECT COALESCE((SELECT SUM(pending) FROM pending_counts), 0) - "
            "(SELECT COUNT(*) FROM approvals WHERE status = ? AND expires_at <= ?)",
            (PENDING, now),
        )  # one statement: the counts and the expired rows are read from one snapshot
        return int(rows[0][0])

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        assert self._reader is not None, "store is not open"
        cur = await self._reader.execute(sql, args)
        return list(await cur.fetchall())

    async def claim_outbox(
        self, now: float, limit: int = 50, lease_s: float = 30.0, kinds: tuple[str, ...] = ()
    ) -> list[OutboxRecord]:
        """A look on the reader first: a worker woken by a commit that queued nothing for it (most of them)
        costs no write transaction and no fsync."""
        only = f" AND kind IN ({','.join('?' for _ in kinds)})" if kinds else ""
        due = (
            "SELECT 1 FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= ?{only} "
            "LIMIT 1"
        )
        if not await self._all(due.format(only=only), (now, *kinds)):
            return []
        async with self.transaction(durable=False) as tx:
            assert isinstance(tx, SQLiteTx)
            rows = await tx.fetchall(
                "SELECT id, kind, payload, attempts FROM outbox WHERE delivered_at IS NULL AND dead_at IS NULL "
                f"AND next_attempt_at <= ?{only} ORDER BY id LIMIT ?",
                (now, *kinds, limit),
            )
            for row in rows:
                await tx.defer("UPDATE outbox SET next_attempt_at = ? WHERE id = ?", (now + lease_s, row[0]))
        return [outbox_from_row(r) for r in rows]


def _create_private(path: Path) -> None:
    """A new database file is made readable by its owner alone (0600), like the key files beside it: it
    holds the tasks, the audit trail and the sealed secrets. SQLite gives its WAL and shared-memory files
    the database file's permissions."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _migrate(conn: sqlite3.Connection) -> None:
    """On the writer thread, before anything else: bring the file's schema to this version."""
    _begin_patiently(conn)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(f"database schema v{current} is newer than this Airlock (v{SCHEMA_VERSION})")
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                conn.execute(statement.replace("{autoincrement}", "AUTOINCREMENT"))
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        _count_pending(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


PENDING_COUNT_TRIGGERS = (
    # one upsert per held call (it was an insert and an update: two statements run in every hold)
    """CREATE TRIGGER IF NOT EXISTS pending_counted_once AFTER INSERT ON approvals WHEN NEW.status = 'pending'
    BEGIN
        INSERT INTO pending_counts (tenant, pending) VALUES (NEW.tenant, 1)
        ON CONFLICT (tenant) DO UPDATE SET pending = pending + 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS pending_decided AFTER UPDATE OF status ON approvals
    WHEN OLD.status = 'pending' AND NEW.status <> 'pending'
    BEGIN
        UPDATE pending_counts SET pending = pending - 1 WHERE tenant = OLD.tenant;
    END""",
    """CREATE TRIGGER IF NOT EXISTS pending_reopened AFTER UPDATE OF status ON approvals
    WHEN OLD.status <> 'pending' AND NEW.status = 'pending'
    BEGIN
        INSERT OR IGNORE INTO pending_counts (tenant, pending) VALUES (NEW.tenant, 0);
        UPDATE pending_counts SET pending = pending + 1 WHERE tenant = NEW.tenant;
    END""",
    """CREATE TRIGGER IF NOT EXISTS pending_deleted AFTER DELETE ON approvals WHEN OLD.status = 'pending'
    BEGIN
        UPDATE pending_counts SET pending = pending - 1 WHERE tenant = OLD.tenant;
    END""",
)


def _count_pending(conn: sqlite3.Connection) -> None:
    """SQLite only: each tenant's pending approvals, counted by triggers in the transaction that changes
    them, so ``list_pending``'s total is not a count over the whole queue. Made (and filled from the
    table) the first time a file is opened by an Airlock that keeps it."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pending_counts'").fetchone()
    if exists:
        conn.execute("DROP TRIGGER IF EXISTS pending_counted")  # its two statements are one upsert now
        for trigger in PENDING_COUNT_TRIGGERS:
            conn.execute(trigger)
        return
    conn.execute("CREATE TABLE pending_counts (tenant TEXT PRIMARY KEY, pending INTEGER NOT NULL)")
    conn.execute(
        "INSERT INTO pending_counts (tenant, pending) "
        "SELECT tenant, COUNT(*) FROM approvals WHERE status = 'pending' GROUP BY tenant"
    )
    for trigger in PENDING_COUNT_TRIGGERS:
        conn.execute(trigger)
