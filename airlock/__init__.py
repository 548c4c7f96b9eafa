"""Airlock's agent-side package: what an agent imports to ask Airlock before it acts.

It stands apart from the server (``gateway``, ``mesh``, ``a2ui``) and imports none of it, so an agent
depends on the wire protocol only; an import-linter contract keeps it that way. See :mod:`airlock.client`.
"""
