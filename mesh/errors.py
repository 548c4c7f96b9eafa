"""Outcomes of the resolve path and admin operations that are not success.

Each carries the HTTP status a REST surface answers with and a stable machine code, so every surface
words the same failure the same way without deciding anything itself.
"""

from __future__ import annotations


class MeshError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(MeshError):
    status, code = 400, "invalid_request"


class Unauthorized(MeshError):
    status, code = 401, "unauthorized"


class Forbidden(MeshError):
    status, code = 403, "forbidden"


class NotFound(MeshError):
    status, code = 404, "not_found"


class Conflict(MeshError):
    status, code = 409, "conflict"


class Gone(MeshError):
    status, code = 410, "gone"


class Unavailable(MeshError):
    status, code = 503, "unavailable"


class QueueFull(Unavailable):
    """A tenant already has ``limit`` approvals pending: the hold is refused, nothing is written."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the approval queue is full ({limit} pending)")
        self.limit = limit
