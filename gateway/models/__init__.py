"""Pydantic models of the REST surface: every request body, query and response is a model, routes parse
with them, and the OpenAPI document's schemas are generated from them (``python -m gateway.models``
writes them into ``schemas/openapi.json``; ``tests/gateway/test_openapi.py`` fails when the committed
document differs), so what the server takes, what it answers and what the document says cannot drift.

One module per surface (``messages``, ...); ``base`` holds the strict JSON types and ``parse``;
``document`` gathers every module's models."""
