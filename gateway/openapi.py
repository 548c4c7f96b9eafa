"""``GET /openapi.json``: the gateway's OpenAPI 3.1 document, read once from ``schemas/openapi.json``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aiohttp import web

SPEC_PATH = Path(__file__).resolve().parents[1] / "schemas" / "openapi.json"


@cache
def spec_bytes() -> bytes:
    """The document's bytes, read on first use and kept for the life of the process."""
    return SPEC_PATH.read_bytes()


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=spec_bytes(), content_type="application/json")
