"""PostgreSQL group commit: units started together share one transaction and one commit, each in a savepoint of
its own; a failing or cancelled unit goes alone; the audit chain stays whole across groups, replicas and
restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from mesh.audit import audit_key, verify_chain
from mesh.store.postgres import GroupLost, PostgresStore
from tests.mesh.store.test_sqlite_writer import task
from tests.pg import drop, fresh_schema_url

KEY = audit_key(b"g" * 32)


@pytest.fixture
async def url() -> AsyncIterator[str]:
    u = await fresh_schema_url()
    yield u
    await drop(u)


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(url)
    s.audit_key = KEY
    await s.open()
    yield s
    await s.close()


async def opened(url: str) -> PostgresStore:
    s = PostgresStore(url)
    s.audit_key = KEY
    await s.open()
    return s


async def together(store: PostgresStore, n: int) -> None:
    """Called by the first unit, inside it: wait until the other ``n - 1`` are queued behind it."""
    async with asyncio.timeout(5):
        while store._waiting < n - 1:
            await asyncio.sleep(0)


async def txid(tx: Any) -> int:
    return int((await tx.fetchone("SELECT txid_current()"))[0])


async def stored_ids(store: PostgresStore, table: str, column: str) -> set[str]:
    return {row[0] for row in await store._all(f"SELECT {column} FROM {table}")}


async def test_units_started_together_share_one_commit_and_return_after_it(store: PostgresStore) -> None:
    n = 8
    seen: dict[int, tuple[int, int]] = {}
    visible: dict[int, bool] = {}

    async def unit(i: int) -> None:
        async with store.transaction() as tx:
            await tx.insert_task(task(f"g{i}"))
            await tx.audit(tenant="default", kind="k", actor="a", subject=f"g{i}", detail={"i": i}, now=time.time())
            row = await tx.fetchone("SELECT txid_current(), pg_backend_pid()")  # type: ignore[attr-defined]
            seen[i] = (int(row[0]), int(row[1]))
            if i == 0:
                await together(store, n)
        # answered: committed, so another connection of the pool sees it
        visible[i] = await store.get_task("default", f"g{i}") is not None

    first = asyncio.create_task(unit(0))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(first, *(unit(i) for i in range(1, n))), 10)
    assert len(set(seen.values())) == 1, seen  # one transaction on one backend
    assert all(visible.values()) and len(visible) == n
    report = await verify_chain(store, KEY)
    assert report.ok and report.entries == n and report.head_seq == n, report


async def test_a_failing_unit_fails_alone_and_the_chain_of_the_others_is_whole(store: PostgresStore) -> None:
    async with store.transaction() as tx:
        await tx.insert_task(task("dup"))
    n = 8
    txids: dict[int, int] = {}

    async def unit(i: int, dup: bool) -> None:
        async with store.transaction() as tx:
            txids[i] = await txid(tx)
            await tx.append_history(f"u{i}", [{"n": i}])
            await tx.audit(tenant="default", kind="k", actor="a", subject=f"u{i}", detail={}, now=time.time())
            await tx.insert_task(task("dup" if dup else f"u{i}"))  # a duplicate key, found only at the end
            if i == 0:
                await together(store, n)

    first = asyncio.create_task(unit(0, False))
    await asyncio.sleep(0.05)
    results = await asyncio.wait_for(
        asyncio.gather(first, *(unit(i, i == 3) for i in range(1, n)), return_exceptions=True), 10
    )
    assert [type(r).__name__ for r in results if r is not None] == ["UniqueViolationError"]
    assert len(set(txids.values())) == 1  # they shared a transaction, and it committed without unit 3
    ids = await stored_ids(store, "tasks", "id")
    assert ids == {"dup"} | {f"u{i}" for i in range(n) if i != 3}
    assert await stored_ids(store, "history", "task_id") == ids - {"dup"}
    assert "u3" not in await stored_ids(store, "audit", "subject")
    report = await verify_chain(store, KEY)
    assert report.ok and report.entries == n - 1 and report.head_seq == n - 1, report


async def test_a_failing_first_unit_rolls_back_alone_and_the_next_begins_again(store: PostgresStore) -> None:
    async with store.transaction() as tx:
        await tx.insert_task(task("dup"))
    n = 5

    async def unit(i: int) -> None:
        async with store.transaction() as tx:
            await tx.audit(tenant="default", kind="k", actor="a", subject=f"f{i}", detail={}, now=time.time())
            await tx.insert_task(task("dup" if i == 0 else f"f{i}"))
            if i == 0:
                await tx.fetchone("SELECT 1")  # type: ignore[attr-defined]  # the duplicate is sent here
                raise AssertionError("unreachable")

    async def first() -> None:
        async with store.transaction() as tx:
            await tx.audit(tenant="default", kind="k", actor="a", subject="f0", detail={}, now=time.time())
            await together(store, n)
            await tx.insert_task(task("dup"))

    lead = asyncio.create_task(first())
    await asyncio.sleep(0.05)
    results = await asyncio.wait_for(asyncio.gather(lead, *(unit(i) for i in range(1, n)), return_exceptions=True), 10)
    assert isinstance(results[0], asyncpg.UniqueViolationError) and results[1:] == [None] * (n - 1)
    assert await stored_ids(store, "audit", "subject") == {f"f{i}" for i in range(1, n)}
    report = await verify_chain(store, KEY)
    assert report.ok and report.entries == n - 1, report


async def test_a_failed_commit_fails_every_unit_of_the_group(store: PostgresStore) -> None:
    """A constraint checked at COMMIT fails the group's one commit: no unit in it is answered as written."""
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema or "public"})
    try:
        await conn.execute(
            "CREATE FUNCTION no_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.id = 'boom' THEN RAISE EXCEPTION 'boom at commit'; END IF; RETURN NULL; END $$"
        )
        await conn.execute(
            "CREATE CONSTRAINT TRIGGER boom AFTER INSERT ON tasks DEFERRABLE INITIALLY DEFERRED "
            "FOR EACH ROW EXECUTE FUNCTION no_boom()"
        )
    finally:
        await conn.close()
    n = 4

    async def unit(i: int) -> None:
        async with store.transaction() as tx:
            await tx.audit(tenant="default", kind="k", actor="a", subject=f"b{i}", detail={}, now=time.time())
            await tx.insert_task(task("boom" if i == 2 else f"b{i}"))
            if i == 0:
                await together(store, n)

    lead = asyncio.create_task(unit(0))
    await asyncio.sleep(0.05)
    results = await asyncio.wait_for(asyncio.gather(lead, *(unit(i) for i in range(1, n)), return_exceptions=True), 10)
    assert all(isinstance(r, Exception) for r in results), results
    assert await stored_ids(store, "tasks", "id") == set()
    async with store.transaction() as tx:  # the store goes on
        await tx.audit(tenant="default", kind="k", actor="a", subject="after", detail={}, now=time.time())
    report = await verify_chain(store, KEY)
    assert report.ok and report.entries == 1, report


async def test_a_unit_cancelled_mid_statement_or_in_the_queue_leaves_the_others_whole(store: PostgresStore) -> None:
    n = 10
    txids: dict[int, int] = {}
    in_flight = asyncio.Event()

    async def unit(i: int) -> None:
        async with store.transaction() as tx:
            txids[i] = await txid(tx)
            await tx.audit(tenant="default", kind="k", actor="a", subject=f"c{i}", detail={}, now=time.time())
            await tx.insert_task(task(f"c{i}"))
            if i == 0:
                await together(store, n)
            if i == 4:
                in_flight.set()
                await tx.fetchone("SELECT pg_sleep(0.3)")  # type: ignore[attr-defined]  # cancelled while it runs

    lead = asyncio.create_task(unit(0))
    await asyncio.sleep(0.05)
    tasks = [lead, *(asyncio.create_task(unit(i)) for i in range(1, n))]
    await asyncio.wait_for(in_flight.wait(), 5)
    await asyncio.sleep(0.05)
    tasks[4].cancel()  # its statement is on the shared connection
    tasks[7].cancel()  # still waiting for its turn (the units run one at a time, in order)
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    cancelled = {i for i, r in enumerate(results) if isinstance(r, asyncio.CancelledError)}
    assert 4 in cancelled and all(r is None for i, r in enumerate(results) if i not in cancelled), results
    finished = {f"c{i}" for i in range(n) if i not in cancelled}
    assert await stored_ids(store, "tasks", "id") == finished
    assert await stored_ids(store, "audit", "subject") == finished
    assert len({txids[i] for i in range(n) if i not in cancelled}) == 1
    report = await verify_chain(store, KEY)
    assert report.ok and report.entries == len(finished), report
    async with store.transaction() as tx:  # the connection is usable, the lock free
        await tx.insert_task(task("after"))
    assert await store.get_task("default", "after") is not None


async def test_two_replicas_writing_groups_at_once_keep_one_chain_across_a_reopen(url: str) -> None:
    a, b = await opened(url), await opened(url)
    txids: list[int] = []

    async def unit(store: PostgresStore, name: str, i: int) -> None:
        async with store.transaction() as tx:
            await tx.insert_task(task(f"{name}{i}"))
            await tx.audit(tenant="default", kind="k", actor=name, subject=f"{name}{i}", detail={}, now=time.time())
            txids.append(await txid(tx))

    async def burst(store: PostgresStore, name: str, base: int) -> None:
        await asyncio.gather(*(unit(store, name, base + i) for i in range(16)))

    try:
        for r in range(3):
            await asyncio.wait_for(asyncio.gather(burst(a, "a", r * 16), burst(b, "b", r * 16)), 20)
        report = await verify_chain(a, KEY)
        assert report.ok and report.entries == 96 and report.head_seq == 96, report
        assert len(set(txids)) < len(txids)  # units shared commits
    finally:
        await a.close()
        await b.close()
    again = await opened(url)
    try:
        await asyncio.gather(*(unit(again, "r", i) for i in range(5)))
        report = await verify_chain(again, KEY)
        assert report.ok and report.entries == 101 and report.head_seq == 101, report
    finally:
        await again.close()


async def test_outbox_claims_from_two_replicas_take_each_row_once(url: str) -> None:
    a, b = await opened(url), await opened(url)
    try:
        async with a.transaction() as tx:
            for i in range(60):
                await tx.enqueue("webhook", {"n": i})
        claims = await asyncio.gather(*(s.claim_outbox(now=10.0, limit=7) for s in (a, b) for _ in range(6)))
        ids = [r.id for claim in claims for r in claim]
        assert len(ids) == len(set(ids)) == 60
    finally:
        await a.close()
        await b.close()


async def test_a_group_commits_without_waiting_for_the_flush_only_when_no_unit_is_durable(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[str] = []
    real = asyncpg.Connection.execute

    async def spy(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> str:
        if "COMMIT" in query:
            commits.append(query)
        return await real(self, query, *args, **kw)

    monkeypatch.setattr(asyncpg.Connection, "execute", spy)

    async def unit(durable: bool, name: str, lead: bool = False) -> None:
        async with store.transaction(durable=durable) as tx:
            await tx.insert_task(task(name))
            if lead:
                await tx.fetchone("SELECT 1")  # type: ignore[attr-defined]
                await together(store, 2)

    await unit(True, "d")
    await unit(False, "n")
    lead = asyncio.create_task(unit(False, "m1", lead=True))
    await asyncio.sleep(0.05)
    await asyncio.gather(lead, unit(True, "m2"))
    assert [("synchronous_commit = off" in c) for c in commits] == [False, True, False]
    async with store.transaction() as tx:  # SET LOCAL ended with its transaction
        assert (await tx.fetchone("SHOW synchronous_commit"))[0] == "on"  # type: ignore[attr-defined]


async def test_closing_with_a_group_open_commits_it(url: str) -> None:
    s = await opened(url)
    entered = asyncio.Event()

    async def unit(i: int) -> None:
        async with s.transaction() as tx:
            await tx.insert_task(task(f"z{i}"))
            if i == 0:
                entered.set()
                await together(s, 3)

    units = [asyncio.create_task(unit(i)) for i in range(3)]
    await entered.wait()
    await asyncio.wait_for(asyncio.gather(*units), 10)
    await asyncio.wait_for(s.close(), 10)
    again = await opened(url)
    try:
        assert await stored_ids(again, "tasks", "id") == {"z0", "z1", "z2"}
    finally:
        await again.close()


async def test_a_connection_lost_mid_group_fails_every_unit_in_it_and_the_next_unit_goes_on(
    store: PostgresStore,
) -> None:
    n = 4

    async def unit(i: int) -> None:
        async with store.transaction() as tx:
            await tx.audit(tenant="default", kind="k", actor="a", subject=f"l{i}", detail={}, now=time.time())
            await tx.insert_task(task(f"l{i}"))
            if i == 0:
                await together(store, n)
            if i == 2:  # the group's backend goes away under it
                pid = (await tx.fetchone("SELECT pg_backend_pid()"))[0]  # type: ignore[attr-defined]
                other = await asyncpg.connect(store.dsn)
                try:
                    await other.execute("SELECT pg_terminate_backend($1)", pid)
                finally:
                    await other.close()
                await tx.fetchone("SELECT 1")  # type: ignore[attr-defined]

    lead = asyncio.create_task(unit(0))
    await asyncio.sleep(0.05)
    results = await asyncio.wait_for(asyncio.gather(lead, *(unit(i) for i in range(1, n)), return_exceptions=True), 10)
    assert isinstance(results[0], GroupLost) and isinstance(results[1], GroupLost), results
    assert isinstance(results[2], Exception) and results[3] is None, results
    assert await stored_ids(store, "tasks", "id") == {"l3"}  # the next unit began a group on a new connection
    report = await verify_chain(store, KEY)
    assert report.ok and report.entries == 1, report


async def test_appends_to_one_task_from_two_replicas_number_every_message_once_in_order(url: str) -> None:
    a, b = await opened(url), await opened(url)
    try:
        async with a.transaction() as tx:
            await tx.insert_task(task("h"))

        async def append(store: PostgresStore, name: str, i: int) -> None:
            async with store.transaction() as tx:
                await tx.append_history("h", [{"by": name, "i": i, "part": 0}, {"by": name, "i": i, "part": 1}])
                await tx.log_event(tenant="default", kind="k", subject="h", data={}, now=1.0)

        await asyncio.wait_for(
            asyncio.gather(*(append(s, name, i) for s, name in ((a, "a"), (b, "b")) for i in range(10))), 20
        )
        history = await a.get_history("h")
        assert len(history) == 40
        for first, second in zip(history[::2], history[1::2], strict=True):  # each append's two stay together
            assert (first["by"], first["i"], first["part"]) == (second["by"], second["i"], 0)
            assert second["part"] == 1
        rows = await a._all("SELECT seq FROM history WHERE task_id = 'h' ORDER BY seq")
        assert [r[0] for r in rows] == list(range(1, 41))
    finally:
        await a.close()
        await b.close()


async def test_replicas_racing_to_decide_the_same_approvals_in_groups_get_one_winner_each(url: str) -> None:
    """First-writer-wins stays the conditional UPDATE: groups on two replicas, each unit deciding an approval
    and auditing it, never deadlock (a group takes the chain's lock before any row) and each approval is won
    once."""
    from tests.mesh.store.test_store import approval

    a, b = await opened(url), await opened(url)
    ids = [f"ap{i}" for i in range(24)]
    try:
        async with a.transaction() as tx:
            for i in ids:
                await tx.insert_approval(approval(i, f"t-{i}"))
        won: list[str] = []

        async def decide(store: PostgresStore, name: str, approval_id: str) -> None:
            async with store.transaction() as tx:
                if await tx.decide_approval(
                    approval_id, status="approved", now=2000.0, resolved_by=name, surface="test", values=None
                ):
                    await tx.audit(
                        tenant="default", kind="approval.resolved", actor=name, subject=approval_id, detail={}, now=1.0
                    )
                    won.append(approval_id)

        order = {a: ids, b: list(reversed(ids))}  # the two replicas take the rows in opposite orders
        await asyncio.wait_for(
            asyncio.gather(*(decide(s, n, i) for s, n in ((a, "a"), (b, "b")) for i in order[s])), 20
        )
        assert sorted(won) == sorted(ids)  # each once
        report = await verify_chain(a, KEY)
        assert report.ok and report.entries == len(ids), report
    finally:
        await a.close()
        await b.close()
