"""The audit trail: ``GET /v1/audit`` pages it per tenant; ``airlock audit verify`` finds a broken chain."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from mesh.audit import verify_chain
from mesh.store.base import AuditRecord
from tests.conftest import GUIDE_POLICY, Airlock, bearer, guide_message
from tests.gateway.conftest import error_of

ROOT = Path(__file__).resolve().parents[2]
OTHER = bearer("bob", "approver", "admin", tenant="tenant-b")
FIELDS = {"seq", "at", "kind", "actor", "subject", "detail", "hash", "prev_hash"}


async def some_history(airlock: Airlock) -> None:
    """Entries of two tenants, interleaved: policies, holds, resolutions."""
    await airlock.add_policy()
    resp = await airlock.gateway.post("/internal/policies/new", json=GUIDE_POLICY, headers=OTHER)
    assert resp.status == 201, await resp.text()
    for decision in ("deny", "deny"):
        task = await airlock.hold()
        assert (await airlock.resolve(task["id"], {"decision": decision})).status == 200
        reply = await airlock.rpc(guide_message(), OTHER)
        assert reply["result"]["status"]["state"] == "input-required"


async def all_entries(airlock: Airlock) -> list[AuditRecord]:
    return [e async for e in airlock.mesh.store.iter_audit()]


async def page(airlock: Airlock, query: str = "", headers: dict[str, str] | None = None) -> dict:
    resp = await airlock.gateway.get(f"/v1/audit{query}", headers=headers or bearer())
    assert resp.status == 200, await resp.text()
    return await resp.json()


def verify_cli(db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "audit", "verify", "--store", f"sqlite:///{db}"],
        cwd=ROOT,
        env={**os.environ, "AIRLOCK_HOME": str(db.parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def run_cli(db: Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(verify_cli, db)


async def test_audit_pages_with_after_and_limit(airlock: Airlock) -> None:
    await some_history(airlock)
    mine = [e for e in await all_entries(airlock) if e.tenant == "default"]
    assert len(mine) >= 5
    assert {"policy.created", "policy.decision", "approval.resolved"} <= {e.kind for e in mine}

    seen: list[dict] = []
    after = 0
    while True:
        body = await page(airlock, f"?after={after}&limit=2")
        assert set(body) == {"entries", "next_after"}
        assert len(body["entries"]) <= 2
        seen.extend(body["entries"])
        if body["next_after"] is None:
            break
        assert body["next_after"] == body["entries"][-1]["seq"]
        after = body["next_after"]
    assert [e["seq"] for e in seen] == [e.seq for e in mine]
    for got, entry in zip(seen, mine, strict=True):
        assert set(got) == FIELDS
        assert (got["kind"], got["actor"], got["subject"], got["detail"]) == (
            entry.kind,
            entry.actor,
            entry.subject,
            entry.detail,
        )
        assert (got["hash"], got["prev_hash"]) == (entry.hash, entry.prev_hash)
        assert got["at"].endswith("Z") and "T" in got["at"]

    # the default page is everything here (fewer than 100); the largest page is 500
    assert [e["seq"] for e in (await page(airlock))["entries"]] == [e.seq for e in mine]
    body = await page(airlock, "?limit=500")
    assert len(body["entries"]) == len(mine) and body["next_after"] is None
    # after the last entry: nothing
    assert await page(airlock, f"?after={mine[-1].seq}") == {"entries": [], "next_after": None}


async def test_audit_shows_only_the_callers_tenant(airlock: Airlock) -> None:
    await some_history(airlock)
    entries = await all_entries(airlock)
    theirs = [e.seq for e in entries if e.tenant == "tenant-b"]
    assert theirs
    body = await page(airlock, "?limit=500", OTHER)
    assert [e["seq"] for e in body["entries"]] == theirs
    ours = {e["seq"] for e in (await page(airlock, "?limit=500"))["entries"]}
    assert not ours & set(theirs)


async def test_audit_rejects_bad_queries_and_callers(airlock: Airlock) -> None:
    bad = ("?limit=0", "?limit=501", "?limit=x", "?after=-1", "?after=abc", f"?after={2**63}", f"?after={10**30}")
    for query in bad:
        await error_of(await airlock.gateway.get(f"/v1/audit{query}", headers=bearer()), 400)
    await error_of(await airlock.gateway.get("/v1/audit"), 401)
    await error_of(await airlock.gateway.get("/v1/audit", headers=bearer("carol", "approver")), 403)


async def test_verify_finds_an_edited_entry(airlock: Airlock) -> None:
    await some_history(airlock)
    entries = await all_entries(airlock)
    report = await verify_chain(airlock.mesh.store)
    assert report.ok and report.entries == len(entries)
    db = airlock.home / "airlock.db"
    ok = await run_cli(db)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"ok: {len(entries)} entries, head at entry {entries[-1].seq} ")
    assert "not checked" in ok.stdout  # this home holds no callback key: the head's position alone is checked
    (airlock.home / "callback.key").write_bytes(b"k" * 32)  # the fixture's server key
    ok = await run_cli(db)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"ok: {len(entries)} entries, head at entry {entries[-1].seq} (signed head checked)"

    victim = entries[len(entries) // 2]

    def edit() -> None:
        with sqlite3.connect(db, timeout=10) as conn:
            row = conn.execute("SELECT detail FROM audit WHERE seq = ?", (victim.seq,)).fetchone()
            detail = json.loads(row[0])
            detail["tampered"] = True
            conn.execute("UPDATE audit SET detail = ? WHERE seq = ?", (json.dumps(detail), victim.seq))
        conn.close()

    await asyncio.to_thread(edit)  # off the loop: the store's own connections keep working meanwhile
    report = await verify_chain(airlock.mesh.store)
    assert report.broken_at == victim.seq
    broken = await run_cli(db)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert broken.stdout.startswith(f"broken at entry {victim.seq}: ")


async def test_verify_finds_a_deleted_entry(airlock: Airlock) -> None:
    await some_history(airlock)
    entries = await all_entries(airlock)
    gone, follower = entries[2], entries[3]
    db = airlock.home / "airlock.db"

    def delete() -> None:
        with sqlite3.connect(db, timeout=10) as conn:
            conn.execute("DELETE FROM audit WHERE seq = ?", (gone.seq,))
        conn.close()

    await asyncio.to_thread(delete)
    broken = await run_cli(db)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert broken.stdout.startswith(f"broken at entry {follower.seq}: ")
    assert "prev_hash" in broken.stdout


async def test_verify_finds_a_missing_tail(airlock: Airlock) -> None:
    """Deleting the trail's last entries leaves a chain that still links; the kept head shows the loss."""
    await some_history(airlock)
    entries = await all_entries(airlock)
    db = airlock.home / "airlock.db"
    (airlock.home / "callback.key").write_bytes(b"k" * 32)
    keep = entries[-4].seq

    def truncate() -> None:
        with sqlite3.connect(db, timeout=10) as conn:
            conn.execute("DELETE FROM audit WHERE seq > ?", (keep,))
        conn.close()

    await asyncio.to_thread(truncate)
    broken = await run_cli(db)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert broken.stdout.strip() == (
        f"broken: the trail ends at entry {keep} but its head is entry {entries[-1].seq}: "
        "3 entries missing from the tail"
    )
    status = await airlock.gateway.get("/v1/status", headers=bearer())
    assert (await status.json())["audit"] == {"head_seq": entries[-1].seq, "head_hash": entries[-1].hash}


def test_verify_of_a_missing_store_is_an_error(tmp_path: Path) -> None:
    result = verify_cli(tmp_path / "nothing.db")
    assert result.returncode not in (0, 1)
    assert "no database" in result.stderr
    assert not (tmp_path / "nothing.db").exists()
