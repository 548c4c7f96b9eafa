"""The resolve path's test harness: services built from a core over a real SQLite file, no HTTP.

The runner is the protocol approvals are handed instead of the turn code; here it only records what it
was asked to run, so each test can say exactly how often an approved action ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mesh.approvals.expiry import Expiry
from mesh.approvals.holds import Holds
from mesh.approvals.resolve import Resolver
from mesh.auth import Principal
from mesh.core.config import MeshConfig
from mesh.core.kernel import Core
from mesh.core.taskstate import new_task
from mesh.policy import Action, Decision, Enforcement, Policy, ScopeType
from mesh.store import ApprovalRecord, TaskRecord
from mesh.store.sqlite import SQLiteStore

KEY = b"k" * 32
BOT = Principal(sub="bot", tenant="default", roles=frozenset({"agent"}))
ALICE = Principal(sub="alice", tenant="default", roles=frozenset({"approver"}))
BOB = Principal(sub="bob", tenant="default", roles=frozenset({"approver"}))


@dataclass
class RecordingRunner:
    approved: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answered: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    async def run_approved(self, task: TaskRecord, approval: ApprovalRecord, values: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # a real action yields too: racing resolvers interleave here
        self.approved.append((approval.id, values))

    async def answer_turn(
        self, principal: Principal, task: TaskRecord, approval: ApprovalRecord, values: dict[str, Any]
    ) -> dict[str, Any]:
        self.answered.append((principal.sub, approval.id, values))
        return task.to_wire()

    async def fail(self, task: TaskRecord, text: str, *, reason: str) -> None:
        self.failed.append((task.id, reason))


@dataclass
class ResolvePath:
    core: Core
    holds: Holds
    resolver: Resolver
    runner: RecordingRunner
    clock: list[float]

    async def hold(
        self, principal: Principal = BOT, fields: tuple[dict[str, Any], ...] = (), **policy_fields: Any
    ) -> ApprovalRecord:
        now = self.clock[0]
        task = new_task(principal.tenant, principal.sub, principal.roles, now, agent="demo")
        policy = Policy(
            tenant="default",
            name="bulk",
            scope_type=ScopeType.TOOL,
            enforcement=Enforcement.REQUIRE_APPROVAL,
            plugin="always",
            config={},
            **policy_fields,
        )
        decision = Decision(
            enforcement=Enforcement.REQUIRE_APPROVAL,
            policy=policy,
            reason="bulk",
            form_fields=fields,
            channels=tuple(policy.channels),
        )
        action = Action(agent="demo", tool="db.delete", arguments={"table": "records"}, text="delete them")
        user_msg = {"kind": "message", "role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "x"}]}
        wire = await self.holds.hold(principal, task, user_msg, action, decision, now, new=True)
        approval = await self.core.store.get_approval(wire["metadata"]["airlock"]["approvalId"])
        assert approval is not None
        return approval

    async def audit_kinds(self) -> list[str]:
        return [entry.kind async for entry in self.core.store.iter_audit()]


@pytest.fixture
async def path(tmp_path: Path) -> AsyncIterator[ResolvePath]:
    store = SQLiteStore(tmp_path / "airlock.db")
    await store.open()
    clock = [1_000_000.0]
    core = Core.build(store, MeshConfig(callback_key=KEY, approval_timeout_s=60), lambda: clock[0])
    runner = RecordingRunner()
    expiry = Expiry(store, core.clock, core.changes)
    resolver = Resolver(store, core.clock, core.changes, expiry, runner, core.policies)
    try:
        yield ResolvePath(core, Holds(store, core.config, core.changes), resolver, runner, clock)
    finally:
        await store.close()
