"""The dashboard: Security → Approval Queue, History and Policies, served by the gateway under ``/dashboard``.

Server-rendered pages (aiohttp-jinja2) with one small plain script; see ``docs/dashboard.md``.
:mod:`.routes` adds it to an app, :mod:`.sessions` signs people in (kept light: the CLI imports it).
"""
