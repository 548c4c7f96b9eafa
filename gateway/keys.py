"""Typed application keys shared by the gateway's route modules (the mesh's own key is :data:`mesh.wiring.MESH`)."""

from __future__ import annotations

from aiohttp import web

from mesh.auth import TokenVerifier
from mesh.wiring import MESH

__all__ = ["MESH", "VERIFIER"]

VERIFIER = web.AppKey("verifier", TokenVerifier | None)
