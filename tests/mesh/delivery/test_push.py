"""A2A push notifications: the config methods over JSON-RPC, and delivery to a real HTTP receiver."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mesh.delivery import outbox
from mesh.delivery.push import RefusedUrl, check_url
from tests.conftest import GUIDE_POLICY, Airlock, bearer, guide_message, listening, start_airlock, tool_message

TOKEN = "client-token-123"


class Receiver:
    """An HTTP endpoint that records every POST (headers and JSON body) and answers 503 ``failures`` times."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any], int]] = []
        self.failures = 0
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        status = 200
        if self.failures > 0:
            self.failures -= 1
            status = 503
        self.posts.append((dict(request.headers), body, status))
        return web.Response(status=status)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    def delivered(self, task_id: str | None = None) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(h, b) for h, b, s in self.posts if s == 200 and (task_id is None or b.get("id") == task_id)]

    def states(self, task_id: str) -> list[str]:
        return [b["status"]["state"] for _, b in self.delivered(task_id)]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with listening(Receiver()) as rec:
        yield rec


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        await asyncio.sleep(0.05)


def rpc(method: str, params: dict[str, Any], request_id: str = "1") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def with_push(body: dict[str, Any], url: str, token: str | None = TOKEN, **config: Any) -> dict[str, Any]:
    push = {"url": url, **config}
    if token is not None:
        push["token"] = token
    body["params"]["configuration"] = {"pushNotificationConfig": push}
    return body


def outbox_rows(home: Path) -> list[tuple[int, str | None, float | None]]:
    with sqlite3.connect(home / "airlock.db") as db:
        return db.execute(
            "SELECT attempts, last_error, delivered_at FROM outbox WHERE kind = 'push' ORDER BY id"
        ).fetchall()


def push_config_count(home: Path) -> int:
    with sqlite3.connect(home / "airlock.db") as db:
        return db.execute("SELECT COUNT(*) FROM push_configs").fetchone()[0]


async def held_task(airlock: Airlock) -> dict[str, Any]:
    await airlock.add_policy()
    return await airlock.hold()


# --- the config methods -----------------------------------------------------------------------------------


async def test_set_get_list_delete_shapes(airlock: Airlock) -> None:
    task = await held_task(airlock)
    url = "http://127.0.0.1:9/first"
    made = await airlock.rpc(
        rpc("tasks/pushNotificationConfig/set", {"taskId": task["id"], "pushNotificationConfig": {"url": url}})
    )
    result = made["result"]
    assert result["taskId"] == task["id"]
    assert result["pushNotificationConfig"]["url"] == url
    first_id = result["pushNotificationConfig"]["id"]
    assert isinstance(first_id, str) and first_id

    mine = {"id": "mine", "url": "http://127.0.0.1:9/second", "token": TOKEN}
    second = await airlock.rpc(
        rpc("tasks/pushNotificationConfig/set", {"taskId": task["id"], "pushNotificationConfig": mine})
    )
    assert second["result"] == {"taskId": task["id"], "pushNotificationConfig": mine}

    for params in ({"id": task["id"]}, {"id": task["id"], "pushNotificationConfigId": None}):
        got = await airlock.rpc(rpc("tasks/pushNotificationConfig/get", params))
        assert got["result"] == result, params
    got = await airlock.rpc(
        rpc("tasks/pushNotificationConfig/get", {"id": task["id"], "pushNotificationConfigId": "mine"})
    )
    assert got["result"] == second["result"]

    listed = await airlock.rpc(rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}))
    assert listed["result"] == [result, second["result"]]

    deleted = await airlock.rpc(
        rpc("tasks/pushNotificationConfig/delete", {"id": task["id"], "pushNotificationConfigId": "mine"})
    )
    assert "error" not in deleted and deleted["result"] is None
    listed = await airlock.rpc(rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}))
    assert listed["result"] == [result]

    replaced = {"id": first_id, "url": "http://127.0.0.1:9/moved"}
    await airlock.rpc(
        rpc("tasks/pushNotificationConfig/set", {"taskId": task["id"], "pushNotificationConfig": replaced})
    )
    listed = await airlock.rpc(rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}))
    assert listed["result"] == [{"taskId": task["id"], "pushNotificationConfig": replaced}]


async def test_list_of_a_task_without_configs_is_empty(airlock: Airlock) -> None:
    task = await held_task(airlock)
    listed = await airlock.rpc(rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}))
    assert listed["result"] == []


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("tasks/pushNotificationConfig/set", {"taskId": "nope", "pushNotificationConfig": {"url": "http://a.b/"}}),
        ("tasks/pushNotificationConfig/get", {"id": "nope"}),
        ("tasks/pushNotificationConfig/list", {"id": "nope"}),
        ("tasks/pushNotificationConfig/delete", {"id": "nope", "pushNotificationConfigId": "c"}),
    ],
)
async def test_unknown_task_is_task_not_found(airlock: Airlock, method: str, params: dict[str, Any]) -> None:
    reply = await airlock.rpc(rpc(method, params))
    assert reply["error"]["code"] == -32001, reply


async def test_another_tenants_task_is_not_found(airlock: Airlock) -> None:
    task = await held_task(airlock)
    other = bearer("mallory", tenant="other")
    config = {"url": "http://127.0.0.1:9/x"}
    for body in (
        rpc("tasks/pushNotificationConfig/set", {"taskId": task["id"], "pushNotificationConfig": config}),
        rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}),
        rpc("tasks/pushNotificationConfig/get", {"id": task["id"]}),
    ):
        reply = await airlock.rpc(body, other)
        assert reply["error"]["code"] == -32001, reply
    listed = await airlock.rpc(rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}))
    assert listed["result"] == []


@pytest.mark.parametrize(
    "config",
    [
        {"url": "ftp://127.0.0.1/hook"},
        {"url": "not a url"},
        {"url": "http:///no-host"},
        {"url": "http://127.0.0.1:99999/bad-port"},
        {"token": "no url"},
        "http://127.0.0.1:9/not-an-object",
    ],
)
async def test_set_with_a_bad_url_is_invalid_params(airlock: Airlock, config: Any) -> None:
    task = await held_task(airlock)
    reply = await airlock.rpc(
        rpc("tasks/pushNotificationConfig/set", {"taskId": task["id"], "pushNotificationConfig": config})
    )
    assert reply["error"]["code"] == -32602, reply
    listed = await airlock.rpc(rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}))
    assert listed["result"] == []


async def test_get_of_a_missing_config_and_delete_without_id_are_invalid_params(airlock: Airlock) -> None:
    task = await held_task(airlock)
    reply = await airlock.rpc(rpc("tasks/pushNotificationConfig/get", {"id": task["id"]}))
    assert reply["error"]["code"] == -32602
    reply = await airlock.rpc(
        rpc("tasks/pushNotificationConfig/get", {"id": task["id"], "pushNotificationConfigId": "nope"})
    )
    assert reply["error"]["code"] == -32602
    reply = await airlock.rpc(rpc("tasks/pushNotificationConfig/delete", {"id": task["id"]}))
    assert reply["error"]["code"] == -32602


# --- delivery ---------------------------------------------------------------------------------------------


async def test_send_with_push_config_notifies_the_first_state_with_the_token(
    airlock: Airlock, receiver: Receiver
) -> None:
    reply = await airlock.rpc(with_push(tool_message("read_file", {"path": "/tmp/x"}), receiver.url))
    task = reply["result"]
    assert task["status"]["state"] == "completed"
    await eventually(lambda: receiver.delivered(task["id"]) != [])
    headers, body = receiver.delivered(task["id"])[0]
    assert headers["X-A2A-Notification-Token"] == TOKEN
    assert headers["Content-Type"].startswith("application/json")
    got = await airlock.rpc(rpc("tasks/get", {"id": task["id"], "historyLength": 0}))
    assert body == got["result"]
    assert "history" not in body
    listed = await airlock.rpc(rpc("tasks/pushNotificationConfig/list", {"id": task["id"]}))
    assert [c["pushNotificationConfig"]["url"] for c in listed["result"]] == [receiver.url]


async def test_no_token_no_header(airlock: Airlock, receiver: Receiver) -> None:
    reply = await airlock.rpc(with_push(tool_message("read_file", {}), receiver.url, token=None))
    task_id = reply["result"]["id"]
    await eventually(lambda: receiver.delivered(task_id) != [])
    assert "X-A2A-Notification-Token" not in receiver.delivered(task_id)[0][0]


async def test_held_task_approved_notifies_working_and_completed(airlock: Airlock, receiver: Receiver) -> None:
    await airlock.add_policy()
    reply = await airlock.rpc(with_push(guide_message(), receiver.url))
    task = reply["result"]
    assert task["status"]["state"] == "input-required"
    await eventually(lambda: receiver.states(task["id"]) == ["input-required"])

    resp = await airlock.resolve(task["id"], {"decision": "approve"})
    assert resp.status == 200, await resp.text()
    await eventually(lambda: sorted(receiver.states(task["id"])) == ["completed", "input-required", "working"])
    for headers, body in receiver.delivered(task["id"]):
        assert headers["X-A2A-Notification-Token"] == TOKEN
        assert body["kind"] == "task" and body["id"] == task["id"] and body["contextId"] == task["contextId"]
    working = next(b for _, b in receiver.delivered(task["id"]) if b["status"]["state"] == "working")
    assert "Approved by" in working["status"]["message"]["parts"][0]["text"]  # the status that change wrote


async def test_set_on_an_existing_task_notifies_its_next_change(airlock: Airlock, receiver: Receiver) -> None:
    task = await held_task(airlock)
    config = {"url": receiver.url, "token": TOKEN}
    await airlock.rpc(rpc("tasks/pushNotificationConfig/set", {"taskId": task["id"], "pushNotificationConfig": config}))
    canceled = await airlock.rpc(rpc("tasks/cancel", {"id": task["id"]}))
    assert canceled["result"]["status"]["state"] == "canceled"
    await eventually(lambda: receiver.states(task["id"]) == ["canceled"])


async def test_deleted_config_is_not_notified(airlock: Airlock, receiver: Receiver) -> None:
    task = await held_task(airlock)
    for config_id in ("kept", "gone"):
        config = {"id": config_id, "url": f"{receiver.url}?c={config_id}"}
        await airlock.rpc(
            rpc("tasks/pushNotificationConfig/set", {"taskId": task["id"], "pushNotificationConfig": config})
        )
    await airlock.rpc(
        rpc("tasks/pushNotificationConfig/delete", {"id": task["id"], "pushNotificationConfigId": "gone"})
    )
    await airlock.rpc(rpc("tasks/cancel", {"id": task["id"]}))
    await eventually(lambda: receiver.states(task["id"]) == ["canceled"])
    await asyncio.sleep(0.3)
    assert receiver.states(task["id"]) == ["canceled"]


async def test_a_failing_receiver_is_retried(airlock: Airlock, receiver: Receiver) -> None:
    receiver.failures = 1
    reply = await airlock.rpc(with_push(tool_message("read_file", {}), receiver.url))
    task_id = reply["result"]["id"]
    await eventually(lambda: receiver.states(task_id) == ["completed"])
    assert [s for _, _, s in receiver.posts] == [503, 200]
    assert receiver.posts[0][1] == receiver.posts[1][1]


async def test_a_retry_sends_the_state_its_change_wrote(airlock: Airlock, receiver: Receiver) -> None:
    await airlock.add_policy()
    receiver.failures = 1
    task = (await airlock.rpc(with_push(guide_message(), receiver.url)))["result"]
    await eventually(lambda: len(receiver.posts) == 1)
    resp = await airlock.resolve(task["id"], {"decision": "deny"})
    assert resp.status == 200, await resp.text()
    await eventually(lambda: sorted(receiver.states(task["id"])) == ["input-required", "rejected"])
    retried = [b for _, b, s in receiver.posts if s == 200 and b["status"]["state"] == "input-required"]
    assert retried == [receiver.posts[0][1]]


async def test_failed_turn_of_a_new_task_leaves_no_config(airlock: Airlock, receiver: Receiver) -> None:
    body = with_push(guide_message(), receiver.url)
    body["params"]["message"]["metadata"] = {"agent": "no-such-agent"}
    reply = await airlock.rpc(body)
    assert reply["error"]["code"] == -32602
    assert push_config_count(airlock.home) == 0


async def test_undelivered_row_is_sent_after_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    receiver.failures = 1000
    async with start_airlock(tmp_path) as first:
        reply = await first.rpc(with_push(tool_message("read_file", {}), receiver.url))
        task_id = reply["result"]["id"]
        await eventually(lambda: [r[0] for r in outbox_rows(tmp_path)] == [1])
    assert receiver.delivered() == []
    assert outbox_rows(tmp_path)[0][2] is None  # written, tried, not delivered
    receiver.failures = 0
    async with start_airlock(tmp_path):
        await eventually(lambda: receiver.states(task_id) == ["completed"])
        await eventually(lambda: outbox_rows(tmp_path)[0][2] is not None)


# --- the address guard ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://240.0.0.1/hook",
        "https://100.64.0.1/hook",
    ],
)
async def test_private_addresses_are_refused_at_set(tmp_path: Path, url: str) -> None:
    async with start_airlock(tmp_path, push_allow_private=False) as airlock:
        task = await held_task(airlock)
        reply = await airlock.rpc(
            rpc("tasks/pushNotificationConfig/set", {"taskId": task["id"], "pushNotificationConfig": {"url": url}})
        )
        assert reply["error"]["code"] == -32602, reply
        assert "public addresses" in reply["error"]["message"]
        assert push_config_count(tmp_path) == 0


async def test_send_with_a_private_push_url_is_refused_before_any_task(tmp_path: Path, receiver: Receiver) -> None:
    async with start_airlock(tmp_path, push_allow_private=False) as airlock:
        await airlock.add_policy(GUIDE_POLICY)
        reply = await airlock.rpc(with_push(guide_message(), receiver.url))
        assert reply["error"]["code"] == -32602, reply
        _, total = await airlock.mesh.store.list_tasks("default")
        assert total == 0 and push_config_count(tmp_path) == 0


async def test_public_address_passes_the_guard() -> None:
    await check_url("https://93.184.216.34/hook", allow_private=False)
    await check_url("http://[2606:4700:4700::1111]:8443/hook", allow_private=False)
    await check_url("http://127.0.0.1:9/hook", allow_private=True)
    with pytest.raises(RefusedUrl):
        await check_url("file:///etc/passwd", allow_private=True)


async def test_private_url_is_refused_again_at_send_time(airlock: Airlock, receiver: Receiver) -> None:
    task = await held_task(airlock)
    config = {"url": receiver.url, "token": TOKEN}
    await airlock.rpc(rpc("tasks/pushNotificationConfig/set", {"taskId": task["id"], "pushNotificationConfig": config}))
    airlock.mesh.config.push_allow_private = False
    await airlock.rpc(rpc("tasks/cancel", {"id": task["id"]}))
    await eventually(lambda: any(r[1] and "refused" in r[1] for r in outbox_rows(airlock.home)))
    assert receiver.posts == []


async def test_only_a_change_that_queued_a_push_wakes_the_push_worker(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change of a task nobody follows (most of them) must not cost the worker a look at the outbox."""
    monkeypatch.setattr(outbox, "POLL_S", 60.0)  # no polling while the test runs: only wakes
    async with start_airlock(tmp_path) as airlock:
        store = airlock.mesh.store
        claims: list[tuple[str, ...]] = []
        real_claim = store.claim_outbox

        async def counted(now: float, *args: Any, **kwargs: Any) -> Any:
            claims.append(tuple(kwargs.get("kinds", ())))
            return await real_claim(now, *args, **kwargs)

        monkeypatch.setattr(store, "claim_outbox", counted)
        for i in range(20):
            reply = await airlock.rpc(tool_message("read_file", {"path": f"/tmp/{i}"}))
            assert reply["result"]["status"]["state"] == "completed"
        followed = await airlock.rpc(with_push(tool_message("read_file", {}), receiver.url))
        await eventually(lambda: receiver.delivered(followed["result"]["id"]) != [])  # woken, promptly
        assert claims == [("push",)]
