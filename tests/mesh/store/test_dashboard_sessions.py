"""Dashboard sessions (kept by their token's hash, until they expire or are deleted) and single-use login
links (one conditional insert), on each engine."""

from __future__ import annotations

import asyncio

from mesh.store import SessionRecord, Store


def session(token_hash: str, expires_at: float, sub: str = "alice") -> SessionRecord:
    return SessionRecord(
        token_hash=token_hash,
        tenant="default",
        sub=sub,
        roles=("admin", "approver"),
        created_at=100.0,
        expires_at=expires_at,
    )


async def test_a_session_is_found_by_its_hash_until_it_expires_or_is_deleted(store: Store) -> None:
    await store.create_session(session("h1", 200.0), now=100.0)
    assert await store.get_session("h1", 150.0) == session("h1", 200.0)
    assert await store.get_session("h1", 200.0) is None  # expired at its expires_at
    assert await store.get_session("other", 150.0) is None
    assert await store.delete_session("h1") is True
    assert await store.delete_session("h1") is False
    assert await store.get_session("h1", 150.0) is None


async def test_expired_sessions_are_dropped_when_a_new_one_is_kept(store: Store) -> None:
    await store.create_session(session("old", 150.0), now=100.0)
    await store.create_session(session("new", 900.0, sub="bob"), now=300.0)
    assert await store.delete_session("old") is False  # already dropped
    found = await store.get_session("new", 300.0)
    assert found is not None and found.sub == "bob"


async def test_a_login_link_is_used_once_even_by_concurrent_callers(store: Store) -> None:
    results = await asyncio.gather(*(store.use_login_link("link-1", 100.0, 700.0) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await store.use_login_link("link-1", 200.0, 700.0) is False
    assert await store.use_login_link("link-2", 200.0, 700.0) is True
    # an id past its link's expiry is dropped (the link itself is refused by then)
    assert await store.use_login_link("link-3", 800.0, 1400.0) is True
    assert await store.use_login_link("link-1", 800.0, 1400.0) is True
