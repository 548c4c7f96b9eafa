"""The aiohttp load process, for what wrk cannot express: creating many held tasks fast (their ids go to a
file), and the race (N concurrent resolves of one task, each on its own connection). Prints one JSON line.

    python -m bench.loadgen holds --url URL[,URL...] --token T --count N --concurrency C --out FILE
    python -m bench.loadgen race --url URL --token T --task ID --count N
    python -m bench.loadgen race --url URL --count N --send      (the same burst of message/send, no auth)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp
import orjson

HOLD_TOOL = "bench.hold"
ALLOW_TOOL = "bench.read"
RESOLVE_BODY = {"resolution": {"decision": "approve"}}


def send_body(tool: str, message_id: str) -> dict[str, Any]:
    """The JSON-RPC ``message/send`` every scenario uses: a guard's tool call as a DataPart."""
    return {
        "jsonrpc": "2.0",
        "id": message_id,
        "method": "message/send",
        "params": {
            "message": {
                "kind": "message",
                "role": "user",
                "messageId": message_id,
                "parts": [{"kind": "data", "data": {"tool": tool, "arguments": {"table": "orders", "limit": 10}}}],
            }
        },
    }


async def holds(urls: list[str], token: str, count: int, concurrency: int, out: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    ids: list[str] = []
    errors: Counter[str] = Counter()
    numbers = iter(range(count))
    targets = itertools.cycle(urls)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker() -> None:
            for n in numbers:
                body = orjson.dumps(send_body(HOLD_TOOL, f"hold-{n}-{uuid.uuid4().hex[:8]}"))
                try:
                    async with session.post(next(targets), data=body, headers=headers) as resp:
                        answer = orjson.loads(await resp.read())
                except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
                    errors[type(exc).__name__] += 1
                    continue
                result = answer.get("result") or {}
                if result.get("status", {}).get("state") == "input-required":
                    ids.append(result["id"])
                else:
                    errors[str(answer.get("error") or result.get("status", {}).get("state"))[:80]] += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    with open(out, "w") as f:
        f.write("\n".join(ids) + "\n")
    return {"held": len(ids), "seconds": seconds, "rate": len(ids) / seconds, "errors": dict(errors)}


async def race(url: str, token: str | None, task: str | None, count: int, send: bool) -> dict[str, Any]:
    """``count`` requests at once, each on a connection of its own; all connections are open before the
    first request leaves, so the burst is as concurrent as one process can make it."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if send:
        target, body = url, orjson.dumps(send_body(ALLOW_TOOL, "race"))
    else:
        target, body = f"{url}/messages/{task}/resolve", orjson.dumps(RESOLVE_BODY)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    statuses: Counter[str] = Counter()
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        # warm: open `count` connections (a GET each, held open together) so the burst measures requests only
        gate = asyncio.Event()
        opened = 0

        async def warm() -> None:
            nonlocal opened
            async with session.get(f"{url}/healthz") as resp:
                await resp.read()
                opened += 1
                if opened == count:
                    gate.set()
                await gate.wait()

        await asyncio.gather(*(warm() for _ in range(count)))
        last = 0.0

        async def one() -> None:
            nonlocal last
            try:
                async with session.post(target, data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[str(resp.status)] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
            last = time.perf_counter()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
    return {
        "count": count,
        "statuses": dict(statuses),
        "answered": sum(v for k, v in statuses.items() if k.isdigit()),
        "last_answer_ms": (last - start) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    sub = parser.add_subparsers(dest="mode", required=True)
    h = sub.add_parser("holds")
    h.add_argument("--url", required=True, help="mesh URL(s), comma-separated: requests alternate between them")
    h.add_argument("--token", required=True)
    h.add_argument("--count", type=int, required=True)
    h.add_argument("--concurrency", type=int, default=64)
    h.add_argument("--out", required=True)
    r = sub.add_parser("race")
    r.add_argument("--url", required=True)
    r.add_argument("--token")
    r.add_argument("--task")
    r.add_argument("--count", type=int, default=1000)
    r.add_argument("--send", action="store_true", help="send message/send to URL instead of resolving")
    args = parser.parse_args(argv)
    if args.mode == "holds":
        result = asyncio.run(holds(args.url.split(","), args.token, args.count, args.concurrency, args.out))
    else:
        result = asyncio.run(race(args.url, args.token, args.task, args.count, args.send))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
