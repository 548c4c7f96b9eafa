"""Keys kept in ``$AIRLOCK_HOME``: made once, mode 0600, shared by every process on that home.

Creation uses ``O_EXCL`` so two processes starting at once agree on one key instead of racing.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create_key(path: Path, nbytes: int = 32) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes().strip()
        if not data:
            raise RuntimeError(f"{path} is empty; delete it to make a new key") from None
        return data
    with os.fdopen(fd, "wb") as f:
        key = secrets.token_hex(nbytes).encode()
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key
