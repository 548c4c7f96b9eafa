"""Guard an agent's tool calls with Airlock: one decorator, or one awaited check.

    from airlock.client import Guard, ApprovalDenied

    guard = Guard("http://127.0.0.1:8080", token)

    @guard.require_approval()
    def delete_files(paths: list[str]) -> int: ...

Each call is sent to the mesh as a guard-mode tool call (a DataPart ``{"tool": …, "arguments": {…}}``);
an allowed call runs, a held one waits for a person (across dropped connections and server restarts), and
a call that is not allowed raises. :meth:`Guard.check` gives the :class:`Decision` itself instead.
"""

from airlock.client.decision import Decision, Outcome
from airlock.client.errors import (
    ActionBlocked,
    ActionRefused,
    AirlockError,
    ApprovalDenied,
    ApprovalExpired,
    AuthenticationError,
    DecisionTimeout,
    RequestError,
    ServerUnavailable,
)
from airlock.client.guard import Guard

__all__ = [
    "ActionBlocked",
    "ActionRefused",
    "AirlockError",
    "ApprovalDenied",
    "ApprovalExpired",
    "AuthenticationError",
    "Decision",
    "DecisionTimeout",
    "Guard",
    "Outcome",
    "RequestError",
    "ServerUnavailable",
]
