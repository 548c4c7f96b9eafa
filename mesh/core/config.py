"""The mesh's settings, fixed when it starts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from mesh.limits import Rate

MAX_TIMEOUT_S = 10 * 365 * 86400
"""A hold's deadline must stay a representable date; ten years is far beyond any human wait."""
DECISION_RETENTION_S = 30 * 86400
"""How long each decision's action is kept for dry-runs by default (``--decision-retention``)."""


@dataclass(slots=True)
class MeshConfig:
    approval_timeout_s: int = 3600
    callback_key: bytes = b""
    gateway_url: str = "http://127.0.0.1:8081"
    agent_timeout_s: float = 30.0  # how long a downstream agent may take to answer
    push_allow_private: bool = False
    max_pending: int = 10_000  # per tenant: a hold past this many pending approvals is refused (QueueFull)
    # A turn that leaves nobody waiting (allowed, blocked, answered by an agent) is answered only once it is
    # on disk. Off, it is answered once written, and reaches the disk with the next synced write (a hold, a
    # resolution) or SQLite's next checkpoint: a killed process loses none of it, a power loss may lose the
    # last of them. Holds, resolutions and every write a person makes are synced either way.
    sync_turns: bool = True
    # signs one-click approve/deny links (webhook bodies, email); None: no links are made
    signing_key: bytes | None = None
    # token buckets per caller (principal, else client address) on each port; None: no limit
    rate_limit: Rate | None = None
    # attempts with a callback token or a signed link on one approval (whoever makes them); None: no limit
    attempt_limit: Rate | None = None
    # how long each policy decision's action (tool, agent, masked arguments, text) is kept for dry-runs; the
    # sweeper prunes older ones. 0: no action is kept at all (a dry-run then has nothing to evaluate)
    decision_retention_s: int = DECISION_RETENTION_S

    def __post_init__(self) -> None:
        if not self.callback_key:
            self.callback_key = secrets.token_bytes(32)
