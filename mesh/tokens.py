"""Callback tokens: single-use credentials handed to a notification channel.

A token is HMAC-SHA256 of the approval id under a server key, so the database holds only its SHA-256
hash and the outbox holds no token at all: the delivery worker derives the token again when it sends.
A copy of the database alone therefore cannot resolve anything. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def callback_token(key: bytes, approval_id: str) -> str:
    digest = hmac.new(key, b"callback-token:" + approval_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(presented: str, stored_hash: str | None) -> bool:
    if not stored_hash or not isinstance(presented, str):
        return False
    return hmac.compare_digest(token_hash(presented), stored_hash)
