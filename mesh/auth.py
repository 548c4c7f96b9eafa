"""Who is calling: JWT verification and the principal it yields.

Both the mesh and the gateway authenticate with the same verifier, so it lives here (the gateway
imports mesh, never the other way round). The verifier pins the algorithm family to the key it was given:
an HMAC secret accepts only HS256, a public key only RS256/ES256, which shuts out ``alg: none`` and
HS/RS key confusion.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

ROLES = frozenset({"agent", "approver", "admin"})
REQUIRED_CLAIMS = ("sub", "tenant", "roles", "iat", "exp")
VERIFIED_CACHE = 10_000  # distinct tokens remembered at most


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    tenant: str
    roles: frozenset[str] = field(default_factory=frozenset)

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    @property
    def can_resolve(self) -> bool:
        return self.has("approver", "admin")

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


ANONYMOUS = Principal(sub="anonymous", tenant="default", roles=frozenset({"agent"}))


class AuthError(Exception):
    """The credential is missing, malformed, expired or not ours."""


class TokenVerifier:
    def __init__(
        self,
        *,
        secret: bytes | None = None,
        public_key: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        if (secret is None) == (public_key is None):
            raise ValueError("give exactly one of secret or public_key")
        self._key: Any = secret if secret is not None else public_key
        self._algorithms = ["HS256"] if secret is not None else ["RS256", "ES256"]
        self._audience = audience
        self._issuer = issuer
        # verified tokens by their SHA-256 (the token itself is not kept): principal and expiry
        self._verified: dict[bytes, tuple[Principal, float]] = {}

    @classmethod
    def from_public_key_file(cls, path: Path, **kw: Any) -> TokenVerifier:
        return cls(public_key=path.read_text(), **kw)

    def verify(self, token: str) -> Principal:
        """A token verified before is not decoded again until it expires: an agent sends the same token on
        every call, and checking its signature and claims costs about a tenth of the allow path's CPU."""
        if not token.isascii():  # a JWT is base64url and dots; anything else is not one (and not hashable as is)
            raise AuthError("invalid token: not a JWT")
        key = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(key)
        if known is not None:
            principal, exp = known
            if time.time() < exp:
                return principal
            del self._verified[key]
        principal, exp = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[key] = (principal, exp)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        options = {"require": list(REQUIRED_CLAIMS), "verify_aud": self._audience is not None}
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options=options,
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        sub, tenant, roles = claims["sub"], claims["tenant"], claims["roles"]
        if not isinstance(sub, str) or not sub:
            raise AuthError("invalid token: sub must be a non-empty string")
        if not isinstance(tenant, str) or not tenant:
            raise AuthError("invalid token: tenant must be a non-empty string")
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise AuthError(f"invalid token: {name} must be a number")
        # a role the server does not know, or none at all, grants nothing: such a token is refused outright
        # rather than let through with whatever a missing check would allow (a bare string is not a list)
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) and r in ROLES for r in roles):
            raise AuthError(f"invalid token: roles must be a non-empty list of: {', '.join(sorted(ROLES))}")
        return Principal(sub=sub, tenant=tenant, roles=frozenset(roles)), float(claims["exp"])

    def verify_header(self, header: str | None) -> Principal:
        if not header:
            raise AuthError("missing bearer token")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header must be 'Bearer <token>'")
        return self.verify(token.strip())


def issue_token(
    secret: bytes,
    sub: str,
    *,
    tenant: str = "default",
    roles: list[str] | tuple[str, ...] = ("agent",),
    ttl_s: int = 3600,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token the server on the same secret accepts (``airlock token``)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "tenant": tenant, "roles": list(roles), "iat": now, "exp": now + ttl_s}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")
