"""Processes the harness starts: servers pinned to the server core, load pinned to the load core.

Every process is started by the harness, tracked by its pid and stopped by that pid.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVER_CORE = "0"
LOAD_CORE = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TOKEN_TTL = "12h"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: str, argv: list[str]) -> list[str]:
    """``argv`` run on one core (``taskset`` execs the command, so the pid stays the command's)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > int(core):
        return ["taskset", "-c", core, *argv]
    return argv


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def rss_kb(self) -> int:
        """VmRSS from /proc/PID/status, in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.name}")

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(
    name: str, argv: list[str], workdir: Path, *, core: str = SERVER_CORE, env: dict[str, str] | None = None
) -> Proc:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    popen = subprocess.Popen(
        pinned(core, argv),
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )
    return Proc(name, popen, log_path)


def wait_http(proc: Proc, url: str, *, timeout: float = 30.0, method: str = "GET", body: bytes | None = None) -> None:
    """Until ``url`` answers (any HTTP status counts for a POST probe; a GET needs 200)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log()}")
        try:
            req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=2) as resp:
                if resp.status == 200 or method == "POST":
                    return
        except urllib.error.HTTPError:
            if method == "POST":
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"{proc.name} did not become ready at {url}:\n{proc.log()}")


def http(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 30) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


@dataclass
class Airlock:
    """One or more ``airlock serve`` replicas over one store, sharing one ``AIRLOCK_HOME``."""

    name: str
    home: Path
    replicas: list[tuple[Proc, str, str]] = field(default_factory=list)  # (proc, mesh url, gateway url)
    admin: str = ""  # tokens, made once the server is up
    agent: str = ""
    approver: str = ""

    @property
    def procs(self) -> list[Proc]:
        return [p for p, _, _ in self.replicas]

    @property
    def mesh_urls(self) -> list[str]:
        return [m for _, m, _ in self.replicas]

    @property
    def gateway_urls(self) -> list[str]:
        return [g for _, _, g in self.replicas]

    def token(self, sub: str, *roles: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "token", "--sub", sub, "--ttl", TOKEN_TTL]
            + [a for r in roles for a in ("--role", r)],
            cwd=ROOT,
            env={**os.environ, "AIRLOCK_HOME": str(self.home)},
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


def start_airlock(
    name: str,
    workdir: Path,
    store: str | None,
    *,
    replicas: int = 1,
    options: tuple[str, ...] = (),
    cores: tuple[str, ...] = (SERVER_CORE,),
) -> Airlock:
    """``replicas`` servers over one store, replica ``i`` on ``cores[i % len(cores)]``."""
    home = workdir / name
    home.mkdir(parents=True, exist_ok=True)
    airlock = Airlock(name, home)
    for i in range(replicas):
        mesh_port, gateway_port = free_port(), free_port()
        argv = [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--mesh-port",
            str(mesh_port),
            "--gateway-port",
            str(gateway_port),
            "--approval-timeout",
            "12h",
            "--log-level",
            "WARNING",
            # the scenarios hold 100 000 tasks in one tenant and drive one principal as hard as they can:
            # no queue limit and no rate limits
            "--max-pending",
            "1000000000",
            "--rate-limit",
            "off",
            "--attempt-limit",
            "off",
        ]
        if store:
            argv += ["--store", store]
        argv += options
        proc = start(f"{name}-{i + 1}", argv, home, core=cores[i % len(cores)], env={"AIRLOCK_HOME": str(home)})
        mesh, gateway = f"http://127.0.0.1:{mesh_port}", f"http://127.0.0.1:{gateway_port}"
        airlock.replicas.append((proc, mesh, gateway))
        try:
            wait_http(proc, f"{gateway}/healthz", timeout=60)
            wait_http(proc, f"{mesh}/healthz", timeout=30)
        except Exception:
            airlock.stop()
            raise
    return airlock


class ChildCpu:
    """CPU seconds used by reaped children between ``__enter__`` and ``__exit__`` (the load process)."""

    def __enter__(self) -> ChildCpu:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._start = usage.ru_utime + usage.ru_stime
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.seconds = usage.ru_utime + usage.ru_stime - self._start
