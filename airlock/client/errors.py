"""The client's exceptions: every failure is an :class:`AirlockError`, and says what to do about it.

Two families. Something went wrong on the way (a bad token, a server that does not answer, a wait that ran
out): the call was not decided, as far as the client knows. Or the call was decided and it is a no
(:class:`ActionRefused` and its kinds): the decorated function did not run, and the exception carries the
:class:`~airlock.client.decision.Decision` with who and why.
"""

from __future__ import annotations

from typing import Any

from airlock.client.decision import Decision


class AirlockError(Exception):
    """Anything the client raises on purpose."""


class AuthenticationError(AirlockError):
    """The token was refused (HTTP 401/403): missing, malformed, expired, or signed by another server's secret."""


class ServerUnavailable(AirlockError):
    """The mesh could not be reached or did not answer in time (refused, dropped, 429, 502-504).

    While a held call is being waited on these are retried until the guard's timeout; on the first send
    they are raised, since the call may not have reached the server at all.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestError(AirlockError):
    """The mesh answered with a JSON-RPC error (invalid params, an unknown task, a full approval queue, …)."""

    def __init__(self, message: str, *, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class DecisionTimeout(AirlockError, TimeoutError):
    """The guard's ``timeout`` passed before the call was decided. The hold may still be pending on the
    server (``task_id``, when known, lets :meth:`Guard.wait` pick it up again); the call must not run."""

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class ActionRefused(AirlockError):
    """The call was decided, and not allowed. Raised as one of the kinds below, or as itself when the task
    ended some other way (cancelled, failed)."""

    def __init__(self, message: str, decision: Decision) -> None:
        super().__init__(message)
        self.decision = decision

    @property
    def task_id(self) -> str:
        return self.decision.task_id

    @property
    def policy(self) -> str | None:
        return self.decision.policy

    @property
    def reason(self) -> str | None:
        return self.decision.reason


class ApprovalDenied(ActionRefused):
    """A person said no; ``denied_by`` names them and ``reason`` is what they wrote, if anything."""

    @property
    def denied_by(self) -> str | None:
        return self.decision.denied_by


class ApprovalExpired(ActionRefused):
    """Nobody decided before the hold's timeout, so the call failed closed."""


class ActionBlocked(ActionRefused):
    """A policy blocks this call outright; ``policy`` names it. No person can lift a block."""


def refusal(decision: Decision) -> ActionRefused:
    """The exception for a decision that is not an allow (the decorator raises it)."""
    call = f"{decision.tool or 'the call'} (task {decision.task_id})"
    if decision.outcome == "denied":
        who = decision.denied_by or "an approver"
        why = f": {decision.reason}" if decision.reason else ""
        return ApprovalDenied(f"{call} was denied by {who}{why}", decision)
    if decision.outcome == "expired":
        return ApprovalExpired(f"{call} expired before anyone decided (policy {decision.policy})", decision)
    if decision.outcome == "blocked":
        return ActionBlocked(f"{call} is blocked by policy {decision.policy}: {decision.reason}", decision)
    if decision.outcome == "held":
        return ActionRefused(f"{call} is still held for a person", decision)
    return ActionRefused(f"{call} was not allowed ({decision.outcome}): {decision.reason}", decision)
