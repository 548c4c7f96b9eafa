"""PostgreSQL engine (asyncpg, connection pool), for many replicas over one database.

The same statements as SQLite (placeholders rewritten to ``$n``). What differs is what concurrency
across processes needs: migrations run under an advisory lock so replicas starting together apply each
once; the audit chain and a task's history take transaction-scoped advisory locks so two replicas
never fork them; the outbox is claimed with ``FOR UPDATE SKIP LOCKED``. First-writer-wins is still the
one conditional UPDATE, whose row count PostgreSQL reports exactly under concurrency (READ COMMITTED
re-checks the WHERE clause on the row it waited for).

Group commit, as the SQLite engine does it: units of work that arrive while another is running join one
PostgreSQL transaction on one connection, each unit after the first in a SAVEPOINT of its own (a failing unit
rolls back to it and fails alone; the first unit of a group, with nothing before it, rolls back the whole
transaction and the next unit begins another). The last unit of the group — nobody else waiting, or
``MAX_GROUP`` reached — commits, and every unit is answered only once that COMMIT has returned; a commit or
a connection that fails fails every unit of the group. An asyncio lock orders the units' use of the
connection and decides nothing: first-writer-wins and the quorum are still the conditional UPDATEs, now
possibly inside a savepoint. Reads outside units use the pool; units use a connection of the store's own (a
group waiting behind the readers for a pooled one would hold up every unit queued behind it).

Round trips: the boundary between two units is one simple-protocol query (``RELEASE SAVEPOINT unit;
SAVEPOINT unit``), a unit's deferred inserts go as one statement of data-modifying CTEs, and the commit is one
query that also writes the audit chain's head row (and, for a group of units that are all ``durable=False``,
``SET LOCAL synchronous_commit = off``; a group with any durable unit waits for the WAL flush).

The audit chain: a group takes the chain's advisory lock with its ``BEGIN`` — before any row lock, so a group
holding the chain never waits for a row held by another replica's group that waits for the chain (the
groups of all replicas take their turns at one lock, a turn per group rather than per unit). The head is read
once per group, under that lock, with the first entry's waiting inserts; it is kept in memory for the rest of
the group, and its row is written once, in the commit query. A unit rolled back puts the head back as it found
it. The head is never kept from one group to the next: other replicas write between them.

Cancellation: a unit's statements run as tasks of their own, one after another on the group's connection, so a
caller cancelled while its statement is in flight leaves the statement to finish (asyncpg would otherwise send
a cancel request that could land on the next unit's statement) and the unit is then rolled back to its
savepoint behind it; the asyncio lock is released only when the connection is idle.

Events cross replicas with LISTEN/NOTIFY on channel ``airlock_events`` (``airlock_events_<schema>`` in a schema).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from .base import DecisionRecord, OutboxRecord, Tx, dumps, loads
from .groups import GroupCommits
from .rows import (
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

log = logging.getLogger("airlock.store.pg")

MIGRATION_LOCK = 0x41_49_52_4C  # "AIRL"
AUDIT_LOCK = 0x41_55_44_54  # "AUDT"
EVENTS_CHANNEL = "airlock_events"
# The chain's head, read after its lock is taken, in one call: a VOLATILE function's queries each take a fresh
# snapshot (READ COMMITTED), so the head it returns is the one the last holder of the lock committed. Made by
# every start (``CREATE OR REPLACE``, under the migration lock), so stores made before it get it too.
AUDIT_HEAD_FUNCTION = """CREATE OR REPLACE FUNCTION airlock_audit_head(lock_key BIGINT)
RETURNS TABLE (head_seq BIGINT, head_hash TEXT) LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    RETURN QUERY SELECT h.seq, h.hash FROM audit_head h WHERE h.id = 1;
END
$fn$"""
AUDIT_HEAD_LOCKED = "SELECT head_seq, head_hash FROM airlock_audit_head(?)"
# A group's transaction takes the chain's lock first, before any row lock (see the module's doc).
GROUP_BEGIN = f"BEGIN; SELECT pg_advisory_xact_lock({AUDIT_LOCK})"
FIRST_SAVEPOINT = "SAVEPOINT unit"
NEXT_SAVEPOINT = "RELEASE SAVEPOINT unit; SAVEPOINT unit"  # one simple-protocol query between two units
UNDO_UNIT = "ROLLBACK TO SAVEPOINT unit"
# Units sharing one transaction at most, so a steady stream still commits often; and each unit after the first
# is a subtransaction: PostgreSQL keeps 64 of a transaction's subtransaction ids in shared memory, past that
# every snapshot in the cluster looks them up on disk.
MAX_GROUP = 32

# A task's new messages in one statement, numbered after its last one — read by this statement, so after the
# task's lock was taken by an earlier one; ``WITH ORDINALITY`` keeps their order.
HISTORY_APPEND = (
    "INSERT INTO history (task_id, seq, message) "
    "SELECT ?, last.seq + m.n, m.message FROM (SELECT COALESCE(MAX(seq), 0) AS seq FROM history WHERE task_id = ?) "
    "AS last, unnest(?::text[]) WITH ORDINALITY AS m(message, n)"
)

T = TypeVar("T")


@lru_cache(maxsize=512)
def to_dollar(sql: str) -> str:
    """``?`` placeholders → ``$1, $2, …`` (the statements hold no literal question marks)."""
    counter = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


def pg_ddl(statement: str) -> str:
    return statement.replace(
        "INTEGER PRIMARY KEY {autoincrement}", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    ).replace(" REAL", " DOUBLE PRECISION")


def split_schema(url: str) -> tuple[str, str | None]:
    """Take an optional ``?schema=NAME`` off the URL (asyncpg does not know it)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", None)
    return urlunsplit(parts._replace(query=urlencode(query))), schema


def _batchable(sql: str) -> bool:
    """A deferred statement that may share one statement with others as a data-modifying CTE. The parts of one
    statement do not see each other's rows, so only those that read nothing but the table they write: an INSERT
    of given values, an UPDATE without a subquery (an INSERT … SELECT MAX(seq) runs on its own), and
    :data:`HISTORY_APPEND`, which reads only its own table; a batch never holds two parts on one table."""
    if sql == HISTORY_APPEND:
        return True
    return (sql.startswith("INSERT INTO ") or sql.startswith("UPDATE ")) and " SELECT " not in sql


def _reads_any(sql: str, tables: set[str]) -> bool:
    return any(re.search(rf"\b{table}\b", sql) for table in tables)


def _table(statement: str) -> str:
    """The table an ``INSERT INTO t …`` or ``UPDATE t …`` writes."""
    words = statement.split(" ", 3)
    return words[1] if words[0] == "UPDATE" else words[2]


@lru_cache(maxsize=256)
def batched(parts: tuple[str, ...], tail: str | None) -> str:
    """``parts`` (``?`` placeholders) as one statement of data-modifying CTEs, ended by ``tail`` (a query whose
    rows are read) or by nothing at all: one round trip for all of them. Cached by shape: the allow path sends
    the same few shapes again and again, and asyncpg keeps each one's prepared statement."""
    ctes = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(parts))
    return to_dollar(f"WITH {ctes} {tail or 'SELECT 1'}")


class GroupLost(asyncpg.InterfaceError):
    """The transaction a unit was committed into, or was to join, is gone: its writes were not made."""


class _Line:
    """The connection a store's units take turns on, and the order they take it in: every statement runs as a
    task of its own, queued behind the one before (FIFO), so that a caller cancelled while its statement is in
    flight does not cancel the statement — asyncpg would send the server a cancel request, which can land on
    whatever runs next on the connection and abort the shared transaction.

    The connection is the line's own, not the pool's: a group waiting behind the readers for a pooled
    connection would hold up every unit queued behind it. Made at the first statement, kept from one group
    to the next, and dropped (made again by the next group) when a group on it is lost."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self.conn: asyncpg.Connection | None = None
        self._last: asyncio.Task[Any] | None = None

    async def connection(self, *, fresh: bool) -> asyncpg.Connection:
        """The line's connection; with ``fresh`` (no transaction is open on it) a closed one is made again."""
        if self.conn is None or (fresh and self.conn.is_closed()):
            self.conn = await self._connect()
        return self.conn

    def drop(self) -> None:
        """After a group was lost: whatever the connection's state, the next group starts on a new one."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def submit(self, op: Callable[[_Line], Awaitable[T]]) -> asyncio.Task[T]:
        """Queue ``op`` behind what is queued: it runs even if nobody awaits it."""
        before = self._last

        async def run() -> T:
            if before is not None and not before.done():
                await asyncio.wait((before,))
            return await op(self)

        task = asyncio.get_running_loop().create_task(run())
        task.add_done_callback(_observed)
        self._last = task
        return task

    async def call(self, op: Callable[[_Line], Awaitable[T]]) -> T:
        """Run ``op`` in turn; a cancelled caller stops waiting for it, the statement does not stop."""
        return await asyncio.shield(self.submit(op))

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once everything queued is done (at once when nothing is)."""
        if self._last is not None and not self._last.done():
            self._last.add_done_callback(lambda _: callback())
        else:
            callback()


def _observed(task: asyncio.Task[Any]) -> None:
    """A statement whose caller was cancelled has nobody to read its error: read here, so it is not logged as
    never retrieved (the unit is rolled back behind it)."""
    if not task.cancelled():
        task.exception()


class _Unit:
    """Where one unit stands in its group's transaction."""

    __slots__ = ("began", "entered")

    def __init__(self) -> None:
        self.entered = False  # its first statement was sent (after BEGIN or its SAVEPOINT)
        self.began = False  # it began the group's transaction: no savepoint, undone by ROLLBACK


class _Group:
    """Units of work sharing one PostgreSQL transaction; ``done`` resolves when it is committed (or fails when
    it is lost, so that no unit in it is answered as written). Also the audit chain's head as the group's
    entries leave it (see the module's doc): ``head`` is (seq, hash) of the last entry, ``known`` says it was
    read in this transaction, ``unwritten`` is the head (seq, hash) whose row the commit writes."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.units = 0
        self.begun = False  # BEGIN was sent: the transaction is open and holds the chain's lock
        self.savepoint = False  # a unit's savepoint is open (released when the next unit enters)
        self.durable = False  # a unit in it must wait for the WAL flush
        self.head: tuple[Any, ...] | None = None
        self.known = False
        self.unwritten: tuple[Any, ...] | None = None

    def chain(self) -> tuple[Any, ...]:
        return (self.head, self.known, self.unwritten)

    def lose(self, exc: BaseException) -> None:
        """The transaction is gone: every unit in it learns so instead of being answered as written."""
        if not self.done.done():
            self.done.set_exception(GroupLost(f"the shared transaction was rolled back: {exc}"))
            self.done.exception()  # retrieved, so it is not logged as unobserved when no other unit waits

    async def enter(self, line: _Line, unit: _Unit) -> asyncpg.Connection:
        """On the line, before a unit's statement: begin the group's transaction, or open the unit's savepoint
        (releasing the one before), in one simple-protocol query."""
        if self.done.done():
            raise GroupLost("the transaction this unit was to join was rolled back")
        conn = await line.connection(fresh=not self.begun)
        if unit.entered:
            return conn
        unit.entered = True
        if not self.begun:
            self.begun = unit.began = True
            await conn.execute(GROUP_BEGIN)
        else:
            boundary = NEXT_SAVEPOINT if self.savepoint else FIRST_SAVEPOINT
            self.savepoint = True
            await conn.execute(boundary)
        return conn

    async def undo(self, line: _Line, unit: _Unit) -> None:
        """On the line, after the unit's last statement: undo what of it ran. A failure to undo means the
        connection or the transaction is gone, and with it the whole group."""
        if not unit.entered or self.done.done():
            return
        try:
            if unit.began:  # nothing before it in the transaction: it all goes, and the next unit begins again
                self.begun = self.savepoint = False
                await line.conn.execute("ROLLBACK")  # type: ignore[union-attr]
            else:
                await line.conn.execute(UNDO_UNIT)  # type: ignore[union-attr]
        except BaseException as exc:
            self.lose(exc)
            line.drop()
            raise

    async def commit(self, line: _Line, key: bytes) -> None:
        """On the line, after the group's last statement: one query writes the chain's head (signed with
        ``key``, once for the group) and commits; then the units learn the outcome."""
        try:
            if self.begun and not self.done.done():
                conn = line.conn
                assert conn is not None
                parts = [] if self.durable else ["SET LOCAL synchronous_commit = off"]
                if self.unwritten is not None:
                    head = head_row(key, *self.unwritten)
                    put = head_put_literal(head)
                    if put is None:
                        await conn.execute(to_dollar(AUDIT_HEAD_PUT), *head)
                    else:
                        parts.append(put)
                await conn.execute("; ".join([*parts, "COMMIT"]))
        except BaseException as exc:
            self.lose(exc)
            line.drop()
            raise
        if not self.done.done():
            self.done.set_result(None)


_HEX = re.compile(r"[0-9a-f]{1,128}")


def head_put_literal(head: Sequence[Any]) -> str | None:
    """:data:`AUDIT_HEAD_PUT` with its values written in, to go in the commit's simple-protocol query (which
    takes no parameters); None unless they are an integer and two hex digests, the only values it can hold."""
    seq, digest, mac = head
    if type(seq) is not int or not isinstance(digest, str) or not isinstance(mac, str):
        return None
    if not (_HEX.fullmatch(digest) and _HEX.fullmatch(mac)):
        return None
    values = iter((str(seq), f"'{digest}'", f"'{mac}'"))
    return re.sub(r"\?", lambda _: next(values), AUDIT_HEAD_PUT)


class PgTx(SqlTx):
    """Statements nobody reads the result of wait, and go to the server together — as one statement of
    CTEs — with the next statement that needs an answer, or at the unit's end: each round trip to the
    server costs more than the statement it carries, and the group holds the audit chain's lock through all
    of them. Every statement runs in turn on the group's line (see :class:`_Line`)."""

    def __init__(self, line: _Line, group: _Group) -> None:
        self._line = line
        self._group = group
        self._unit = _Unit()
        self._sent = False  # something of this unit was queued on the line
        self._pending: list[tuple[str, Sequence[Any]]] = []
        self._chain_before = group.chain()  # what a rollback of this unit puts back

    async def _run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        group, unit = self._group, self._unit

        async def op(line: _Line) -> T:
            return await fn(await group.enter(line, unit))

        self._sent = True
        return await self._line.call(op)

    async def defer(self, sql: str, args: Sequence[Any] = ()) -> None:
        if not _batchable(sql):
            await self._flush()
            await self._run(lambda conn: conn.execute(to_dollar(sql), *args))
            return
        table = _table(sql)
        if any(_table(waiting) == table for waiting, _ in self._pending):
            await self._flush()  # two inserts into one table in one statement may take their seqs in any order
        self._pending.append((sql, args))

    async def _flush(self, tail: str | None = None, tail_args: Sequence[Any] = ()) -> list[Any]:
        """Send what waits (and ``tail``, whose rows are returned) in one statement."""
        pending, self._pending = self._pending, []
        if not pending:
            if tail is None:
                return []
            return list(await self._run(lambda conn: conn.fetch(to_dollar(tail), *tail_args)))
        if len(pending) == 1 and tail is None:
            sql, args = pending[0]
            await self._run(lambda conn: conn.execute(to_dollar(sql), *args))
            return []
        statement = batched(tuple(p[0] for p in pending), tail)
        values = [a for p in pending for a in p[1]] + list(tail_args)
        return list(await self._run(lambda conn: conn.fetch(statement, *values)))

    async def _end(self) -> None:
        await self._flush()

    def _abort(self) -> None:
        """Undo the unit, behind whatever of it is still in flight; the group's other units are untouched."""
        self._pending = []
        group = self._group
        group.head, group.known, group.unwritten = self._chain_before
        if self._sent:
            unit = self._unit
            self._line.submit(lambda line: group.undo(line, unit))

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        await self._flush()
        status = await self._run(lambda conn: conn.execute(to_dollar(sql), *args))
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> Any:
        rows = await self.fetchall(sql, args)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """A query that reads none of the tables the waiting inserts write goes with them, as their statement's
        last part (which would not see their rows); any other query after them."""
        if self._pending and sql.startswith("SELECT ") and not _reads_any(sql, {_table(p) for p, _ in self._pending}):
            return await self._flush(sql, args)
        await self._flush()
        return list(await self._run(lambda conn: conn.fetch(to_dollar(sql), *args)))

    async def append_history(self, task_id: str, messages: list[dict[str, Any]]) -> None:
        """The task's lock (with the unit's waiting inserts), then all its new messages as one insert that
        waits for the unit's next statement: two trips to the server at most, whatever the count."""
        await self.fetchall("SELECT pg_advisory_xact_lock(hashtext(?))", (task_id,))
        if messages:
            await self.defer(HISTORY_APPEND, (task_id, task_id, [dumps(m) for m in messages]))

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
        # the head is read once per group, under the chain's lock (taken again: the group holds it already),
        # sent with the unit's waiting inserts; the group's later entries extend it in memory
        group = self._group
        if not group.known:
            rows = await self._flush(AUDIT_HEAD_LOCKED, (AUDIT_LOCK,))
            group.head = (rows[0][0], rows[0][1]) if rows and rows[0][0] is not None else None
            group.known = True
        entry = audit_entry(group.head, now, tenant, kind, actor, subject, detail)
        if decision is None:
            await self.defer(AUDIT_INSERT, entry)
        else:
            await self.defer(DECISION_INSERT, decision_args(entry[0], decision))
            await self.defer(AUDIT_INSERT, entry)
        # the head row is written (and signed) once, at the commit
        group.head = group.unwritten = (entry[0], entry[-1])


class PostgresStore(SqlStore, GroupCommits):
    engine = "postgresql"

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 10) -> None:
        self.dsn, self.schema = split_schema(url)
        self._pool: asyncpg.Pool | None = None
        self._min, self._max = min_size, max_size
        self._listener: asyncpg.Connection | None = None
        self._line: _Line | None = None  # the connection units take turns on
        self._init_groups()
        self._group: _Group | None = None  # the open transaction units are joining

    def _settings(self) -> dict[str, str]:
        return {"search_path": self.schema} if self.schema else {}

    async def open(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.execute(f'SET search_path TO "{self.schema}"')
            await self._migrate(conn)
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=self._min, max_size=self._max, server_settings=self._settings(), reset=_keep_session
        )
        self._line = _Line(lambda: asyncpg.connect(self.dsn, server_settings=self._settings()))

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            async with conn.transaction():
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                current = await conn.fetchval("SELECT MAX(version) FROM schema_version") or 0
                if current > SCHEMA_VERSION:
                    raise RuntimeError(f"database schema v{current} is newer than this Airlock (v{SCHEMA_VERSION})")
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[version - 1]:
                        await conn.execute(pg_ddl(statement))
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
                await conn.execute(AUDIT_HEAD_FUNCTION)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def close(self) -> None:
        """Units already answered are committed; an open group is committed before the pool goes."""
        line = self._line
        if line is not None:
            await self._lock.acquire()
            try:
                if self._group is not None and not self._group.done.done():
                    await self._commit(line, self._group)
            finally:
                idle = asyncio.get_running_loop().create_future()
                line.when_idle(lambda: idle.done() or idle.set_result(None))
                await idle
                await line.close()
                self._lock.release()
            self._line = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Tx]:
        line = self._line
        assert line is not None, "store is not open"
        await self._take_turn()
        group: _Group | None = None
        ok = False
        try:
            if self._group is None or self._group.done.done():  # none open, or the open one was lost
                self._group = _Group()
            group = self._group
            group.units += 1
            group.durable = group.durable or durable
            tx = PgTx(line, group)
            tx.audit_key = self.audit_key
            try:
                yield tx
                await tx._end()
            except BaseException:
                tx._abort()
                raise
            ok = True
        finally:
            await self._end_turn(line, group, MAX_GROUP)
        if ok and group is not None:
            await asyncio.shield(group.done)

    def _lane(self) -> _Line | None:
        return self._line

    async def _commit(self, line: _Line, group: _Group) -> None:
        """Commit the open group (the lock is held); every unit in it learns the outcome, even when the
        coroutine that asked for the commit is cancelled while it runs."""
        self._group = None
        key = self.audit_key
        await asyncio.shield(line.submit(lambda on: group.commit(on, key)))

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        assert self._pool is not None, "store is not open"
        return list(await self._pool.fetch(to_dollar(sql), *args))

    async def claim_outbox(
        self, now: float, limit: int = 50, lease_s: float = 30.0, kinds: tuple[str, ...] = ()
    ) -> list[OutboxRecord]:
        async with self.transaction(durable=False) as tx:
            rows = await tx.fetchall(
                "UPDATE outbox SET next_attempt_at = ? WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NULL "
                "AND dead_at IS NULL AND next_attempt_at <= ? "
                "AND (cardinality(?::text[]) = 0 OR kind = ANY(?::text[])) "
                "ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED) "
                "RETURNING id, kind, payload, attempts",
                (now + lease_s, now, list(kinds), list(kinds), limit),
            )
        return sorted((outbox_from_row(r) for r in rows), key=lambda r: r.id)

    # ------------------------------------------------------------ cross-replica events

    def _channel(self) -> str:
        """NOTIFY channels are per database, not per schema: deployments in schemas of one database each
        get their own, or each would hear the other's events (a name past 63 bytes is refused: a long
        schema's is hashed)."""
        if not self.schema:
            return EVENTS_CHANNEL
        tail = self.schema if len(self.schema) <= 40 else hashlib.sha256(self.schema.encode()).hexdigest()[:24]
        return f"{EVENTS_CHANNEL}_{tail}"

    async def notify(self, payload: dict[str, Any]) -> None:
        assert self._pool is not None, "store is not open"
        await self._pool.execute("SELECT pg_notify($1, $2)", self._channel(), dumps(payload))

    async def listen(self, callback: Callable[[dict[str, Any]], None]) -> bool:
        """Call ``callback`` with every payload NOTIFY'd by any replica (this one included); True once
        listening."""
        self._listener = await asyncpg.connect(self.dsn, server_settings=self._settings())

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            try:
                callback(loads(payload))
            except Exception:
                log.exception("event listener failed")

        await self._listener.add_listener(self._channel(), on_notify)
        return True


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is: asyncpg's default reset (unlock all advisory locks, close
    cursors, UNLISTEN, RESET ALL) is a round trip on every release, every read included, and undoes nothing
    this store leaves behind — its locks and settings are the transaction's own (``_xact_`` locks,
    ``SET LOCAL``), cursors are not used, and events are listened to on a connection of their own. An open
    transaction is still ended by asyncpg before this runs."""


async def drop_schema(url: str) -> None:
    """Remove a test schema and everything in it."""
    dsn, schema = split_schema(url)
    if not schema:
        return
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
