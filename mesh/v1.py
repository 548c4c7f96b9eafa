"""A2A v1.0 method names and wire shapes on the same endpoint, over the same task model."""

from __future__ import annotations

from typing import Any

METHODS: dict[str, Any] = {}
STREAM_METHODS: dict[str, Any] = {}
