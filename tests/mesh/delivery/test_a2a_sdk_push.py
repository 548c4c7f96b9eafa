"""The real a2a-sdk client manages push configs on the mesh, and the mesh delivers to them: a calling
agent learns through push that its held task was approved."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from aiohttp.test_utils import TestServer, unused_port

from mesh.a2a.app import create_mesh_app
from tests.conftest import GUIDE_TEXT, bearer, start_airlock


async def test_sdk_client_push_configs_and_delivery_after_approval(tmp_path: Path) -> None:
    from a2a.client import ClientConfig, ClientFactory
    from a2a.types import a2a_pb2 as pb

    received: list[tuple[str | None, dict[str, Any]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-A2A-Notification-Token"), await request.json()))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    hook_server = TestServer(receiver, host="127.0.0.1", port=unused_port())
    await hook_server.start_server()
    hook_url = str(hook_server.make_url("/hook"))

    async with start_airlock(tmp_path, auth=False) as airlock:
        await airlock.add_policy()
        port = unused_port()
        url = f"http://127.0.0.1:{port}/"
        served = TestServer(create_mesh_app(airlock.mesh, None, url), host="127.0.0.1", port=port)
        await served.start_server()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                client = await ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create_from_url(url)
                assert client._card.capabilities.push_notifications
                sent = [
                    r
                    async for r in client.send_message(
                        pb.SendMessageRequest(
                            message=pb.Message(message_id="m-1", role=pb.ROLE_USER, parts=[pb.Part(text=GUIDE_TEXT)])
                        )
                    )
                ]
                task = sent[0].task
                assert task.status.state == pb.TASK_STATE_INPUT_REQUIRED

                made = await client.create_task_push_notification_config(
                    pb.TaskPushNotificationConfig(task_id=task.id, id="waiter", url=hook_url, token="tok-1")
                )
                assert made.id == "waiter" and made.url == hook_url
                got = await client.get_task_push_notification_config(
                    pb.GetTaskPushNotificationConfigRequest(task_id=task.id, id="waiter")
                )
                assert got.url == hook_url and got.token == "tok-1"
                listed = await client.list_task_push_notification_configs(
                    pb.ListTaskPushNotificationConfigsRequest(task_id=task.id)
                )
                assert [c.id for c in listed.configs] == ["waiter"]

                # A person approves through the gateway; the waiting agent hears of it by push.
                resp = await airlock.resolve(task.id, {"decision": "approve"}, headers=bearer())
                assert resp.status == 200
                for _ in range(100):
                    if any(body["status"]["state"] == "completed" for _, body in received):
                        break
                    await asyncio.sleep(0.05)
                states = [body["status"]["state"] for _, body in received]
                assert "completed" in states and "working" in states
                assert all(token == "tok-1" for token, _ in received)
                assert all(body["id"] == task.id for _, body in received)

                await client.delete_task_push_notification_config(
                    pb.DeleteTaskPushNotificationConfigRequest(task_id=task.id, id="waiter")
                )
                listed = await client.list_task_push_notification_configs(
                    pb.ListTaskPushNotificationConfigsRequest(task_id=task.id)
                )
                assert list(listed.configs) == []
                await client.close()
        finally:
            await served.close()
            await hook_server.close()
