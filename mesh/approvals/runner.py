"""What approvals need from the turn code, as a protocol: the turn code (``mesh.tasks``) implements it and
is handed in, so approvals never import the turn back."""

from __future__ import annotations

from typing import Any, Protocol

from mesh.auth import Principal
from mesh.store import ApprovalRecord, TaskRecord


class Runner(Protocol):
    async def run_approved(self, task: TaskRecord, approval: ApprovalRecord, values: dict[str, Any]) -> None:
        """Run the action a person approved and record its outcome on the task."""

    async def answer_turn(
        self, principal: Principal, task: TaskRecord, approval: ApprovalRecord, values: dict[str, Any]
    ) -> dict[str, Any]:
        """Give an agent's request for values its answer as the task's next turn; returns the task. A turn
        that cannot run fails the task (the answer is already written), it never raises."""

    async def fail(self, task: TaskRecord, text: str, *, reason: str) -> None:
        """End a task left ``working`` whose action can no longer run."""
