"""The demo agent ``staging-db``: a small staging database with expired records to clean up.

It exists so the approvals guide can be followed against a local server: asking it to delete expired
records plans ``bulk_delete_expired`` over every expired id (42 after each start), which the guide's
``bulk_operation`` policy holds. Each start of the agent puts the records back as seeded (42 expired, 8
current), so the guide can be replayed by restarting the server. Every run of a tool is logged in
``executions`` (kept across starts: an approved action finished after a restart still runs only once).
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiosqlite

from a2ui import form_part, make_form
from mesh.policy import Action
from mesh.wire.models import Message, TaskState

from .base import Agent, Execution, Plan, Reply, TurnContext, text_reply

CONNECT_PRODUCTION = re.compile(r"\bconnect\b.*\bproduction\b.*\bdatabase\b", re.IGNORECASE | re.DOTALL)
CREDENTIALS_FORM = make_form(
    "Production database credentials",
    "staging-db needs credentials to connect to the production database.",
    [
        {"id": "username", "type": "email", "label": "Username", "required": True},
        {"id": "password", "type": "password", "label": "Password", "required": True},
        {"id": "remember_me", "type": "checkbox", "label": "Remember me"},
    ],
)
DELETE_EXPIRED = re.compile(r"\bdelete\b.*\bexpired\b", re.IGNORECASE | re.DOTALL)
EXPIRED_AT_START = 42
CURRENT_AT_START = 8
DAY = 86400.0


def seed_rows(now: float) -> list[tuple[str, str, float]]:
    """The records as every start leaves them: ``EXPIRED_AT_START`` expired, ``CURRENT_AT_START`` current."""
    rows = [(f"rec-{i:03d}", f"expired record {i}", now - DAY * (i + 1)) for i in range(EXPIRED_AT_START)]
    rows += [
        (f"rec-{EXPIRED_AT_START + i:03d}", f"current record {i}", now + DAY * 365) for i in range(CURRENT_AT_START)
    ]
    return rows


def _credentials(message: Message) -> tuple[str, bool] | None:
    """(username, remember_me) from an answer to the credentials form; the password is used, never echoed."""
    for part in message.data_parts():
        data = part.data
        if isinstance(data.get("username"), str) and "password" in data:
            return data["username"], bool(data.get("remember_me"))
    return None


class StagingDbAgent(Agent):
    name = "staging-db"
    description = "Maintains the staging database: finds and deletes expired records."

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._write = asyncio.Lock()  # one connection: keep two runs' statements from interleaving

    def skills(self) -> list[dict[str, Any]]:
        return [
            {
                "id": "bulk_delete_expired",
                "name": "Delete expired records",
                "description": "Deletes every expired record from the staging database.",
                "tags": ["database", "cleanup"],
                "examples": ["Delete all expired records from the staging database"],
            }
        ]

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA busy_timeout=10000")
        await self._db.execute(
            "CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, name TEXT NOT NULL, expires_at REAL NOT NULL)"
        )
        await self._db.execute(
            "CREATE TABLE IF NOT EXISTS executions (seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL, "
            "tool TEXT NOT NULL, affected INTEGER NOT NULL, at REAL NOT NULL)"
        )
        # replicas on one home may start together: each reseeds in one transaction, so the table is never
        # seen half-filled
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            await self._db.execute("DELETE FROM records")
            await self._db.executemany("INSERT INTO records VALUES (?, ?, ?)", seed_rows(time.time()))
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise

    async def stop(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _expired_ids(self) -> list[str]:
        assert self._db is not None
        cur = await self._db.execute("SELECT id FROM records WHERE expires_at <= ? ORDER BY id", (time.time(),))
        return [row[0] for row in await cur.fetchall()]

    async def plan(self, message: Message, ctx: TurnContext) -> Plan:
        answer = _credentials(message)
        if answer is not None:  # the values a person entered in the credentials form
            username, remember = answer
            memory = "will remember you" if remember else "will not remember you"
            return Plan(
                reply=text_reply(TaskState.COMPLETED, f"Connected to the production database as {username}; {memory}.")
            )
        if CONNECT_PRODUCTION.search(message.text()):
            return Plan(reply=Reply(state=TaskState.INPUT_REQUIRED, parts=[form_part(CREDENTIALS_FORM)]))
        for part in message.data_parts():
            if part.data.get("tool") == "bulk_delete_expired":
                items = (part.data.get("arguments") or {}).get("items")
                if items is not None and not (isinstance(items, list) and all(isinstance(i, str) for i in items)):
                    raise ValueError("arguments.items must be a list of record ids")
                items = items or await self._expired_ids()
                return Plan(action=self._action(items, message.text()))
        text = message.text()
        if DELETE_EXPIRED.search(text):
            return Plan(action=self._action(await self._expired_ids(), text))
        echo = f"staging-db heard: {text}" if text else "staging-db is listening."
        return Plan(reply=text_reply(TaskState.INPUT_REQUIRED, echo))

    def _action(self, items: list[str], text: str) -> Action:
        return Action(
            agent=self.name,
            tool="bulk_delete_expired",
            arguments={"items": list(items), "database": "staging"},
            text=text,
        )

    async def execute(self, execution: Execution, ctx: TurnContext) -> Reply:
        action = execution.action
        if action.tool != "bulk_delete_expired":
            return text_reply(TaskState.FAILED, f"staging-db has no tool {action.tool!r}")
        assert self._db is not None
        items = [str(i) for i in action.arguments.get("items", [])]
        async with self._write:
            deleted = await self._delete(items, ctx.task_id)
        summary = f"Deleted {deleted} expired records from the staging database."
        shown = {k: v for k, v in execution.values.items() if k != "decision" and k not in execution.sensitive}
        if shown:
            summary += " Inputs: " + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) + "."
        artifact = {
            "artifactId": f"{ctx.task_id}-result",
            "name": "bulk_delete_expired result",
            "parts": [{"kind": "text", "text": summary}, {"kind": "data", "data": {"deleted": deleted}}],
        }
        return text_reply(TaskState.COMPLETED, summary, [artifact])

    async def _delete(self, items: list[str], task_id: str) -> int:
        assert self._db is not None
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            cur = await self._db.execute("SELECT affected FROM executions WHERE task_id = ?", (task_id,))
            done = await cur.fetchone()
            if done is not None:  # already ran for this task: running it again must change nothing
                await self._db.execute("COMMIT")
                return int(done[0])
            deleted = 0
            for start in range(0, len(items), 500):
                chunk = items[start : start + 500]
                marks = ",".join("?" for _ in chunk)
                cur = await self._db.execute(
                    f"DELETE FROM records WHERE id IN ({marks}) AND expires_at <= ?", [*chunk, time.time()]
                )
                deleted += cur.rowcount
            await self._db.execute(
                "INSERT INTO executions (task_id, tool, affected, at) VALUES (?, ?, ?, ?)",
                (task_id, "bulk_delete_expired", deleted, time.time()),
            )
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise
        return deleted
