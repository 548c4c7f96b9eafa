"""``airlock serve``: the mesh and the gateway in one process over one store.

Everything the server holds is opened and closed by the ``cleanup_ctx`` contexts of
:func:`mesh.wiring.lifecycle`, carried by the first app started, so the second finds the store open and
is stopped before it closes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import shutil
import signal
import sys
from pathlib import Path

from aiohttp import web

from gateway.app import create_gateway_app
from gateway.connections import (
    AcceptErrors,
    ConnectionLimits,
    Gate,
    GuardedSite,
    connection_cap,
    raise_descriptor_limit,
    runner_for,
)
from gateway.settings import home, make_verifier, mesh_config
from mesh.a2a.app import create_mesh_app
from mesh.agents.base import AgentRegistry
from mesh.agents.demo import StagingDbAgent
from mesh.store import make_store
from mesh.wiring import Mesh, lifecycle

log = logging.getLogger("airlock")


def command_path() -> str:
    """How to run ``airlock`` from this shell: its name when it is on PATH, else the path that was run
    (relative to the working directory when under it), so the banner's hint works when pasted."""
    if shutil.which("airlock"):
        return "airlock"
    program = Path(sys.argv[0]).resolve()
    if program.name != "airlock":
        return f"{sys.executable} -m gateway.cli"
    try:
        return str(program.relative_to(Path.cwd()))
    except ValueError:
        return str(program)


def build_apps(args: argparse.Namespace) -> tuple[list[tuple[web.Application, int]], str, str]:
    """The apps to run with their ports, and the mesh's and the gateway's URLs. Settings are checked here,
    before anything is opened."""
    airlock_home = home()
    airlock_home.mkdir(parents=True, exist_ok=True)
    store = make_store(args.store or f"sqlite:///{airlock_home}/airlock.db")
    config = mesh_config(args, airlock_home)
    mesh_url = (args.public_url or f"http://{args.host}:{args.mesh_port}").rstrip("/")
    agents = AgentRegistry()
    if args.demo:
        agents.add(StagingDbAgent(airlock_home / "staging.db"), default=True)
    verifier = make_verifier(args)
    mesh = Mesh(store, config, agents)
    apps: list[tuple[web.Application, int]] = []
    if not args.gateway_only:
        apps.append((create_mesh_app(mesh, verifier, mesh_url), args.mesh_port))
    if not args.mesh_only:
        apps.append((create_gateway_app(mesh, verifier), args.gateway_port))
    first = apps[0][0]
    for position, ctx in enumerate(lifecycle(mesh)):
        first.cleanup_ctx.insert(position, ctx)
    return apps, mesh_url, config.gateway_url


def connection_limits(args: argparse.Namespace) -> ConnectionLimits:
    return ConnectionLimits(
        max_connections=args.max_connections, header_timeout=args.header_timeout, idle_timeout=args.idle_timeout
    )


async def start_sites(
    apps: list[tuple[web.Application, int]], host: str, limits: ConnectionLimits
) -> tuple[list[web.AppRunner], Gate]:
    """Set up each app's runner and listen on its port, every connection through one gate (the process's
    cap). The descriptor limit is raised first, and the cap kept under it. On failure, what was set up is
    left in the list for the caller to clean up."""
    soft, hard = raise_descriptor_limit()
    cap = connection_cap(limits.max_connections, soft)
    if cap < limits.max_connections:
        log.warning(
            "--max-connections %d lowered to %d: the process may open %d descriptors (hard limit %s)",
            limits.max_connections,
            cap,
            soft,
            hard,
        )
    gate = Gate(cap)
    runners: list[web.AppRunner] = []
    try:
        for app, port in apps:
            runner = runner_for(app, limits)
            runners.append(runner)
            await runner.setup()
            await GuardedSite(runner, host, port, gate=gate, limits=limits).start()
    except BaseException:
        for runner in reversed(runners):
            await runner.cleanup()
        raise
    return runners, gate


def settle_heap() -> None:
    """Once the servers are up: what start-up made (modules, classes, the apps, the store's connections) is
    moved out of the cyclic garbage collector's sight. It lives as long as the process, yet every full
    collection walked all of it while every request waited: under load those pauses were most of the 99th
    percentile's latency (63 to 73 ms against 23 to 29 ms frozen, at 32 clients). Garbage is collected first, so
    none of it is kept forever."""
    gc.collect()
    gc.freeze()


async def serve(args: argparse.Namespace) -> None:
    apps, mesh_url, gateway_url = build_apps(args)
    accept_errors = AcceptErrors(asyncio.get_running_loop()).install()
    runners: list[web.AppRunner] = []
    try:
        runners, _ = await start_sites(apps, args.host, connection_limits(args))
        settle_heap()
        if args.auth == "none":
            log.warning(
                "AUTH IS OFF (--auth none): anyone who can reach these ports can send and resolve. Development only."
            )
        if not args.gateway_only:
            print(f"Airlock mesh    (A2A JSON-RPC): {mesh_url}/", flush=True)
        if not args.mesh_only:
            print(f"Airlock gateway (approvals):    {gateway_url}/", flush=True)
        if args.auth != "none":
            print(
                f"Get a token (another shell):    {command_path()} token --sub you --role approver --role admin",
                flush=True,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        accept_errors.uninstall()
