"""The OpenAPI document's schemas, generated from every surface's models.

``python -m gateway.models`` writes them into ``schemas/openapi.json``; the hand-written rest of the
document (paths, descriptions, shared responses) refers to them by component name."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from gateway.models import admin, approvals, messages, observe, slack
from gateway.models.base import Query

MODELS: tuple[type[BaseModel], ...] = (
    *messages.MODELS,
    *approvals.MODELS,
    *admin.MODELS,
    *observe.MODELS,
    *slack.MODELS,
)
# (method, path) → the model of that operation's query string
QUERIES: dict[tuple[str, str], type[Query]] = {
    **messages.QUERIES,
    **approvals.QUERIES,
    **admin.QUERIES,
    **observe.QUERIES,
    **slack.QUERIES,
}


def _tidy(node: Any) -> Any:
    """pydantic's JSON Schema as the document spells it: no titles, no null defaults, ``anyOf`` of plain
    types as a list of types."""
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tidy(v) for k, v in node.items() if k != "title" and not (k == "default" and v is None)}
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and all(isinstance(b, dict) and set(b) == {"type"} for b in any_of):
        out.pop("anyOf")
        types = [b["type"] for b in any_of]
        if "number" in types and "integer" in types:  # every integer is a number
            types.remove("integer")
        out = {"type": types if len(types) > 1 else types[0], **{k: v for k, v in out.items() if k != "type"}}
    return out


def schemas() -> dict[str, Any]:
    """The document's component schemas, by name, generated from the models."""
    out: dict[str, Any] = {}
    for model in MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            out[name] = _tidy(sub)
        out[model.__name__] = _tidy(schema)
    return out


def query_parameters(model: type[Query]) -> list[dict[str, Any]]:
    """The OpenAPI ``parameters`` (``in: query``) of one query model, in field order."""
    schema = _tidy(model.model_json_schema(ref_template="#/components/schemas/{model}"))
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop.pop("description")
        param["schema"] = prop
        params.append(param)
    return params


def write(path: str) -> None:
    with open(path) as f:
        doc = json.load(f)
    doc["components"]["schemas"].update(schemas())
    for (method, route), model in QUERIES.items():
        operation = doc["paths"][route][method]
        others = [p for p in operation.get("parameters", []) if p.get("in") != "query"]
        operation["parameters"] = query_parameters(model) + others
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
