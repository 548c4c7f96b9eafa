"""An approval that won its write but whose action never ran (the server stopped in between) is finished
at the next start — once — and never with sensitive values it no longer has."""

from __future__ import annotations

from tests.conftest import GUIDE_POLICY, Airlock, start_airlock


async def crash_after_commit(airlock: Airlock, task_id: str) -> None:
    """Do what the resolve path commits before it runs the action, and stop there."""
    mesh = airlock.mesh
    approval = await mesh.store.latest_approval(task_id)
    task = await mesh.store.get_task("default", task_id)
    assert approval is not None and task is not None
    now = mesh.clock()
    task.state, task.status = "working", {"state": "working", "timestamp": "2026-01-01T00:00:00.000Z"}
    async with mesh.store.transaction() as tx:
        assert await tx.decide_approval(
            approval.id, status="approved", now=now, resolved_by="alice", surface="api", values={"decision": "approve"}
        )
        await tx.update_task(task)


async def test_interrupted_action_runs_once_at_next_start(tmp_path) -> None:
    async with start_airlock(tmp_path) as first:
        await first.add_policy()
        held = await first.hold()
        await crash_after_commit(first, held["id"])
        assert await first.executions() == 0
    async with start_airlock(tmp_path) as second:
        assert await second.mesh.resolver.recover() == 1
        assert await second.executions() == 1
        task = await second.mesh.store.get_task("default", held["id"])
        assert task is not None and task.state == "completed"
        assert await second.mesh.resolver.recover() == 0
        assert await second.executions() == 1


async def test_interrupted_action_with_sensitive_inputs_fails_instead_of_running_masked(airlock: Airlock) -> None:
    fields = [{"id": "password", "type": "password", "required": True}]
    await airlock.add_policy(
        {**GUIDE_POLICY, "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 10, "fields": fields}}}
    )
    held = await airlock.hold()
    await crash_after_commit(airlock, held["id"])
    assert await airlock.mesh.resolver.recover() == 1
    task = await airlock.mesh.store.get_task("default", held["id"])
    assert task is not None and task.state == "failed"
    assert "sensitive inputs are not kept" in task.status["message"]["parts"][0]["text"]
    assert await airlock.executions() == 0
