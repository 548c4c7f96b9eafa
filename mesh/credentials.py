"""The credentials a resolution may carry instead of a Bearer token.

Callback tokens: single-use credentials handed to a notification channel. A token is HMAC-SHA256 of the
approval id under a server key, so the database holds only its SHA-256 hash and the outbox holds no token
at all: the delivery worker derives the token again when it sends. A copy of the database alone therefore
cannot resolve anything.

Signed approval links: resolve one approval one way, without a Bearer token, until a deadline. The
signature is HMAC-SHA256 over the approval id, the decision and the expiry, under a server key, so a link
cannot be turned into the other decision, another approval or a later deadline. A link is single-use
because the approval it resolves can be resolved once. It can never ``persist``.

Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache
from urllib.parse import urlencode

from cryptography.fernet import Fernet, InvalidToken

DECISIONS = ("approve", "deny")
MIN_KEY_BYTES = 16  # a shorter (or empty) key would let anyone forge links


def callback_token(key: bytes, approval_id: str) -> str:
    digest = hmac.new(key, b"callback-token:" + approval_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(presented: str, stored_hash: str | None) -> bool:
    if not stored_hash or not isinstance(presented, str):
        return False
    return hmac.compare_digest(token_hash(presented), stored_hash)


class SigningKeyError(ValueError):
    """The configured signing key cannot be used."""


def check_key(key: bytes) -> bytes:
    """``key`` when it is long enough to sign links with; :class:`SigningKeyError` otherwise."""
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(f"the signing key must be at least {MIN_KEY_BYTES} bytes; got {len(key)}")
    return key


def signature(key: bytes, approval_id: str, decision: str, exp: int) -> str:
    message = f"{approval_id}\n{decision}\n{exp}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signed_link(base_url: str, key: bytes, approval_id: str, decision: str, exp: int) -> str:
    query = urlencode({"decision": decision, "exp": exp, "sig": signature(key, approval_id, decision, exp)})
    return f"{base_url}/v1/approvals/{approval_id}/resolve?{query}"


def verify(key: bytes, approval_id: str, decision: str, exp: int, sig: str) -> bool:
    """True when ``sig`` is this key's signature of (approval, decision, exp); compared in constant time."""
    if decision not in DECISIONS or not sig.isascii():
        return False
    return hmac.compare_digest(signature(key, approval_id, decision, exp), sig)


# ---------------------------------------------------------------- sealed secrets

SEALED = "sealed:v1:"


@lru_cache(maxsize=8)
def _fernet(key: bytes) -> Fernet:
    derived = hmac.new(key, b"channel-secrets", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


def seal(key: bytes, secret: str) -> str:
    """A secret a channel needs in clear to send (a webhook's signing secret, a bot token, an SMTP password),
    encrypted under the server key so a copy of the database alone reveals none of them."""
    return SEALED + _fernet(key).encrypt(secret.encode()).decode()


def unseal(key: bytes, value: str) -> str:
    """The clear secret :func:`seal` sealed; a value that was never sealed is returned as it is."""
    if not value.startswith(SEALED):
        return value
    return _opened(key, value)


@lru_cache(maxsize=1024)
def _opened(key: bytes, value: str) -> str:
    """Every notification a channel sends opens its secret: once per (key, sealed value) is enough (the key
    lives in this process's memory anyway), not a derivation, an HMAC check and a decryption per send. A value
    that does not open raises, and is not remembered."""
    try:
        return _fernet(key).decrypt(value[len(SEALED) :].encode()).decode()
    except InvalidToken:
        raise ValueError("a sealed secret does not open with this server's key") from None
