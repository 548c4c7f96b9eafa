"""``GET /openapi.json``: the gateway's OpenAPI 3.1 document, read once from ``schemas/openapi.json``."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web

# ``schemas`` is installed with the code (a package of data files), so this works from a wheel too
SPEC_PATH = files("schemas") / "openapi.json"


@cache
def spec_bytes() -> bytes:
    """The document's bytes, read on first use and kept for the life of the process."""
    return SPEC_PATH.read_bytes()


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=spec_bytes(), content_type="application/json")
