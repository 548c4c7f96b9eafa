"""``airlock serve``: the mesh and the gateway in one process over one store."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from aiohttp import web

from gateway.app import create_gateway_app
from gateway.cli import home, jwt_secret
from gateway.secrets_files import load_or_create_key
from gateway.signing import check_key
from mesh.agent_admin import load_agents
from mesh.agents.base import AgentRegistry
from mesh.agents.demo import StagingDbAgent
from mesh.auth import TokenVerifier
from mesh.replication import link_replicas
from mesh.server import create_mesh_app
from mesh.service import Mesh, MeshConfig
from mesh.store import make_store
from mesh.store.postgres import PostgresStore
from mesh.sweeper import run_sweeper

log = logging.getLogger("airlock")


def signing_key(args: argparse.Namespace) -> bytes | None:
    """The key for signed approval links: ``--signing-key FILE``, or made once in ``$AIRLOCK_HOME``."""
    if args.signing_key:
        return check_key(Path(args.signing_key).read_bytes().strip())
    if args.sign:
        return check_key(load_or_create_key(home() / "signing.key"))
    return None


def make_verifier(args: argparse.Namespace) -> TokenVerifier | None:
    if args.auth == "none":
        return None
    claims = {"audience": args.jwt_audience, "issuer": args.jwt_issuer}
    if args.jwt_public_key:
        return TokenVerifier.from_public_key_file(Path(args.jwt_public_key), **claims)
    return TokenVerifier(secret=jwt_secret(args.jwt_secret), **claims)


def mesh_config(args: argparse.Namespace, airlock_home: Path) -> MeshConfig:
    """The mesh's settings from the command line (and the environment it reads)."""
    return MeshConfig(
        approval_timeout_s=args.approval_timeout,
        gateway_url=(args.gateway_url or f"http://{args.host}:{args.gateway_port}").rstrip("/"),
        callback_key=load_or_create_key(airlock_home / "callback.key"),
        push_allow_private=args.push_allow_private,
        agent_timeout_s=args.agent_timeout,
        max_pending=args.max_pending,
        sync_turns=not args.unsynced_turns,
    )


async def serve(args: argparse.Namespace) -> None:
    airlock_home = home()
    airlock_home.mkdir(parents=True, exist_ok=True)
    store = make_store(args.store or f"sqlite:///{airlock_home}/airlock.db")
    mesh_url = (args.public_url or f"http://{args.host}:{args.mesh_port}").rstrip("/")
    config = mesh_config(args, airlock_home)
    gateway_url = config.gateway_url
    agents = AgentRegistry()
    if args.demo:
        agents.add(StagingDbAgent(airlock_home / "staging.db"), default=True)
    verifier = make_verifier(args)
    link_key = signing_key(args)  # settings are checked before anything is opened

    await store.open()
    await agents.start()
    mesh = Mesh(store, config, agents)
    loaded = await load_agents(mesh)  # before recovery: an approved action may be for a downstream agent
    if loaded:
        log.info("loaded %d downstream agent(s)", loaded)
    recovered = await mesh.recover()
    if recovered:
        log.info("finished %d approved action(s) interrupted by the last stop", recovered)
    if isinstance(store, PostgresStore):
        await link_replicas(mesh, store)
    roles: list[tuple[web.Application, int]] = []
    if not args.gateway_only:
        roles.append((create_mesh_app(mesh, verifier, mesh_url), args.mesh_port))
    if not args.mesh_only:
        roles.append((create_gateway_app(mesh, verifier, signing_key=link_key), args.gateway_port))
    runners: list[web.AppRunner] = []
    sweeper = asyncio.create_task(run_sweeper(mesh))
    try:
        for app, port in roles:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, args.host, port).start()
            runners.append(runner)
        if verifier is None:
            log.warning(
                "AUTH IS OFF (--auth none): anyone who can reach these ports can send and resolve. Development only."
            )
        if not args.gateway_only:
            print(f"Airlock mesh    (A2A JSON-RPC): {mesh_url}/", flush=True)
        if not args.mesh_only:
            print(f"Airlock gateway (approvals):    {gateway_url}/", flush=True)
        if verifier is not None:
            print("Get a token:  airlock token --sub you --role approver --role admin", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        for runner in reversed(runners):
            await runner.cleanup()
        await agents.stop()
        await store.close()
