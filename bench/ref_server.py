"""Baseline: the a2a-sdk reference server (Starlette JSON-RPC routes under uvicorn, in-memory task store,
an echo agent executor, no auth). ``python -m bench.ref_server --port N``."""

from __future__ import annotations

import argparse
import logging

import uvicorn
from a2a.helpers import new_task_from_user_message, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from starlette.applications import Starlette


class EchoExecutor(AgentExecutor):
    """Completes every task at once, echoing the message's text."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        assert message is not None
        task = context.current_task or new_task_from_user_message(message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        text = " ".join(p.text for p in message.parts if p.HasField("text")) or "ok"
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.complete(new_text_message(f"echo: {text}", context_id=task.context_id, task_id=task.id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


def build_app(port: int) -> Starlette:
    card = AgentCard(
        name="echo",
        description="echo agent (benchmark baseline)",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"http://127.0.0.1:{port}/", protocol_binding="JSONRPC", protocol_version="0.3")
        ],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text", "application/json"],
        default_output_modes=["text"],
        skills=[AgentSkill(id="echo", name="echo", description="echoes the message", tags=["echo"])],
    )
    handler = DefaultRequestHandler(agent_executor=EchoExecutor(), task_store=InMemoryTaskStore(), agent_card=card)
    return Starlette(routes=create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(build_app(args.port), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
