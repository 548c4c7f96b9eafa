"""Settings read from the environment and from ``$AIRLOCK_HOME``: one place for what a process is
configured with, shared by ``airlock serve`` and the commands that must agree with it.

Keys kept in ``$AIRLOCK_HOME`` are made once, mode 0600, and shared by every process on that home.
Creation uses ``O_EXCL`` so two processes starting at once agree on one key instead of racing.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from mesh.auth import TokenVerifier
from mesh.core.config import MeshConfig
from mesh.credentials import check_key


def home() -> Path:
    return Path(os.environ.get("AIRLOCK_HOME", "./.airlock"))


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"AIRLOCK_{name}", default)


def env_flag(name: str) -> bool:
    return (env(name) or "").lower() in ("1", "true", "yes", "on")


def key_file(path: Path, nbytes: int = 32) -> tuple[bytes, bool]:
    """The key kept in ``path``, made now if there is none; and whether it was made by this call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes().strip()
        if not data:
            raise RuntimeError(f"{path} is empty; delete it to make a new key") from None
        return data, False
    with os.fdopen(fd, "wb") as f:
        key = secrets.token_hex(nbytes).encode()
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key, True


def load_or_create_key(path: Path, nbytes: int = 32) -> bytes:
    return key_file(path, nbytes)[0]


def home_key(name: str, *, tell: bool = False) -> bytes:
    """A key kept in ``$AIRLOCK_HOME``, made there when missing. With ``tell``, say on stderr which home was
    used and warn when the key is new: what a command signs with a key no server shares is refused, and
    running from another directory silently picks another home."""
    path = home() / name
    key, created = key_file(path)
    if tell:
        print(f"airlock: using AIRLOCK_HOME={home().resolve()}", file=sys.stderr)
        if created:
            print(
                f"airlock: warning: created a new key in {path.resolve()}; only a server started with this "
                "AIRLOCK_HOME accepts what is signed with it",
                file=sys.stderr,
            )
    return key


def jwt_secret(explicit: str | None, *, tell: bool = False) -> bytes:
    """The HS256 secret: given, or kept in ``$AIRLOCK_HOME/jwt.secret``."""
    if explicit:
        return explicit.encode()
    return home_key("jwt.secret", tell=tell)


def signing_key(args: argparse.Namespace) -> bytes | None:
    """The key for signed approval links: ``--signing-key FILE``, or made once in ``$AIRLOCK_HOME``."""
    if args.signing_key:
        return check_key(Path(args.signing_key).read_bytes().strip())
    if args.sign:
        return check_key(load_or_create_key(home() / "signing.key"))
    return None


def make_verifier(args: argparse.Namespace) -> TokenVerifier | None:
    if args.auth == "none":
        return None
    claims = {"audience": args.jwt_audience, "issuer": args.jwt_issuer}
    if args.jwt_public_key:
        return TokenVerifier.from_public_key_file(Path(args.jwt_public_key), **claims)
    return TokenVerifier(secret=jwt_secret(args.jwt_secret), **claims)


def mesh_config(args: argparse.Namespace, airlock_home: Path) -> MeshConfig:
    """The mesh's settings from the command line (and the environment it reads)."""
    return MeshConfig(
        approval_timeout_s=args.approval_timeout,
        gateway_url=(args.gateway_url or f"http://{args.host}:{args.gateway_port}").rstrip("/"),
        callback_key=load_or_create_key(airlock_home / "callback.key"),
        push_allow_private=args.push_allow_private,
        agent_timeout_s=args.agent_timeout,
        max_pending=args.max_pending,
        decision_retention_s=args.decision_retention,
        sync_turns=not args.unsynced_turns,
        signing_key=signing_key(args),
        rate_limit=args.rate_limit,
        attempt_limit=args.attempt_limit,
    )
