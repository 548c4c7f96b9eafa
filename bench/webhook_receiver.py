"""A small local webhook receiver: answers 200 to every POST and counts them by path (``GET /count``).
``python -m bench.webhook_receiver --port N``."""

from __future__ import annotations

import argparse

from aiohttp import web

RECEIVED = web.AppKey("received", dict)


async def receive(request: web.Request) -> web.Response:
    await request.read()
    counts = request.app[RECEIVED]
    counts[request.path] = counts.get(request.path, 0) + 1
    return web.json_response({"ok": True})


async def count(request: web.Request) -> web.Response:
    return web.json_response({"received": request.app[RECEIVED]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app[RECEIVED] = {}
    app.router.add_post("/{tail:.*}", receive)
    app.router.add_get("/count", count)
    app.router.add_get("/healthz", lambda _r: web.json_response({"status": "ok"}))
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
