"""The durable store: one interface (:mod:`.base`), one engine per database."""

from __future__ import annotations

from pathlib import Path

from .base import (
    PENDING,
    AgentRecord,
    ApprovalRecord,
    AuditRecord,
    ChannelRecord,
    DecisionRecord,
    OutboxAttempt,
    OutboxEntry,
    OutboxRecord,
    PushConfigRecord,
    RunGroupRow,
    SessionRecord,
    Store,
    TaskRecord,
    Tx,
    iso,
)

__all__ = [
    "PENDING",
    "AgentRecord",
    "ApprovalRecord",
    "AuditRecord",
    "ChannelRecord",
    "DecisionRecord",
    "OutboxAttempt",
    "OutboxEntry",
    "OutboxRecord",
    "PushConfigRecord",
    "RunGroupRow",
    "SessionRecord",
    "Store",
    "TaskRecord",
    "Tx",
    "iso",
    "make_store",
]


def make_store(url: str) -> Store:
    """A store for a URL: ``sqlite:///relative.db``, ``sqlite:////absolute.db`` (SQLAlchemy's
    convention), a bare file path, or ``postgresql://user@host:port/db[?schema=NAME]``."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("", "sqlite"):
        from .sqlite import SQLiteStore

        path = url[len("sqlite://") :] if scheme else url
        if scheme and path.startswith("/"):
            path = path[1:]
        return SQLiteStore(Path(path))
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported store URL scheme {scheme!r} (use sqlite:///path or postgresql://…)")
