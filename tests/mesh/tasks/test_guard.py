"""Guard mode: a tool call as a DataPart gets the policy's decision (allow, block, or a hold)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Airlock, bearer, tool_message

EXEC_CALL = ("exec", {"command": "ls"})


def policy(enforcement: str, name: str = "exec_guard", tools: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "description": "exec calls",
        "scope_type": "tool",
        "enforcement": enforcement,
        "evaluator": {"plugin": "tool_match", "config": {"tools": tools or ["exec"]}},
    }


def decision_data(task: dict[str, Any]) -> dict[str, Any]:
    parts = task["status"]["message"]["parts"]
    data = [p for p in parts if p["kind"] == "data"]
    assert data, parts
    return data[0]["data"]


async def test_no_policy_allows(airlock: Airlock) -> None:
    reply = await airlock.rpc(tool_message(*EXEC_CALL, request_id="g1"))
    assert reply["id"] == "g1"
    task = reply["result"]
    assert task["kind"] == "task"
    assert task["status"]["state"] == "completed"
    data = decision_data(task)
    assert data["decision"] == "allow"
    assert data["tool"] == "exec"
    assert await airlock.executions() == 0


async def test_allow_policy_names_itself(airlock: Airlock) -> None:
    await airlock.add_policy(policy("allow", name="exec_ok"))
    task = (await airlock.rpc(tool_message(*EXEC_CALL)))["result"]
    assert task["status"]["state"] == "completed"
    assert decision_data(task)["decision"] == "allow"


async def test_block_policy_rejects_and_names_the_policy(airlock: Airlock) -> None:
    await airlock.add_policy(policy("block", name="no_exec"))
    task = (await airlock.rpc(tool_message(*EXEC_CALL)))["result"]
    assert task["status"]["state"] == "rejected"
    message = task["status"]["message"]
    text = " ".join(p.get("text", "") for p in message["parts"])
    assert "no_exec" in text
    reply = await airlock.rpc({"jsonrpc": "2.0", "id": 1, "method": "tasks/cancel", "params": {"id": task["id"]}})
    assert reply["error"]["code"] == -32002


async def test_block_policy_on_other_tool_allows_exec(airlock: Airlock) -> None:
    await airlock.add_policy(policy("block", name="no_rm", tools=["rm*"]))
    task = (await airlock.rpc(tool_message(*EXEC_CALL)))["result"]
    assert task["status"]["state"] == "completed"
    blocked = (await airlock.rpc(tool_message("rm_rf", {"path": "/"})))["result"]
    assert blocked["status"]["state"] == "rejected"


async def test_require_approval_holds_then_completes_on_approve(airlock: Airlock) -> None:
    await airlock.add_policy(policy("require_approval", name="exec_ask"))
    task = (await airlock.rpc(tool_message(*EXEC_CALL)))["result"]
    assert task["status"]["state"] == "input-required"
    form = task["status"]["message"]["parts"][0]
    assert form["kind"] == "data" and form["data"]["type"] == "Form"
    listing = await (await airlock.gateway.post("/messages/pending", json={}, headers=bearer())).json()
    assert [m["message_id"] for m in listing["messages"]] == [task["id"]]
    assert listing["messages"][0]["tool"] == "exec"
    resp = await airlock.resolve(task["id"], {"decision": "approve"}, bearer("carol", "approver"))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["new_state"] == "completed"
    got = (await airlock.rpc({"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"]}}))[
        "result"
    ]
    assert got["status"]["state"] == "completed"
    data = decision_data(got)
    assert data["decision"] == "allow" and data["tool"] == "exec"
    assert await airlock.executions() == 0


async def test_require_approval_deny_rejects(airlock: Airlock) -> None:
    await airlock.add_policy(policy("require_approval", name="exec_ask"))
    task = (await airlock.rpc(tool_message(*EXEC_CALL)))["result"]
    resp = await airlock.resolve(task["id"], {"decision": "deny"})
    assert resp.status == 200
    got = (await airlock.rpc({"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task["id"]}}))[
        "result"
    ]
    assert got["status"]["state"] == "rejected"


async def test_guard_caller_with_agent_role_cannot_approve_own_hold(airlock: Airlock) -> None:
    await airlock.add_policy(policy("require_approval", name="exec_ask"))
    me = bearer("bot", "agent", "approver")
    task = (await airlock.rpc(tool_message(*EXEC_CALL), me))["result"]
    resp = await airlock.resolve(task["id"], {"decision": "approve"}, me)
    assert resp.status == 403
    listing = await (await airlock.gateway.post("/messages/pending", json={}, headers=bearer())).json()
    assert [m["message_id"] for m in listing["messages"]] == [task["id"]]


async def test_a_call_decided_at_once_keeps_its_history_in_its_task_and_reads_it_back(airlock: Airlock) -> None:
    """An allowed and a blocked call end in their first turn: each task is written as one row with its
    history, and tasks/get and tasks/list give that history as they give any task's."""
    await airlock.add_policy(policy("block", name="no_rm", tools=["rm"]))
    allowed = (await airlock.rpc(tool_message(*EXEC_CALL)))["result"]
    blocked = (await airlock.rpc(tool_message("rm", {"path": "/"})))["result"]
    rows = await airlock.mesh.store._all("SELECT COUNT(*) FROM history")  # type: ignore[attr-defined]
    assert rows[0][0] == 0
    for task, state in ((allowed, "completed"), (blocked, "rejected")):
        got = await airlock.rpc(
            {"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task["id"], "historyLength": 10}}
        )
        history = got["result"]["history"]
        assert [m["role"] for m in history] == ["user", "agent"]
        assert history[0]["parts"][0]["data"]["tool"] in ("exec", "rm")
        assert history[1] == task["status"]["message"]
        assert got["result"]["status"]["state"] == state
        last = await airlock.rpc(
            {"jsonrpc": "2.0", "id": "g", "method": "tasks/get", "params": {"id": task["id"], "historyLength": 1}}
        )
        assert last["result"]["history"] == history[-1:]
    listed = await airlock.rpc({"jsonrpc": "2.0", "id": "l", "method": "ListTasks", "params": {"historyLength": 5}})
    tasks = listed["result"]["tasks"]
    assert len(tasks) == 2 and all(len(t["history"]) == 2 for t in tasks)
