"""The mesh's agent card: what A2A clients read before they call.

Capabilities say only what works, because clients act on them.
"""

from __future__ import annotations

from typing import Any

from a2ui import agent_extension
from mesh.agents.base import AgentRegistry

VERSION = "0.1.0"


def agent_card(agents: AgentRegistry, url: str, *, auth: bool) -> dict[str, Any]:
    skills: list[dict[str, Any]] = [
        {
            "id": "policy-guard",
            "name": "Policy guard",
            "description": 'Send a tool call as a DataPart {"tool", "arguments"}; the answer is the policy '
            "decision, or a hold in input-required until a person approves or denies it.",
            "tags": ["policy", "approval"],
        }
    ]
    for agent in agents.all():
        skills.extend(agent.skills())
    card: dict[str, Any] = {
        "name": "Airlock",
        "description": "A2A mesh that holds risky agent actions for a human decision.",
        "url": url,
        "version": VERSION,
        "protocolVersion": "0.3.0",
        "preferredTransport": "JSONRPC",
        "additionalInterfaces": [{"url": url, "transport": "JSONRPC"}],
        # v1.0: one entry per binding and version; both versions answer on the same endpoint
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": "0.3.0"},
        ],
        "capabilities": {
            "streaming": True,
            "pushNotifications": True,
            "stateTransitionHistory": True,
            # A2UI v0.9 surfaces for clients that activate it; others see the Form part alone
            "extensions": [agent_extension()],
        },
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/plain", "application/json", "application/json+a2ui"],
        "skills": skills,
    }
    if auth:
        card["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        card["security"] = [{"bearer": []}]
    return card
