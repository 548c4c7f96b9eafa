"""Typed application keys shared by the gateway's route modules."""

from __future__ import annotations

from aiohttp import web

from mesh.auth import TokenVerifier
from mesh.service import Mesh

MESH = web.AppKey("mesh", Mesh)
VERIFIER = web.AppKey("verifier", TokenVerifier | None)
SIGNING_KEY = web.AppKey("signing_key", bytes | None)  # set when approvals get signed links (--sign)
