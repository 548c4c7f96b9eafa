"""``airlock approvals …`` against a running gateway, and ``airlock audit verify`` against a store.

The approvals commands speak the gateway's ``/v1/approvals`` routes over HTTP (``--url`` or
``AIRLOCK_URL``; the token from ``--token`` or ``AIRLOCK_TOKEN``). An HTTP error prints the server's
message on stderr and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8081"
TIMEOUT_S = 30.0


class CliError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


# ---------------------------------------------------------------------------------------------- parser


def json_object(text: str) -> dict[str, Any]:
    """``--arguments``: a JSON object, refused before anything is sent when it is not one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def add_commands(sub: Any, env: Any, home: Any) -> None:
    """Add ``approvals`` and ``audit`` to the ``airlock`` parser (``env``/``home`` as in :mod:`gateway.cli`)."""
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument(
        "--url", default=env("URL", DEFAULT_URL), help=f"the gateway (default $AIRLOCK_URL or {DEFAULT_URL})"
    )
    client.add_argument("--token", default=env("TOKEN"), help="a Bearer token (default $AIRLOCK_TOKEN)")
    client.add_argument("--json", action="store_true", help="print the server's JSON answer")
    client.add_argument("--timeout", type=float, default=TIMEOUT_S, help=argparse.SUPPRESS)

    approvals = sub.add_parser("approvals", help="list, show and resolve approvals on a running gateway")
    verbs = approvals.add_subparsers(dest="approvals_command", required=True)
    listing = verbs.add_parser("list", parents=[client], help="the pending approvals")
    listing.add_argument("--run-id", help="only this run's approvals")
    listing.add_argument(
        "--page-size", type=int, default=500, choices=range(1, 501), metavar="1..500", help=argparse.SUPPRESS
    )
    show = verbs.add_parser("show", parents=[client], help="one approval")
    show.add_argument("id")
    for verb in ("approve", "deny"):
        resolve = verbs.add_parser(verb, parents=[client], help=f"{verb} a pending approval")
        resolve.add_argument("id")
        resolve.add_argument("--reason", help="why (at most 1000 characters; a denial's reason is told to the agent)")
        if verb == "approve":
            resolve.add_argument(
                "--arguments",
                type=json_object,
                help="the call's new arguments, a JSON object (the hold's policy must have allow_edits)",
            )

    audit = sub.add_parser("audit", help="the audit trail")
    audit_verbs = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_verbs.add_parser("verify", help="recompute the hash chain and name the first broken entry")
    verify.add_argument(
        "--store",
        default=env("STORE"),
        help=f"sqlite:///path or postgresql://… (default $AIRLOCK_STORE, else {home()}/airlock.db)",
    )


def run(args: argparse.Namespace, home: Any) -> int:
    if args.command == "audit":
        return cmd_audit_verify(args, home)
    try:
        return APPROVALS[args.approvals_command](args)
    except CliError as exc:
        suffix = f" (HTTP {exc.status})" if exc.status is not None else ""
        print(f"error: {exc.message}{suffix}", file=sys.stderr)
        return 1


# ---------------------------------------------------------------------------------------------- HTTP


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as an error: the bearer token is never sent on to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def request(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    parts = urllib.parse.urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"--url must be the gateway's http:// or https:// address, not {args.url!r}")
    url = args.url.rstrip("/") + path
    headers = {"Accept": "application/json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(req, timeout=args.timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raise CliError(error_message(exc.read(), exc.reason), exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"cannot reach {args.url}: {reason}") from None
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise CliError(f"the gateway answered {method} {path} with something that is not JSON") from None


def error_message(raw: bytes, fallback: Any) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return str(fallback or raw.decode(errors="replace").strip() or "request failed")
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    return str(fallback or "request failed")


def quoted(approval_id: str) -> str:
    return urllib.parse.quote(approval_id, safe="")


# ---------------------------------------------------------------------------------------------- approvals


def summary(approval: dict[str, Any]) -> str:
    text = approval.get("command") or approval.get("path") or approval.get("message") or ""
    text = " ".join(str(text).split())
    return text if len(text) <= 60 else text[:57] + "..."


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def all_pages(args: argparse.Namespace) -> dict[str, Any]:
    """Every pending approval, page after page (the listing follows ``next_cursor``), as one listing."""
    query: dict[str, str] = {"limit": str(args.page_size)}
    if args.run_id:
        query["run_id"] = args.run_id
    body = request(args, "GET", "/v1/approvals?" + urllib.parse.urlencode(query))
    approvals = list(body.get("approvals") or [])
    while body.get("next_cursor"):
        body = request(args, "GET", "/v1/approvals?" + urllib.parse.urlencode({**query, "cursor": body["next_cursor"]}))
        approvals += body.get("approvals") or []
    return {**body, "approvals": approvals, "next_cursor": None}


def cmd_list(args: argparse.Namespace) -> int:
    body = all_pages(args)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    approvals = body.get("approvals") or []
    if not approvals:
        print("no pending approvals")
        return 0
    rows = [["ID", "TOOL", "AGENT", "POLICY", "EXPIRES", "SUMMARY"]]
    for a in approvals:
        rows.append(
            [
                str(a.get("id", "")),
                str(a.get("tool") or "-"),
                str(a.get("agent") or "-"),
                str(a.get("policy") or "-"),
                str(a.get("expires_at") or "-"),
                summary(a),
            ]
        )
    print(table(rows))
    for group in body.get("run_groups") or []:
        print(f"run {group.get('run_id')}: {group.get('count')} pending")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    body = request(args, "GET", f"/v1/approvals/{quoted(args.id)}")
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    width = max((len(k) for k in body), default=0)
    for key, value in body.items():
        shown = "-" if value is None else value if isinstance(value, str) else json.dumps(value)
        print(f"{key.ljust(width)}  {shown}")
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    approved = args.approvals_command == "approve"
    payload: dict[str, Any] = {"approved": approved}
    if args.reason:
        payload["reason"] = args.reason
    if getattr(args, "arguments", None) is not None:
        payload["arguments"] = args.arguments
    body = request(args, "POST", f"/v1/approvals/{quoted(args.id)}/resolve", payload)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    line = f"{body.get('status') or ('approved' if approved else 'denied')} {body.get('id', args.id)}"
    if body.get("status") == "pending":  # an approval a quorum still needs more of
        line += f" ({len(body.get('approvals') or [])} of {body.get('approvals_required')} approvals)"
    elif body.get("task_state"):
        line += f" (task {body['task_state']})"
    print(line)
    return 0


APPROVALS = {"list": cmd_list, "show": cmd_show, "approve": cmd_resolve, "deny": cmd_resolve}


# ---------------------------------------------------------------------------------------------- audit


def cmd_audit_verify(args: argparse.Namespace, home: Any) -> int:
    from mesh.audit import audit_key, verify_chain
    from mesh.store import make_store

    url = args.store or f"sqlite:///{home()}/airlock.db"
    key_path = home() / "callback.key"  # the server's key, read here, never made: the head was signed with it
    key = audit_key(key_path.read_bytes()) if key_path.is_file() else None

    async def check() -> Any:
        store = make_store(url)
        path = getattr(store, "path", None)
        if path is not None and not path.exists():
            raise FileNotFoundError(f"no database at {path}")
        await store.open()
        try:
            return await verify_chain(store, key)
        finally:
            await store.close()

    try:
        report = asyncio.run(check())
    except Exception as exc:
        print(f"error: cannot read the audit trail from {url}: {exc}", file=sys.stderr)
        return 2
    if report.broken_at is not None:
        print(f"broken at entry {report.broken_at}: {report.reason}")
        return 1
    if report.head_problem is not None:
        print(f"broken: {report.head_problem}")
        return 1
    signed = "signed head checked" if report.signed else f"head signature not checked: no {key_path}"
    print(f"ok: {report.entries} entries, head at entry {report.head_seq} ({signed})")
    return 0
