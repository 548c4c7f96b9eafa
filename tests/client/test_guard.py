"""The client against a real ``airlock serve``: every outcome a guarded call can have, the waits it must
survive, and the mistakes it must report at once. Every wait is bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from airlock.client import (
    ActionBlocked,
    ApprovalDenied,
    ApprovalExpired,
    AuthenticationError,
    DecisionTimeout,
    Guard,
    ServerUnavailable,
)
from tests.client.conftest import WAIT_S, Airlock, people
from tests.e2e import conftest as e2e

TWELVE = [f"/srv/data/{i:02d}.csv" for i in range(12)]


class Deleter:
    """A file-deleting tool that only records what it was asked to delete."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool]] = []

    async def delete_files(self, paths: list[str], dry_run: bool = False) -> int:
        self.calls.append((paths, dry_run))
        return len(paths)


async def test_an_allowed_call_runs_at_once(airlock: Airlock) -> None:
    guard = airlock.guard(timeout="10s")
    tool = Deleter()
    delete_files = guard.require_approval()(tool.delete_files)
    async with asyncio.timeout(WAIT_S):
        assert await delete_files(TWELVE[:2]) == 2
        decision = await guard.check("delete_files", {"paths": ["/tmp/x"]})
    assert tool.calls == [(TWELVE[:2], False)]
    assert decision.allowed and decision.outcome == "allowed" and decision.approved_by is None
    assert decision.arguments == {"paths": ["/tmp/x"]} and decision.task_id


async def test_a_held_call_runs_once_when_a_person_approves(airlock: Airlock) -> None:
    await airlock.policy("deletes", ["delete_files"])
    guard = airlock.guard(timeout="30s")
    tool = Deleter()
    delete_files = guard.require_approval()(tool.delete_files)
    async with asyncio.timeout(WAIT_S):
        call = asyncio.create_task(delete_files(TWELVE))
        (hold,) = await airlock.held()
        assert hold["tool"] == "delete_files" and not call.done() and tool.calls == []
        answer = await airlock.resolve(hold["message_id"], decision="approve")
        assert answer["new_state"] == "completed"
        assert await call == 12
    assert tool.calls == [(TWELVE, False)]  # once


async def test_check_reports_who_approved(airlock: Airlock) -> None:
    await airlock.policy("deletes", ["delete_files"])
    guard = airlock.guard(run_id="run-7", agent="cleanup-bot", timeout="30s")
    async with asyncio.timeout(WAIT_S):
        check = asyncio.create_task(guard.check("delete_files", {"paths": TWELVE}))
        (hold,) = await airlock.held()
        await airlock.resolve(hold["message_id"], decision="approve")
        decision = await check
    assert decision.allowed and decision.outcome == "approved" and decision.approved_by == "alice"
    assert decision.policy == "deletes" and decision.task_id == hold["message_id"] and decision.edited == ()


async def test_a_denial_raises_with_who_and_why(airlock: Airlock) -> None:
    await airlock.policy("deletes", ["delete_files"])
    tool = Deleter()
    delete_files = airlock.guard(timeout="30s").require_approval(tool="delete_files")(tool.delete_files)
    async with asyncio.timeout(WAIT_S):
        call = asyncio.create_task(delete_files(TWELVE))
        (hold,) = await airlock.held()
        await airlock.resolve(hold["message_id"], decision="deny", reason="not during the audit freeze")
        with pytest.raises(ApprovalDenied) as denied:
            await call
    assert denied.value.denied_by == "alice" and denied.value.reason == "not during the audit freeze"
    assert denied.value.task_id == hold["message_id"] and denied.value.policy == "deletes"
    assert "denied by alice: not during the audit freeze" in str(denied.value)
    assert tool.calls == []


async def test_an_approval_with_edits_runs_the_edited_call(airlock: Airlock) -> None:
    await airlock.policy("deletes", ["delete_files"], allow_edits=True)
    tool = Deleter()
    delete_files = airlock.guard(timeout="30s").require_approval()(tool.delete_files)
    async with asyncio.timeout(WAIT_S):
        call = asyncio.create_task(delete_files(TWELVE))
        (hold,) = await airlock.held()
        await airlock.resolve(hold["message_id"], decision="approve", arguments={"paths": TWELVE[:3], "dry_run": True})
        assert await call == 3
    assert tool.calls == [(TWELVE[:3], True)]


async def test_an_expired_hold_raises(airlock: Airlock) -> None:
    await airlock.policy("deletes", ["delete_files"], timeout="2s")
    tool = Deleter()
    delete_files = airlock.guard(timeout="30s").require_approval()(tool.delete_files)
    async with asyncio.timeout(WAIT_S):
        with pytest.raises(ApprovalExpired) as expired:
            await delete_files(TWELVE)
    assert expired.value.policy == "deletes" and tool.calls == []


async def test_a_blocked_call_raises_naming_the_policy(airlock: Airlock) -> None:
    await airlock.policy("no-deletes", ["delete_*"], enforcement="block")
    tool = Deleter()
    delete_files = airlock.guard(timeout="10s").require_approval()(tool.delete_files)
    async with asyncio.timeout(WAIT_S):
        with pytest.raises(ActionBlocked) as blocked:
            await delete_files(TWELVE)
    assert blocked.value.policy == "no-deletes" and "no-deletes" in str(blocked.value)
    assert tool.calls == []


async def test_the_wait_survives_a_server_restart(
    airlock: Airlock, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await airlock.policy("deletes", ["delete_files"])
    tool = Deleter()
    delete_files = airlock.guard(timeout="60s").require_approval()(tool.delete_files)
    async with asyncio.timeout(WAIT_S * 3):
        call = asyncio.create_task(delete_files(TWELVE))
        (hold,) = await airlock.held()
        await asyncio.to_thread(e2e.stop_server, airlock.server)
        await asyncio.sleep(1)  # the client finds the server gone and keeps trying
        assert not call.done()
        # the same home, on the same ports: the client knows only the mesh's URL
        ports = iter(int(url.rsplit(":", 1)[1]) for url in (airlock.mesh_url, airlock.server.gateway_url))
        monkeypatch.setattr(e2e, "free_port", lambda: next(ports))
        restarted = people(await asyncio.to_thread(e2e.start_server, home))
        airlock.server = restarted.server  # stopped by the fixture
        await restarted.resolve(hold["message_id"], decision="approve")
        assert await call == 12
    assert tool.calls == [(TWELVE, False)]


async def test_a_wrong_token_is_refused_at_once(airlock: Airlock) -> None:
    guard = Guard(airlock.mesh_url, "not-a-token", timeout="1h")
    tool = Deleter()
    async with asyncio.timeout(WAIT_S):
        with pytest.raises(AuthenticationError, match="refused the token"):
            await guard.check("delete_files", {"paths": TWELVE})
        with pytest.raises(AuthenticationError):
            await guard.require_approval()(tool.delete_files)(TWELVE)
    assert tool.calls == []


async def test_an_unreachable_server_is_reported_at_once() -> None:
    guard = Guard(f"http://127.0.0.1:{e2e.free_port()}", "token", timeout="1h")
    async with asyncio.timeout(WAIT_S):
        with pytest.raises(ServerUnavailable, match="could not talk to the mesh"):
            await guard.check("delete_files", {"paths": TWELVE})


async def test_the_guards_timeout_is_honoured_and_the_call_can_be_waited_on_again(airlock: Airlock) -> None:
    await airlock.policy("deletes", ["delete_files"])
    async with asyncio.timeout(WAIT_S):
        with pytest.raises(DecisionTimeout) as lapsed:
            await airlock.guard(timeout="1s").check("delete_files", {"paths": TWELVE})
        assert lapsed.value.task_id is not None and isinstance(lapsed.value, TimeoutError)
        (hold,) = await airlock.held()
        assert hold["message_id"] == lapsed.value.task_id  # still held on the server
        await airlock.resolve(hold["message_id"], decision="approve")
        decision = await airlock.guard(timeout="10s").wait(lapsed.value.task_id)
    assert decision.allowed and decision.approved_by == "alice" and decision.arguments == {"paths": TWELVE}


async def test_arguments_that_are_not_json_are_a_type_error_and_nothing_is_sent(airlock: Airlock) -> None:
    tool = Deleter()
    delete_files = airlock.guard(timeout="10s").require_approval()(tool.delete_files)
    async with asyncio.timeout(WAIT_S):
        with pytest.raises(TypeError, match=r"argument 'paths' of Deleter.delete_files\(\).*PosixPath"):
            await delete_files([Path("/srv/data/a.csv")])
        with pytest.raises(TypeError, match="JSON"):
            await airlock.guard().check("delete_files", {"paths": {1: "a"}})
        with pytest.raises(TypeError, match="nan"):
            await airlock.guard().check("delete_files", {"ratio": float("nan")})
        assert await airlock.task_count() == 0
    assert tool.calls == []


async def test_the_sync_wrapper_and_a_sync_decorated_function(airlock: Airlock) -> None:
    await airlock.policy("deletes", ["remove_tree"])
    guard = airlock.guard(timeout="30s")
    ran: list[str] = []

    @guard.require_approval
    def remove_tree(path: str, *, force: bool = False) -> str:
        ran.append(path)
        return f"removed {path}"

    async with asyncio.timeout(WAIT_S):
        allowed = await asyncio.to_thread(guard.check_sync, "list_files", {"path": "/srv"})
        assert allowed.allowed and allowed.outcome == "allowed"
        call = asyncio.create_task(asyncio.to_thread(remove_tree, "/srv/data"))
        (hold,) = await airlock.held()
        assert hold["tool"] == "remove_tree"  # the sync function's call, as it was held
        await airlock.resolve(hold["message_id"], decision="approve")
        assert await call == "removed /srv/data"
    assert ran == ["/srv/data"]
    # called from inside a running loop, the sync wrapper runs its check on a thread of its own
    assert guard.check_sync("list_files", {"path": "/srv"}).allowed


async def test_wait_false_returns_the_held_task_and_push_tells_the_outcome(tmp_path: Path) -> None:
    from aiohttp import web

    received: asyncio.Queue[tuple[str | None, dict[str, Any]]] = asyncio.Queue()

    async def push(request: web.Request) -> web.Response:
        await received.put((request.headers.get("X-A2A-Notification-Token"), await request.json()))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/push", push)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = e2e.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server = e2e.start_server(tmp_path / "home", "--push-allow-private")
    try:
        airlock = people(server)
        await airlock.policy("deletes", ["delete_files"])
        guard = airlock.guard(timeout="30s")
        async with asyncio.timeout(WAIT_S):
            decision = await guard.check(
                "delete_files",
                {"paths": TWELVE},
                wait=False,
                push_url=f"http://127.0.0.1:{port}/push",
                push_token="t-1",
            )
            assert decision.pending and not decision.allowed and decision.outcome == "held"
            await airlock.resolve(decision.task_id, decision="approve")
            while True:
                token, task = await received.get()
                if task["status"]["state"] == "completed":
                    break
            assert token == "t-1" and task["id"] == decision.task_id
            outcome = await guard.wait(decision.task_id)
        assert outcome.allowed and outcome.approved_by == "alice" and outcome.arguments == {"paths": TWELVE}
    finally:
        e2e.stop_server(server)
        await runner.cleanup()
