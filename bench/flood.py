"""Flood figures against a real ``airlock serve`` on loopback, with its default limits unless said:
idle sockets past the connection cap, a header that never ends, 5 000 sends by one principal, 5 000 bad
JWTs from one address, 2 000 holds with ``--max-pending 20``. ``python -m bench.flood [SOCKETS]`` (default
15 000; the client needs that many descriptors). The figures in docs/reliability.md come from it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = str(Path(__file__).resolve().parent.parent)
PY = sys.executable


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(home, *extra):
    mp, gp = free_port(), free_port()
    os.makedirs(home, exist_ok=True)
    log = open(f"{home}/server.log", "wb")
    p = subprocess.Popen(
        [PY, "-m", "gateway.cli", "serve", "--mesh-port", str(mp), "--gateway-port", str(gp), "--demo", *extra],
        cwd=ROOT,
        env={**os.environ, "AIRLOCK_HOME": home},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", gp), 0.2).close()
            socket.create_connection(("127.0.0.1", mp), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return p, mp, gp


def token(home, sub, *roles, tenant="default"):
    return subprocess.run(
        [
            PY,
            "-m",
            "gateway.cli",
            "token",
            "--sub",
            sub,
            "--tenant",
            tenant,
            *[a for r in roles for a in ("--role", r)],
        ],
        cwd=ROOT,
        env={**os.environ, "AIRLOCK_HOME": home},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def send(i, text="Delete all expired records from the staging database"):
    return {
        "jsonrpc": "2.0",
        "id": i,
        "method": "message/send",
        "params": {"message": {"role": "user", "messageId": f"m{i}", "parts": [{"kind": "text", "text": text}]}},
    }


async def burst(url, n, make, headers, conc=64):
    c = collections.Counter()
    sem = asyncio.Semaphore(conc)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:

        async def one(i):
            async with sem:
                async with s.post(url, json=make(i), headers=headers) as r:
                    body = await r.json()
                    key = r.status
                    if isinstance(body, dict) and "error" in body and isinstance(body["error"].get("code"), int):
                        key = f"{r.status}:{body['error']['code']}"
                    c[key] += 1

        t = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(n)))
        return dict(c), time.monotonic() - t


async def health(url):
    t = time.monotonic()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s, s.get(url + "/healthz") as r:
            return r.status, round((time.monotonic() - t) * 1000, 1)
    except Exception as e:
        return repr(e), round((time.monotonic() - t) * 1000, 1)


async def idle_flood(mp, gp, n):
    socks = []
    refused = 0
    errors = 0
    t = time.monotonic()
    for i in range(n):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", mp if i % 2 else gp)
            socks.append((r, w))
        except OSError:
            errors += 1
    opened = time.monotonic() - t
    await asyncio.sleep(1.0)
    # the ones past the cap were answered 503 and closed: their readers are at EOF
    for r, _ in socks:
        if r.at_eof() or (r._buffer and bytes(r._buffer).startswith(b"HTTP/1.1 503")):
            refused += 1
    during = await health(f"http://127.0.0.1:{gp}")
    for _, w in socks:
        w.close()
    await asyncio.sleep(1.0)
    after = (await health(f"http://127.0.0.1:{gp}"), await health(f"http://127.0.0.1:{mp}"))
    return {
        "sockets": n,
        "open_s": round(opened, 2),
        "client_errors": errors,
        "refused_503": refused,
        "health_during": during,
        "health_after": after,
    }


async def main():
    base = tempfile.mkdtemp(prefix="airlock-flood-")
    out = {}
    # 1. idle sockets, default cap (10000) and timeouts
    p, mp, gp = start(f"{base}/a")
    try:
        out["idle_flood"] = await idle_flood(mp, gp, int(sys.argv[1]) if len(sys.argv) > 1 else 15000)
        # 2. 5000 sends by one principal, default --rate-limit 200/s:400
        home = f"{base}/a"
        agent = token(home, "bot", "agent")
        out["sends_5000"] = await burst(
            f"http://127.0.0.1:{mp}/", 5000, lambda i: send(i, "hello"), {"Authorization": f"Bearer {agent}"}
        )
        # 3. 5000 bad JWTs from one address
        bad = agent[:-4] + ("AAAA" if not agent.endswith("AAAA") else "BBBB")
        await asyncio.sleep(3)
        out["bad_jwt_5000_mesh"] = await burst(
            f"http://127.0.0.1:{mp}/", 5000, lambda i: send(i, "hello"), {"Authorization": f"Bearer {bad}"}
        )
        await asyncio.sleep(3)
        # 4. slow header: closed after --header-timeout (10s)
        r, w = await asyncio.open_connection("127.0.0.1", gp)
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        t = time.monotonic()
        data = await asyncio.wait_for(r.read(), 30)
        out["slow_header"] = {"closed_after_s": round(time.monotonic() - t, 2), "answer": data[:30].decode()}
        log = open(f"{home}/server.log").read()
        out["log_tracebacks"] = log.count("Traceback")
        out["log_too_many_open_files"] = log.count("Too many open files")
    finally:
        p.terminate()
        p.wait()
    # 5. 2000 holds with --max-pending 20
    p, mp, gp = start(f"{base}/b", "--max-pending", "20", "--rate-limit", "off")
    try:
        home = f"{base}/b"
        admin = token(home, "root", "admin", "approver", "agent")
        async with aiohttp.ClientSession() as s:
            pol = {
                "name": "bulk",
                "scope_type": "tool",
                "enforcement": "require_approval",
                "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 10}},
            }
            async with s.post(
                f"http://127.0.0.1:{gp}/internal/policies/new", json=pol, headers={"Authorization": f"Bearer {admin}"}
            ) as r:
                assert r.status == 201, await r.text()
        out["holds_2000_max20"] = await burst(
            f"http://127.0.0.1:{mp}/", 2000, send, {"Authorization": f"Bearer {admin}"}
        )
    finally:
        p.terminate()
        p.wait()
    print(json.dumps(out, indent=1, default=str))
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
