"""The ``airlock`` command: ``serve`` runs the mesh and the gateway; ``token`` prints a JWT; ``login-link``
prints a single-use dashboard sign-in URL; ``approvals``
and ``audit`` (:mod:`gateway.cli_client`) list and resolve approvals and check the audit trail.

Every ``serve`` option also reads an ``AIRLOCK_*`` environment variable (the flag wins).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.settings import env, env_flag, home, jwt_secret
from mesh.auth import ROLES, issue_token
from mesh.limits import Rate, parse_rate
from mesh.policy import parse_duration


def duration(value: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def retention(value: str) -> int:
    """A duration, or 0 (also ``off``): keep nothing."""
    if value.strip().lower() in ("0", "off"):
        return 0
    return duration(value)


def bounded_int(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``lo`` to ``hi``, or a usage error naming the option."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if not lo <= number <= hi:
            raise argparse.ArgumentTypeError(f"{number} is not from {lo} to {hi}")
        return number

    return parse


port = bounded_int(1, 65535)


def rate(value: str) -> Rate | None:
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def flag(parser: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup, option: str, help: str) -> None:
    """A switch that ``AIRLOCK_<OPTION>`` (1/true/yes/on) also turns on."""
    name = option.removeprefix("--").replace("-", "_").upper()
    parser.add_argument(option, action="store_true", default=env_flag(name), help=help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airlock", description="A2A gateway that holds risky agent actions for a human decision."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the mesh and the gateway")
    serve.add_argument("--host", default=env("HOST", "127.0.0.1"))
    # an AIRLOCK_* value is a string default: argparse converts it with the option's type, so a bad one is a
    # usage error naming the option, not a traceback
    serve.add_argument("--mesh-port", type=port, default=env("MESH_PORT", "8080") or "8080")
    serve.add_argument("--gateway-port", type=port, default=env("GATEWAY_PORT", "8081") or "8081")
    serve.add_argument("--store", default=env("STORE"), help="sqlite:///path (default $AIRLOCK_HOME/airlock.db)")
    serve.add_argument(
        "--approval-timeout",
        type=duration,
        default=env("APPROVAL_TIMEOUT", "1h") or "1h",
        help="how long a hold waits: 90s, 15m, 2h (default 1h)",
    )
    serve.add_argument(
        "--jwt-secret", default=env("JWT_SECRET"), help="HS256 secret (default: made once in $AIRLOCK_HOME/jwt.secret)"
    )
    serve.add_argument(
        "--jwt-public-key",
        type=Path,
        default=env("JWT_PUBLIC_KEY"),
        help="PEM public key: accept RS256/ES256 tokens instead of HS256",
    )
    serve.add_argument("--jwt-audience", default=env("JWT_AUDIENCE"))
    serve.add_argument("--jwt-issuer", default=env("JWT_ISSUER"))
    serve.add_argument(
        "--public-url",
        default=env("PUBLIC_URL"),
        help="the mesh's URL as clients reach it (default http://HOST:MESH_PORT)",
    )
    serve.add_argument(
        "--gateway-url",
        default=env("GATEWAY_URL"),
        help="the gateway's URL as people reach it (default http://HOST:GATEWAY_PORT)",
    )
    serve.add_argument(
        "--agent-timeout",
        type=duration,
        default=env("AGENT_TIMEOUT", "30s") or "30s",
        help="how long a downstream A2A agent may take to answer: 10s, 2m (default 30s)",
    )
    flag(serve, "--demo", "add the staging-db demo agent")
    serve.add_argument(
        "--auth",
        choices=["jwt", "none"],
        default=env("AUTH", "jwt"),
        help="'none' takes unauthenticated calls (development only)",
    )
    role = serve.add_mutually_exclusive_group()
    flag(role, "--mesh-only", "run only the mesh (A2A) role over the store")
    flag(role, "--gateway-only", "run only the gateway (people and admin) role over the store")
    flag(
        serve,
        "--push-allow-private",
        "let push notifications go to private, loopback and link-local addresses (development only)",
    )
    flag(
        serve,
        "--sign",
        "give every held approval signed approve/deny links (key made once in $AIRLOCK_HOME/signing.key)",
    )
    serve.add_argument("--signing-key", type=Path, default=env("SIGNING_KEY"), help="key file for signed links")
    serve.add_argument(
        "--max-pending",
        type=bounded_int(1, 10**9),
        default=env("MAX_PENDING", "10000") or "10000",
        help="pending approvals a tenant may hold; past it a hold (A2A or approvals API) is refused (default 10000)",
    )
    serve.add_argument(
        "--decision-retention",
        type=retention,
        default=env("DECISION_RETENTION", "30d") or "30d",
        help="how long each policy decision's action (tool, agent, arguments with sensitive values masked, text) "
        "is kept for policy dry-runs; the sweeper drops older ones: 7d, 12h, or 0 to keep none (default 30d)",
    )
    serve.add_argument(
        "--max-connections",
        type=bounded_int(16, 10**7),
        default=env("MAX_CONNECTIONS", "10000") or "10000",
        help="open connections per process, both ports together; past it a connection is answered 503 and "
        "closed (default 10000, lowered to fit the descriptor limit)",
    )
    serve.add_argument(
        "--header-timeout",
        type=duration,
        default=env("HEADER_TIMEOUT", "10s") or "10s",
        help="a request's header must arrive within this of the connection opening (or of its first byte "
        "between requests), else 408 and closed (default 10s)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=duration,
        default=env("IDLE_TIMEOUT", "75s") or "75s",
        help="a kept-alive connection idle this long is closed (default 75s)",
    )
    serve.add_argument(
        "--rate-limit",
        type=rate,
        default=env("RATE_LIMIT", "200/s:400") or "200/s:400",
        help="requests per caller on each port (its principal, else its address, bad tokens included): "
        "50/s, 600/m, 50/s:100 (burst 100), or off; past it 429 with Retry-After (default 200/s:400)",
    )
    serve.add_argument(
        "--attempt-limit",
        type=rate,
        default=env("ATTEMPT_LIMIT", "10/m:10") or "10/m:10",
        help="callback-token and signed-link attempts on one approval, from anyone: past it 429 "
        "(default 10/m:10), or off",
    )
    flag(
        serve,
        "--unsynced-turns",
        "answer a turn that leaves nobody waiting (allowed, blocked) before its write is synced; a killed "
        "process loses none, a power loss may lose the last of them; holds and resolutions stay synced",
    )
    serve.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"))

    token = sub.add_parser("token", help="print a JWT that a server on the same AIRLOCK_HOME accepts")
    token.add_argument("--sub", required=True)
    token.add_argument("--tenant", default="default")
    token.add_argument(
        "--role", action="append", choices=sorted(ROLES), dest="roles", help="repeat for several roles (default: agent)"
    )
    token.add_argument("--ttl", type=duration, default=duration("1h"))
    token.add_argument("--jwt-secret", default=env("JWT_SECRET"))
    token.add_argument("--audience", default=env("JWT_AUDIENCE"))
    token.add_argument("--issuer", default=env("JWT_ISSUER"))
    link = sub.add_parser(
        "login-link", help="print a single-use URL that signs in to the dashboard (valid 10 minutes)"
    )
    link.add_argument("--sub", required=True)
    link.add_argument("--tenant", default="default")
    link.add_argument(
        "--role",
        action="append",
        choices=["approver", "admin"],
        dest="roles",
        help="repeat for both (default: approver)",
    )
    link.add_argument(
        "--session", type=duration, default=duration("8h"), help="how long the session lasts once signed in (8h)"
    )
    link.add_argument(
        "--gateway-url",
        default=env("GATEWAY_URL"),
        help="the gateway's URL as people reach it (default http://127.0.0.1:$AIRLOCK_GATEWAY_PORT or 8081)",
    )
    from gateway.cli_client import add_commands

    add_commands(sub, env, home)
    return parser


def cmd_token(args: argparse.Namespace) -> int:
    print(
        issue_token(
            jwt_secret(args.jwt_secret, tell=True),
            args.sub,
            tenant=args.tenant,
            roles=args.roles or ["agent"],
            ttl_s=args.ttl,
            audience=args.audience,
            issuer=args.issuer,
        )
    )
    return 0


def cmd_login_link(args: argparse.Namespace) -> int:
    from gateway.dashboard.sessions import make_link_token
    from gateway.settings import home_key

    # the server's callback key (made once in $AIRLOCK_HOME) signs the link, under a key derived for links only
    key = home_key("callback.key", tell=True)
    try:
        roles = args.roles or ["approver"]
        token = make_link_token(key, args.sub, tenant=args.tenant, roles=roles, session_s=args.session)
    except ValueError as exc:
        print(f"airlock login-link: {exc}", file=sys.stderr)
        return 2
    base = (args.gateway_url or f"http://127.0.0.1:{env('GATEWAY_PORT', '8081') or '8081'}").rstrip("/")
    print(f"{base}/dashboard/login/link?t={token}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.serve import serve

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    except (ValueError, RuntimeError, OSError) as exc:  # bad settings, a taken port, a newer schema
        print(f"airlock serve: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "token":
        return cmd_token(args)
    if args.command == "login-link":
        return cmd_login_link(args)
    if args.command in ("approvals", "audit"):
        from gateway.cli_client import run

        return run(args, home)
    return cmd_serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
