"""The expiry sweeper: ends approvals whose time has passed, at start and then periodically.

Each expiry is the same conditional write as a resolution, so two sweepers (or a sweeper and a late
resolver) never both apply it.
"""

from __future__ import annotations

import asyncio
import logging

from mesh.service import Mesh

log = logging.getLogger("airlock.sweeper")


async def run_sweeper(mesh: Mesh, interval_s: float = 1.0) -> None:
    while True:
        try:
            expired = await mesh.expire_due()
            if expired:
                log.info("expired %d approval(s)", expired)
        except Exception:
            log.exception("expiry sweep failed")
        await asyncio.sleep(interval_s)
