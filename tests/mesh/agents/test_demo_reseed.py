"""Each start of the demo agent puts its staging records back as seeded, so the guide can be replayed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mesh.agents.base import Execution, TurnContext
from mesh.agents.demo import CURRENT_AT_START, EXPIRED_AT_START, StagingDbAgent
from mesh.wire.models import Message, TaskState


def counts(path: Path) -> tuple[int, int]:
    """(expired, current) records in the staging database."""
    now = time.time()
    with sqlite3.connect(path) as db:
        expired = db.execute("SELECT COUNT(*) FROM records WHERE expires_at <= ?", (now,)).fetchone()[0]
        current = db.execute("SELECT COUNT(*) FROM records WHERE expires_at > ?", (now,)).fetchone()[0]
    return expired, current


def executions(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT task_id, affected FROM executions ORDER BY seq").fetchall()


def ctx(task_id: str) -> TurnContext:
    return TurnContext(task_id=task_id, context_id="ctx", tenant="default", sender="alice")


def guide_message() -> Message:
    return Message.model_validate(
        {
            "role": "user",
            "messageId": "m-1",
            "parts": [{"kind": "text", "text": "Delete all expired records from the staging database"}],
        }
    )


async def delete_expired(agent: StagingDbAgent, task_id: str) -> int:
    """Do what an approved guide message does: plan the delete and run it."""
    plan = await agent.plan(guide_message(), ctx(task_id))
    assert plan.action is not None and plan.action.tool == "bulk_delete_expired"
    reply = await agent.execute(Execution(action=plan.action), ctx(task_id))
    assert reply.state == TaskState.COMPLETED
    return reply.artifacts[0]["parts"][1]["data"]["deleted"]


async def test_first_start_seeds_42_expired_and_8_current(tmp_path: Path) -> None:
    agent = StagingDbAgent(tmp_path / "staging.db")
    await agent.start()
    try:
        assert counts(tmp_path / "staging.db") == (EXPIRED_AT_START, CURRENT_AT_START) == (42, 8)
    finally:
        await agent.stop()


async def test_a_start_after_the_approved_delete_restores_the_records(tmp_path: Path) -> None:
    path = tmp_path / "staging.db"
    agent = StagingDbAgent(path)
    await agent.start()
    try:
        assert await delete_expired(agent, "task-1") == 42
        assert counts(path) == (0, 8)
    finally:
        await agent.stop()

    again = StagingDbAgent(path)
    await again.start()
    try:
        assert counts(path) == (42, 8)
        # the replayed guide deletes 42 again
        assert await delete_expired(again, "task-2") == 42
        assert counts(path) == (0, 8)
    finally:
        await again.stop()
    # what ran is still on record: an action re-run for an earlier task changes nothing
    assert executions(path) == [("task-1", 42), ("task-2", 42)]


async def test_a_start_restores_a_table_whose_records_were_all_deleted(tmp_path: Path) -> None:
    path = tmp_path / "staging.db"
    agent = StagingDbAgent(path)
    await agent.start()
    await agent.stop()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM records")
        db.execute("INSERT INTO records VALUES ('stray', 'not a seeded record', 0)")
    assert counts(path) == (1, 0)

    again = StagingDbAgent(path)
    await again.start()
    try:
        assert counts(path) == (42, 8)
        with sqlite3.connect(path) as db:
            ids = [row[0] for row in db.execute("SELECT id FROM records ORDER BY id")]
        assert ids == [f"rec-{i:03d}" for i in range(50)]
    finally:
        await again.stop()


async def test_an_action_of_a_task_that_already_ran_does_not_run_again_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "staging.db"
    agent = StagingDbAgent(path)
    await agent.start()
    try:
        assert await delete_expired(agent, "task-1") == 42
    finally:
        await agent.stop()
    again = StagingDbAgent(path)
    await again.start()
    try:
        # the same task's action (as a recovery after a stop would run it) answers what it did, deleting nothing
        assert await delete_expired(again, "task-1") == 42
        assert counts(path) == (42, 8)
        assert executions(path) == [("task-1", 42)]
    finally:
        await again.stop()
