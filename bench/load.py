"""Running the load: wrk (with the Lua scripts in ``bench/lua``) and the aiohttp load process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.procs import LOAD_CORE, ROOT, ChildCpu, Proc, pinned

LUA = Path(__file__).resolve().parent / "lua"
MARKER = "BENCH_JSON "


def _cpu(procs: Sequence[Proc]) -> float:
    """CPU seconds the (still running) processes have used so far."""
    return sum(p.cpu_s() for p in procs if p.alive())


def run_wrk(
    url: str,
    script: str,
    args: list[str],
    *,
    connections: int,
    duration: int,
    servers: list[Proc],
    load_procs: Sequence[Proc] = (),
    addrs: list[str] | None = None,
    done_files: list[Path] | None = None,
) -> dict[str, Any]:
    """One wrk run; returns the script's summary plus req/s, ms figures and CPU use of both sides (the load
    side: wrk plus ``load_procs``, the long-running helpers on the load core such as the webhook receiver).

    With ``addrs`` (host:port of each server) wrk runs one thread per server and the connections are split
    evenly across them. With ``done_files`` the run ends (SIGINT, as wrk expects) once they all exist."""
    threads = len(addrs) if addrs else 1
    argv = pinned(
        LOAD_CORE,
        [
            *("wrk", f"-t{threads}", f"-c{max(connections, threads)}", f"-d{duration}s", "--timeout", "10s"),
            *("-s", str(LUA / script), url, "--", *args),
        ],
    )
    env = {**os.environ, "BENCH_ADDRS": ",".join(addrs) if addrs else "-", "BENCH_THREADS": str(threads)}
    cpu0, helper0, wall0 = _cpu(servers), _cpu(load_procs), time.perf_counter()
    with ChildCpu() as load_cpu:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if done_files:
            deadline = time.monotonic() + duration
            while proc.poll() is None and time.monotonic() < deadline:
                if all(f.exists() for f in done_files):
                    proc.send_signal(signal.SIGINT)
                    break
                time.sleep(0.005)
        try:
            stdout, stderr = proc.communicate(timeout=duration + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
    wall = time.perf_counter() - wall0
    server_cpu, helper_cpu = _cpu(servers) - cpu0, _cpu(load_procs) - helper0
    line = next((ln for ln in stdout.splitlines() if ln.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{stdout}\n{stderr}")
    result: dict[str, Any] = json.loads(line[len(MARKER) :])
    seconds = result["duration_us"] / 1e6
    result.update(
        seconds=seconds,
        rps=result["ok"] / seconds if seconds else 0.0,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        server_cpu_pct=100 * server_cpu / wall,
        load_cpu_pct=100 * (load_cpu.seconds + helper_cpu) / wall,
        connections=connections,
    )
    return result


def run_loadgen(
    args: list[str], *, timeout: float = 1800, servers: Sequence[Proc] = (), load_procs: Sequence[Proc] = ()
) -> dict[str, Any]:
    """One run of the aiohttp load process; its JSON line plus the CPU use of both sides over the run (the
    load side: the load process plus ``load_procs``)."""
    argv = pinned(LOAD_CORE, [sys.executable, "-m", "bench.loadgen", *args])
    cpu0, helper0 = _cpu(servers), _cpu(load_procs)
    with ChildCpu() as cpu:
        wall0 = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        wall = time.perf_counter() - wall0
    server_cpu, helper_cpu = _cpu(servers) - cpu0, _cpu(load_procs) - helper0
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_cpu_pct"] = 100 * server_cpu / wall
    result["load_cpu_pct"] = 100 * (cpu.seconds + helper_cpu) / wall
    return result
