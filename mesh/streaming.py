"""Streaming A2A operations: ``message/stream`` and ``tasks/resubscribe`` as Server-Sent Events."""

from __future__ import annotations

from typing import Any

METHODS: dict[str, Any] = {}
STREAM_METHODS: dict[str, Any] = {}
