"""The compiled policy set: one compile for the calls that arrive together, and never a stale set kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mesh.core import policies as policy_cache
from mesh.core.config import MeshConfig
from mesh.policy import CompiledPolicies
from mesh.store.sqlite import SQLiteStore
from mesh.wiring import Mesh


def policy(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "scope_type": "tool",
        "enforcement": "block",
        "evaluator": {"plugin": "tool_match", "config": {"tools": [name]}},
    }


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    store = SQLiteStore(tmp_path / "p.db")
    await store.open()
    m = Mesh(store, MeshConfig())
    for i in range(3):
        await m.policy_admin.create_policy("default", "admin", policy(f"p{i}"))
    yield m
    await store.close()


async def test_calls_arriving_together_after_a_change_compile_the_set_once(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles: list[CompiledPolicies] = []
    real = policy_cache.compile_policies

    def counted(policies: Any) -> CompiledPolicies:
        compiles.append(real(policies))
        return compiles[-1]

    monkeypatch.setattr(policy_cache, "compile_policies", counted)
    sets = await asyncio.gather(*(mesh.core.policies.get("default") for _ in range(32)))
    assert len(compiles) == 1 and all(s is compiles[0] for s in sets) and len(sets[0]) == 3
    await mesh.policy_admin.create_policy("default", "admin", policy("p3"))
    assert len(await mesh.core.policies.get("default")) == 4 and len(compiles) == 2
    assert await mesh.core.policies.get("default") is compiles[1]  # kept until the next change


async def test_a_change_made_while_the_set_is_read_is_not_hidden_by_the_older_set(
    mesh: Mesh, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_list = mesh.store.list_policies
    read, release = asyncio.Event(), asyncio.Event()

    async def slow_list(tenant: str) -> list[dict[str, Any]]:
        bodies = await real_list(tenant)
        read.set()
        await release.wait()
        return bodies

    monkeypatch.setattr(mesh.store, "list_policies", slow_list)
    before = asyncio.create_task(mesh.core.policies.get("default"))
    await read.wait()  # the load has read the three policies
    await mesh.policy_admin.create_policy("default", "admin", policy("p3"))
    release.set()
    assert len(await before) == 3  # the call that came first gets the set it read
    assert len(await mesh.core.policies.get("default")) == 4  # but that set was not kept
