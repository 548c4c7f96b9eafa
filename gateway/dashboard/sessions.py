"""Signing in to the dashboard: a session from an Airlock JWT or from a single-use login link.

A session is a random token in an HttpOnly, SameSite=Strict cookie; the store keeps only its SHA-256, the
principal it stands for and when it ends (the JWT's expiry, or the link's session length). Its CSRF token is
derived from it (:func:`gateway.auth.csrf_token`).

A login link is an HS256 token signed with a key derived from the server's ``callback.key`` (kept in
``$AIRLOCK_HOME``, so ``airlock login-link`` on the same home can sign one). The derived key signs nothing
else: a link is never accepted as a Bearer token, and a Bearer token never as a link. Each link carries a
unique id that the store records when the link is used (one conditional insert), so it signs in once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

LINK_TTL_S = 600  # a login link is good for ten minutes
LINK_PURPOSE = "airlock-dashboard-login"
SESSION_DEFAULT_S = 8 * 3600
SESSION_MAX_S = 24 * 3600
RESOLVER_ROLES = ("approver", "admin")


class LinkError(ValueError):
    """The login link is not valid (bad signature, expired, malformed)."""


def link_key(callback_key: bytes) -> bytes:
    """The key login links are signed with, derived from the server's callback key."""
    return hmac.new(callback_key, b"airlock dashboard login link", hashlib.sha256).digest()


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def make_link_token(
    callback_key: bytes,
    sub: str,
    *,
    tenant: str = "default",
    roles: list[str] | tuple[str, ...] = ("approver",),
    session_s: int = SESSION_DEFAULT_S,
    now: float | None = None,
) -> str:
    if not set(roles) & set(RESOLVER_ROLES):
        raise ValueError("a login link needs the approver or admin role")
    if not 60 <= session_s <= SESSION_MAX_S:
        raise ValueError(f"a dashboard session lasts from 60 seconds to {SESSION_MAX_S // 3600} hours")
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": sub,
        "tenant": tenant,
        "roles": list(roles),
        "iat": issued,
        "exp": issued + LINK_TTL_S,
        "jti": uuid.uuid4().hex,
        "purpose": LINK_PURPOSE,
        "session_s": session_s,
    }
    return jwt.encode(claims, link_key(callback_key), algorithm="HS256")


@dataclass(frozen=True, slots=True)
class LinkClaims:
    sub: str
    tenant: str
    roles: tuple[str, ...]
    link_id: str
    expires_at: float
    session_s: int


def read_link_token(callback_key: bytes, token: str) -> LinkClaims:
    """The link's claims once its signature, purpose and expiry are checked (it is not used up here)."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            link_key(callback_key),
            algorithms=["HS256"],
            options={"require": ["sub", "tenant", "roles", "exp", "jti", "purpose", "session_s"]},
        )
    except jwt.ExpiredSignatureError:
        raise LinkError("this login link has expired; ask for a new one") from None
    except jwt.PyJWTError:
        raise LinkError("this login link is not valid") from None
    roles = claims["roles"]
    ok = (
        claims["purpose"] == LINK_PURPOSE
        and isinstance(claims["sub"], str)
        and claims["sub"]
        and isinstance(claims["tenant"], str)
        and claims["tenant"]
        and isinstance(roles, list)
        and all(isinstance(r, str) for r in roles)
        and set(roles) & set(RESOLVER_ROLES)
        and isinstance(claims["jti"], str)
        and isinstance(claims["session_s"], int)
        and 60 <= claims["session_s"] <= SESSION_MAX_S
    )
    if not ok:
        raise LinkError("this login link is not valid")
    return LinkClaims(
        sub=claims["sub"],
        tenant=claims["tenant"],
        roles=tuple(roles),
        link_id=claims["jti"],
        expires_at=float(claims["exp"]),
        session_s=claims["session_s"],
    )


def token_expiry(token: str) -> float:
    """A verified JWT's ``exp`` (read after the verifier accepted it)."""
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])
