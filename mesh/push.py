"""A2A push notifications: the ``tasks/pushNotificationConfig/*`` methods and their delivery."""

from __future__ import annotations

from typing import Any

METHODS: dict[str, Any] = {}
STREAM_METHODS: dict[str, Any] = {}
