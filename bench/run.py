"""``python -m bench``: start the baselines and Airlock, run the scenarios, print one table.

Servers run on core 0, load (wrk, the aiohttp load process, the webhook receiver) on core 1. Every figure
is the median of ``--rounds`` runs taken in rotation over the targets being compared (A, B, C, A, B, C, …).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import report
from bench.load import run_loadgen, run_wrk
from bench.loadgen import ALLOW_TOOL, HOLD_TOOL, RESOLVE_BODY, send_body
from bench.procs import LOAD_CORE, SERVER_CORE, Airlock, Proc, free_port, http, start, start_airlock, wait_http

PG_URL = os.environ.get("AIRLOCK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"
NEVER_POLICIES = 50
CHANNEL = "bench-hook"
HOLD_POLICY = "bench-hold"
ALL_SCENARIOS = (1, 2, 3, 4, 5, 6, 7)
SAME_CORE = "both replicas on core 0"  # every server runs on the server core, replicas too
# the split a machine of two cores can show: a replica on each core, the second sharing its core with the load
APART = "a replica on each core, the second beside the load; PostgreSQL unpinned"


@dataclass
class Options:
    scenarios: tuple[int, ...]
    duration: int
    rounds: int
    held: int  # held tasks for the pending list and memory scenarios
    resolves: int  # held tasks resolved per run in the resolve scenarios
    race: int  # concurrent resolves of one task
    out: Path
    quick: bool
    concurrency: tuple[int, ...] = (1, 32)


def fsync_ms(directory: Path, samples: int = 200) -> dict[str, float]:
    """What one sync of the store's disk costs in this run: 4 KiB appended to a file in ``directory`` (where
    the Airlocks keep their SQLite files) and ``fdatasync``'d, ``samples`` times; the median and the 99th
    percentile in ms. A synced allow at c=1 waits for one of these, so its p50 is judged against the floor's
    p50 plus this one."""
    path = directory / "fsync-probe"
    times: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        block = b"\0" * 4096
        for _ in range(samples):
            os.write(fd, block)
            start = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 3), "p99_ms": round(times[int(len(times) * 0.99) - 1], 3)}


def vs_fsync(m: dict[str, Any], floor: dict[str, Any] | None, fsync: dict[str, float] | None) -> str:
    """A synced allow at c=1 against its target: the floor's p50 plus one fsync plus 0.5 ms."""
    if not (floor and fsync):
        return ""
    bound = floor["p50_ms"] + fsync["p50_ms"] + 0.5
    return f"; p50 {m['p50_ms']:.2f} vs floor+fsync+0.5 = {bound:.2f} ms (fsync {fsync['p50_ms']:.2f} ms)"


def vs_baselines(m: dict[str, Any], ref: dict[str, Any] | None, floor: dict[str, Any] | None) -> str:
    """An allow row against the reference and the floor of the same run."""
    if not (ref and floor):
        return ""
    return (
        f"{report.ratio(m['rps'], ref['rps'])}x ref, {report.pct(m['rps'], floor['rps'])} floor, "
        f"p99 {report.ratio(m['p99_ms'], floor['p99_ms'])}x floor"
    )


@dataclass
class Bench:
    opts: Options
    work: Path
    procs: list[Proc] = field(default_factory=list)
    airlocks: list[Airlock] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    hook_port: int = 0
    hook: Proc | None = None  # the webhook receiver, on the load core: its CPU counts as load
    bodies: dict[str, Path] = field(default_factory=dict)

    # ------------------------------------------------------------------ processes

    def start_helpers(self) -> None:
        self.hook_port = free_port()
        hook = start(
            "webhook",
            [sys.executable, "-m", "bench.webhook_receiver", "--port", str(self.hook_port)],
            self.work,
            core=LOAD_CORE,
        )
        self.procs.append(hook)
        self.hook = hook
        wait_http(hook, f"http://127.0.0.1:{self.hook_port}/healthz")
        for name, tool in (("allow", ALLOW_TOOL), ("hold", HOLD_TOOL)):
            path = self.work / f"{name}.json"
            path.write_text(json.dumps(send_body(tool, "@MSGID@")))
            self.bodies[name] = path
        pending = self.work / "pending.json"
        pending.write_text(json.dumps({"limit": 50, "offset": 0}))
        self.bodies["pending"] = pending

    def baseline(self, name: str, module: str) -> tuple[Proc, str]:
        port = free_port()
        proc = start(name, [sys.executable, "-m", module, "--port", str(port)], self.work)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}/"
        wait_http(proc, url, method="POST", body=b"{}")
        return proc, url

    def airlock(
        self,
        name: str,
        *,
        store: str | None = None,
        replicas: int = 1,
        hold: bool = True,
        notify: bool = True,
        options: tuple[str, ...] = (),
        cores: tuple[str, ...] = (SERVER_CORE,),
    ) -> Airlock:
        """A fresh Airlock with 50 policies that never match and, with ``hold``, one require_approval policy
        for ``bench.hold`` that (with ``notify``) notifies a webhook channel."""
        if store == "pg":
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            self.schemas.append(schema)
            store = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
        airlock = start_airlock(name, self.work, store, replicas=replicas, options=options, cores=cores)
        self.airlocks.append(airlock)
        airlock.admin = airlock.token("bench-admin", "admin")
        airlock.agent = airlock.token("bench-agent", "agent")
        airlock.approver = airlock.token("bench-approver", "approver")
        gw = airlock.gateway_urls[0]
        for i in range(NEVER_POLICIES):
            self._ok(
                http(
                    "POST",
                    f"{gw}/internal/policies/new",
                    {
                        "name": f"never_{i}",
                        "scope_type": "tool",
                        "enforcement": "block" if i % 2 else "require_approval",
                        "evaluator": {"plugin": "tool_match", "config": {"tools": [f"never_{i}"]}},
                    },
                    airlock.admin,
                )
            )
        if hold and notify:
            self._ok(
                http(
                    "POST",
                    f"{gw}/internal/channels/new",
                    {
                        "name": CHANNEL,
                        "type": "webhook",
                        "config": {"url": f"http://127.0.0.1:{self.hook_port}/{name}"},
                    },
                    airlock.admin,
                )
            )
        if hold:
            self._ok(
                http(
                    "POST",
                    f"{gw}/internal/policies/new",
                    {
                        "name": HOLD_POLICY,
                        "scope_type": "tool",
                        "enforcement": "require_approval",
                        "evaluator": {"plugin": "tool_match", "config": {"tools": [HOLD_TOOL]}},
                        "channels": [CHANNEL] if notify else [],
                    },
                    airlock.admin,
                )
            )
        self._probe(airlock, "allow", "completed")
        if hold:
            self._probe(airlock, "hold", "input-required")
        return airlock

    @staticmethod
    def _ok(answer: tuple[int, Any]) -> Any:
        status, body = answer
        if status >= 300:
            raise RuntimeError(f"setup call failed: {status} {body}")
        return body

    def _probe(self, airlock: Airlock, kind: str, state: str) -> None:
        for mesh in airlock.mesh_urls:
            body = send_body(ALLOW_TOOL if kind == "allow" else HOLD_TOOL, f"probe-{uuid.uuid4().hex}")
            status, answer = http("POST", f"{mesh}/", body, airlock.agent)
            got = (answer.get("result") or {}).get("status", {}).get("state") if isinstance(answer, dict) else None
            if status != 200 or got != state:
                raise RuntimeError(f"{airlock.name}: a {kind} send answered {status} {answer!r}, expected {state}")

    def hook_count(self, name: str) -> int:
        _, body = http("GET", f"http://127.0.0.1:{self.hook_port}/count")
        return int(body["received"].get(f"/{name}", 0))

    def wait_webhooks(self, airlock: Airlock, expected: int, timeout: float = 600) -> float:
        """Until the server has delivered ``expected`` webhooks (so their delivery does not load a later run)."""
        start_t = time.perf_counter()
        while time.perf_counter() - start_t < timeout:
            if self.hook_count(airlock.name) >= expected:
                return time.perf_counter() - start_t
            time.sleep(0.2)
        self.notes.append(f"{airlock.name}: {self.hook_count(airlock.name)} of {expected} webhooks after {timeout}s")
        return time.perf_counter() - start_t

    def fill(self, airlock: Airlock, count: int, out: Path) -> dict[str, Any]:
        """``count`` held tasks through the HTTP API (message/send at high concurrency); ids go to ``out``."""
        if count <= 0:
            out.write_text("")
            return {"held": 0, "seconds": 0.0, "rate": 0.0, "errors": {}}
        result = run_loadgen(
            [
                "holds",
                "--url",
                ",".join(f"{m}/" for m in airlock.mesh_urls),
                "--token",
                airlock.agent,
                "--count",
                str(count),
                "--concurrency",
                "64",
                "--out",
                str(out),
            ]
        )
        if result["held"] != count:
            raise RuntimeError(f"{airlock.name}: held {result['held']} of {count}: {result['errors']}")
        return result

    def cleanup(self) -> None:
        for airlock in self.airlocks:
            airlock.stop()
        for proc in self.procs:
            proc.stop()
        if self.schemas:
            from mesh.store.postgres import drop_schema

            async def drop_all() -> None:
                for schema in self.schemas:
                    await drop_schema(f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}")

            try:
                asyncio.run(drop_all())
            except Exception as exc:
                print(f"warning: could not drop schemas {self.schemas}: {exc}", file=sys.stderr)

    @property
    def load_procs(self) -> list[Proc]:
        """The long-running helpers on the load core, whose CPU counts in a run's load CPU."""
        return [self.hook] if self.hook else []

    # ------------------------------------------------------------------ measuring

    def rotate(self, targets: list[tuple[str, Callable[[], dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
        """Run every target ``rounds`` times in rotation; each figure of the result is the median."""
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in targets}
        for r in range(self.opts.rounds):
            for name, run in targets:
                result = run()
                runs[name].append(result)
                print(f"  round {r + 1} {name}: {report.brief(result)}", file=sys.stderr, flush=True)
        self.raw.setdefault("runs", {}).update(runs)
        return {name: median_of(results) for name, results in runs.items()}

    def send_run(
        self, url: str, kind: str, token: str | None, c: int, servers: list[Proc], addrs: list[str] | None = None
    ) -> Callable[[], dict[str, Any]]:
        expect = '"state":"input-required"' if kind == "hold" else '"state":"completed"'
        args = [str(self.bodies[kind]), f"Bearer {token}" if token else "-", expect]
        return lambda: run_wrk(
            url,
            "post.lua",
            args,
            connections=c,
            duration=self.opts.duration,
            servers=servers,
            load_procs=self.load_procs,
            addrs=addrs,
        )

    def drained(self, airlock: Airlock, run: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        """``run``, then a wait until ``airlock`` has delivered the webhooks its held tasks queued, so their
        delivery does not load the next target of the rotation; the wait is ``webhook_drain_s``."""

        def wrapped() -> dict[str, Any]:
            before = self.hook_count(airlock.name)
            result = run()
            result["webhook_drain_s"] = self.wait_webhooks(airlock, before + int(result["ok"]))
            return result

        return wrapped

    # ------------------------------------------------------------------ scenarios

    def scenario_send(self) -> None:
        """1 (allow path vs the floor and the reference) and 2 (hold path vs allow)."""
        want = set(self.opts.scenarios)
        # name, url, body, token, servers, the Airlock whose webhooks to wait for after each run
        targets: list[tuple[str, str, str, str | None, list[Proc], Airlock | None]] = []
        if 1 in want:
            floor, floor_url = self.baseline("floor", "bench.floor_server")
            ref, ref_url = self.baseline("ref", "bench.ref_server")
            targets += [
                ("floor", floor_url, "allow", None, [floor], None),
                ("ref", ref_url, "allow", None, [ref], None),
            ]
        allow = self.airlock("allow", hold=False)
        targets.append(("allow", f"{allow.mesh_urls[0]}/", "allow", allow.agent, allow.procs, None))
        if 1 in want:  # the same, answered before the sync (an operator's choice; see the README)
            unsynced = self.airlock("allow-unsynced", hold=False, options=("--unsynced-turns",))
            targets.append(("unsynced", f"{unsynced.mesh_urls[0]}/", "allow", unsynced.agent, unsynced.procs, None))
        if 2 in want:
            hold = self.airlock("hold")
            targets.append(("hold", f"{hold.mesh_urls[0]}/", "hold", hold.agent, hold.procs, hold))
        for c in self.opts.concurrency:
            print(f"scenario 1/2 send at c={c}", file=sys.stderr, flush=True)
            runs = []
            for n, u, k, t, s, hooks in targets:
                run = self.send_run(u, k, t, c, s)
                runs.append((f"{n}@c{c}", self.drained(hooks, run) if hooks else run))
            med = self.rotate(runs)
            floor_m, ref_m, allow_m = med.get(f"floor@c{c}"), med.get(f"ref@c{c}"), med[f"allow@c{c}"]
            if floor_m:
                self.rows.append(report.row("floor: bare aiohttp", c, floor_m))
            if ref_m:
                self.rows.append(report.row("ref: a2a-sdk 1.3 + uvicorn", c, ref_m))
            target = ">=10x ref, >=50% floor, p99<=3x" if ref_m and floor_m else ""
            against = vs_baselines(allow_m, ref_m, floor_m)
            if c == 1:
                self.raw["fsync"] = fsync = fsync_ms(self.work)  # the store's disk, measured within the run
                against += vs_fsync(allow_m, floor_m, fsync)
            self.rows.append(report.row("1 allow (sqlite, jwt, 50 pol)", c, allow_m, against, target))
            unsynced_m = med.get(f"unsynced@c{c}")
            if unsynced_m:
                against = vs_baselines(unsynced_m, ref_m, floor_m)
                self.rows.append(report.row("1 allow, --unsynced-turns", c, unsynced_m, against, target))
            if 2 in want:
                hold_m = med[f"hold@c{c}"]
                self.rows.append(
                    report.row(
                        "2 hold (+1 match, webhook)",
                        c,
                        hold_m,
                        f"{report.pct(hold_m['rps'], allow_m['rps'])} allow; "
                        f"webhooks drained {hold_m['webhook_drain_s']:.1f}s after a run",
                        ">=50% allow",
                    )
                )

    def resolve_runs(self, airlock: Airlock, label: str) -> Callable[[], dict[str, Any]]:
        """A run resolves the next ``resolves`` held tasks of ``airlock`` (filled beforehand)."""
        ids = (self.work / f"{airlock.name}-ids.txt").read_text().split()
        n = self.opts.resolves
        state = {"round": 0}
        addrs = [u.removeprefix("http://") for u in airlock.gateway_urls] if len(airlock.replicas) > 1 else None

        def run() -> dict[str, Any]:
            r = state["round"]
            state["round"] += 1
            chunk = self.work / f"{airlock.name}-ids-{r}.txt"
            chunk.write_text("\n".join(ids[r * n : (r + 1) * n]) + "\n")
            args = [str(chunk), f"Bearer {airlock.approver}", json.dumps(RESOLVE_BODY)]
            threads = len(addrs) if addrs else 1
            result = run_wrk(
                airlock.gateway_urls[0],
                "resolve.lua",
                args,
                connections=32,
                duration=900,
                servers=airlock.procs,
                load_procs=self.load_procs,
                addrs=addrs,
                done_files=[Path(f"{chunk}.done.{i + 1}") for i in range(threads)],
            )
            if result["ok"] != n or result["conflict"] or result["other"]:
                self.notes.append(
                    f"{label}: round {r + 1}: {result['ok']} of {n} resolved, "
                    f"{result['conflict']} 409, {result['other']} other"
                )
            return result

        return run

    def prepare_resolve(self, airlock: Airlock) -> None:
        total = self.opts.resolves * self.opts.rounds
        ids = self.work / f"{airlock.name}-ids.txt"
        before = self.hook_count(airlock.name)
        filled = self.fill(airlock, total, ids)
        drained = self.wait_webhooks(airlock, before + total)
        self.raw.setdefault("fill", {})[airlock.name] = {**filled, "webhook_drain_s": drained}
        print(
            f"  {airlock.name}: {total} held in {filled['seconds']:.1f}s, webhooks drained +{drained:.1f}s",
            file=sys.stderr,
            flush=True,
        )

    def scenario_resolve(self, pg: list[tuple[str, Airlock]]) -> None:
        """3 (SQLite) and the resolve half of 7 (PostgreSQL, 1 and 2 replicas), in one rotation."""
        targets: list[tuple[str, Airlock]] = []
        if 3 in self.opts.scenarios:
            targets.append(("3 resolve (sqlite)", self.airlock("resolve")))
        targets += [(f"7 resolve ({name})", a) for name, a in pg]
        if not targets:
            return
        print(f"scenario 3/7 resolve: {self.opts.resolves} held tasks per run, 32 clients", file=sys.stderr)
        for _, airlock in targets:
            self.prepare_resolve(airlock)
        med = self.rotate([(label, self.resolve_runs(a, label)) for label, a in targets])
        for label, airlock in targets:
            m = med[label]
            text = f"{m['ok']:.0f} resolved in {m['seconds']:.2f}s"
            if m["extra"]:
                text += f", {m['extra']:.0f} /healthz fillers"
                if m["latency_from"] != "script":
                    text += " (in p50/p99)"
            if len(airlock.replicas) > 1:
                text += f" ({APART if 'core each' in label else SAME_CORE})"
            self.rows.append(report.row(label, 32, m, text))

    def scenario_pending_memory(self) -> None:
        """4 (one page of /messages/pending with 100 vs ``held`` held tasks) and 6 (RSS 0 vs ``held``)."""
        want = set(self.opts.scenarios)
        # no channel here: what is measured is the queue's size, not its notifications
        big = self.airlock("pending-big", notify=False)
        rss0 = big.procs[0].rss_kb()
        filled = self.fill(big, self.opts.held, self.work / "pending-big-ids.txt")
        rss1 = big.procs[0].rss_kb()
        self.raw["fill"] = {**self.raw.get("fill", {}), big.name: filled}
        print(
            f"  {big.name}: {self.opts.held} held in {filled['seconds']:.1f}s ({filled['rate']:.0f}/s)",
            file=sys.stderr,
            flush=True,
        )
        if 4 in want:
            small = self.airlock("pending-small", notify=False)
            self.fill(small, 100, self.work / "pending-small-ids.txt")
            print("scenario 4 pending list", file=sys.stderr, flush=True)
            for c in self.opts.concurrency:
                targets = []
                for label, a in (("small", small), ("big", big)):
                    args = [str(self.bodies["pending"]), f"Bearer {a.approver}", '"total":']
                    targets.append(
                        (
                            f"pending-{label}@c{c}",
                            lambda a=a, args=args, c=c: run_wrk(
                                f"{a.gateway_urls[0]}/messages/pending",
                                "post.lua",
                                args,
                                connections=c,
                                duration=self.opts.duration,
                                servers=a.procs,
                                load_procs=self.load_procs,
                            ),
                        )
                    )
                med = self.rotate(targets)
                m_small, m_big = med[targets[0][0]], med[targets[1][0]]
                self.rows.append(report.row("4 pending page (100 held)", c, m_small))
                self.rows.append(
                    report.row(
                        f"4 pending page ({report.count(self.opts.held)} held)",
                        c,
                        m_big,
                        f"p50 {report.ratio(m_big['p50_ms'], m_small['p50_ms'])}x, "
                        f"p99 {report.ratio(m_big['p99_ms'], m_small['p99_ms'])}x, "
                        f"req/s {report.ratio(m_big['rps'], m_small['rps'])}x of 100 held",
                        "p50 <=1.5x",
                    )
                )
        if 6 in want:
            rss2 = big.procs[0].rss_kb()
            growth = (rss1 - rss0) / 1024
            self.raw["memory"] = {
                "rss_0_kb": rss0,
                "rss_held_kb": rss1,
                "rss_after_lists_kb": rss2,
                "held": self.opts.held,
            }
            self.rows.append(
                report.text_row(
                    f"6 memory (VmRSS, {report.count(self.opts.held)} held)",
                    f"0 held {rss0 / 1024:.1f} MB -> {rss1 / 1024:.1f} MB: +{growth:.1f} MB"
                    + (f" (after lists {rss2 / 1024:.1f} MB)" if 4 in want else ""),
                    "<=50 MB",
                )
            )

    def scenario_race(self) -> None:
        """5: ``race`` concurrent resolves of one held task: exactly one 200, all answered."""
        airlock = self.airlock("race")
        floor, floor_url = self.baseline("race-floor", "bench.floor_server")
        print(f"scenario 5 race: {self.opts.race} concurrent resolves of one task", file=sys.stderr, flush=True)
        ids = self.work / "race-ids.txt"
        self.fill(airlock, self.opts.rounds, ids)
        tasks = iter(ids.read_text().split())
        results: list[dict[str, Any]] = []

        def race_run() -> dict[str, Any]:
            result = run_loadgen(
                [
                    "race",
                    "--url",
                    airlock.gateway_urls[0],
                    "--token",
                    airlock.approver,
                    "--task",
                    next(tasks),
                    "--count",
                    str(self.opts.race),
                ],
                servers=airlock.procs,
                load_procs=self.load_procs,
            )
            results.append(result)
            return result

        def floor_run() -> dict[str, Any]:
            return run_loadgen(
                ["race", "--url", floor_url.rstrip("/"), "--count", str(self.opts.race), "--send"],
                servers=[floor],
                load_procs=self.load_procs,
            )

        med = self.rotate([("race", race_run), ("race-floor", floor_run)])
        wins = [r["statuses"].get("200", 0) for r in results]
        answered = [r["answered"] for r in results]
        others = [{k: v for k, v in r["statuses"].items() if k not in ("200", "409")} for r in results]
        ok = all(w == 1 for w in wins) and all(a == self.opts.race for a in answered) and not any(others)
        self.rows.append(
            report.text_row(
                f"5 race ({self.opts.race} resolves of 1 task)",
                f"{'OK' if ok else 'FAIL'}: 200s per run {wins}, answered {answered}/{self.opts.race}"
                + (f", other {others}" if any(others) else "")
                + f"; last answer {med['race']['last_answer_ms']:.0f} ms "
                f"(same burst of sends to the floor: {med['race-floor']['last_answer_ms']:.0f} ms); "
                f"load process {med['race']['load_cpu_pct']:.0f}% CPU",
                "exactly one 200",
                med["race"],
            )
        )
        floor.stop()

    def scenario_pg_send(self) -> list[tuple[str, Airlock]]:
        """The allow half of 7 on PostgreSQL, 1 and 2 replicas; returns the servers for the resolve half."""
        pg1 = self.airlock("pg-1", store="pg")
        pg2 = self.airlock("pg-2", store="pg", replicas=2)
        apart = self.airlock("pg-2-apart", store="pg", replicas=2, cores=(SERVER_CORE, LOAD_CORE))
        print("scenario 7 allow on PostgreSQL", file=sys.stderr, flush=True)
        pairs = (("pg2", pg2, "2 replicas", SAME_CORE), ("apart", apart, "2 replicas, a core each", APART))
        for c in self.opts.concurrency:
            targets = [(f"pg1@c{c}", self.send_run(f"{pg1.mesh_urls[0]}/", "allow", pg1.agent, c, pg1.procs))]
            if c > 1:
                for key, two, _, _ in pairs:
                    addrs = [u.removeprefix("http://") for u in two.mesh_urls]
                    targets.append(
                        (f"{key}@c{c}", self.send_run(f"{two.mesh_urls[0]}/", "allow", two.agent, c, two.procs, addrs))
                    )
            med = self.rotate(targets)
            self.rows.append(report.row("7 allow (pg, 1 replica)", c, med[f"pg1@c{c}"]))
            if c > 1:
                for key, _, label, where in pairs:
                    m2 = med[f"{key}@c{c}"]
                    ratio = report.ratio(m2["rps"], med[f"pg1@c{c}"]["rps"])
                    self.rows.append(report.row(f"7 allow (pg, {label})", c, m2, f"{ratio}x 1 replica ({where})"))
        return [("pg, 1 replica", pg1), ("pg, 2 replicas", pg2), ("pg, 2 replicas, a core each", apart)]

    def run(self) -> None:
        want = set(self.opts.scenarios)
        if 7 in want:
            problem = pg_problem()
            if problem is not None:
                want.discard(7)
                self.notes.append(f"scenario 7 skipped: PostgreSQL at {PG_URL} is not reachable ({problem})")
                print(f"scenario 7 skipped: {problem}", file=sys.stderr)
        self.start_helpers()
        if want & {1, 2}:
            self.scenario_send()
        pg = self.scenario_pg_send() if 7 in want else []
        if 3 in want or pg:
            self.scenario_resolve(pg)
        if want & {4, 6}:
            self.scenario_pending_memory()
        if 5 in want:
            self.scenario_race()


def pg_problem() -> str | None:
    """Why PostgreSQL cannot be used (None when it answers)."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncio.wait_for(asyncpg.connect(PG_URL), 5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def scenario_order(row: dict[str, Any]) -> int:
    """Rows by scenario number; the baselines go with scenario 1."""
    head = row["scenario"].split(" ", 1)[0]
    return int(head) if head.isdigit() else 1


def median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the runs, except the counters (bad answers, errors, fillers), which
    are summed so that one failing run shows; ``runs`` is how many runs there were."""
    out: dict[str, Any] = {}
    for key, value in results[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in results]
            out[key] = sum(values) if report.is_counter(key) else statistics.median(values)
        else:
            out[key] = value
    out["runs"] = len(results)
    return out


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("Copyright")[0].strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": wrk,
        "a2a-sdk": metadata.version("a2a-sdk"),
        "aiohttp": metadata.version("aiohttp"),
        "uvicorn": metadata.version("uvicorn"),
    }


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs and 1 000 instead of 100 000 held tasks")
    parser.add_argument("--scenarios", default=",".join(map(str, ALL_SCENARIOS)), help="e.g. 1,2,5")
    parser.add_argument("--duration", type=int, help="seconds per wrk run (default 5, quick 1)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure, taken in rotation (default 3)")
    parser.add_argument("--held", type=int, help="held tasks for scenarios 4 and 6 (default 100000, quick 1000)")
    parser.add_argument("--resolves", type=int, help="held tasks resolved per run (default 10000, quick 1000)")
    parser.add_argument("--race", type=int, default=1000, help="concurrent resolves of one task (default 1000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        scenarios = tuple(sorted({int(s) for s in args.scenarios.split(",") if s.strip()}))
    except ValueError:
        parser.error("--scenarios takes numbers such as 1,2,5")
    if not scenarios or not set(scenarios) <= set(ALL_SCENARIOS):
        parser.error(f"--scenarios: choose from {ALL_SCENARIOS}")
    quick = args.quick
    return Options(
        scenarios=scenarios,
        duration=max(1, args.duration or (1 if quick else 5)),
        rounds=max(1, args.rounds),
        held=args.held if args.held is not None else (1_000 if quick else 100_000),
        resolves=max(1, args.resolves or (1_000 if quick else 10_000)),
        race=max(2, args.race),
        out=args.out,
        quick=quick,
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk, or `make bench` installs it)", file=sys.stderr)
        return 2
    info = machine()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as tmp:
        bench = Bench(opts, Path(tmp))
        try:
            bench.run()
        finally:
            bench.cleanup()
    bench.rows.sort(key=scenario_order)
    result = {
        "machine": info,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "seconds": round(time.time() - started, 1),
        "rows": bench.rows,
        "notes": bench.notes,
        "raw": bench.raw,
    }
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(result, indent=2, default=str))
    print(report.table(info, opts, bench.rows, bench.notes))
    print(f"results: {opts.out} ({result['seconds']:.0f}s)")
    return 0
