"""The agent card at both well-known paths."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import Airlock, start_airlock

PATHS = ["/.well-known/agent-card.json", "/.well-known/agent.json"]


@pytest.mark.parametrize("path", PATHS)
async def test_card_fields(airlock: Airlock, path: str) -> None:
    resp = await airlock.mesh_client.get(path)
    assert resp.status == 200
    assert resp.content_type == "application/json"
    card = await resp.json()
    assert card["protocolVersion"] == "0.3.0"
    assert card["preferredTransport"] == "JSONRPC"
    url = urlparse(card["url"])
    assert url.scheme in ("http", "https") and url.netloc
    assert card["name"] and card["description"] and card["version"]
    caps = card["capabilities"]
    assert caps["streaming"] is True
    assert caps["pushNotifications"] is True
    skill_ids = [s["id"] for s in card["skills"]]
    assert "bulk_delete_expired" in skill_ids
    for skill in card["skills"]:
        assert skill["id"] and skill["name"] and skill["description"] and isinstance(skill["tags"], list)
    assert card["defaultInputModes"] and card["defaultOutputModes"]
    for iface in card.get("additionalInterfaces", []):
        assert urlparse(iface["url"]).scheme in ("http", "https")
        assert iface["transport"] == "JSONRPC"


async def test_card_needs_no_token_and_declares_bearer(airlock: Airlock) -> None:
    card = await (await airlock.mesh_client.get(PATHS[0], headers={})).json()
    schemes = card["securitySchemes"]
    assert any(s.get("type") == "http" and s.get("scheme", "").lower() == "bearer" for s in schemes.values())
    for requirement in card["security"]:
        assert set(requirement) <= set(schemes)


async def test_both_paths_serve_the_same_card(airlock: Airlock) -> None:
    a = await (await airlock.mesh_client.get(PATHS[0])).json()
    b = await (await airlock.mesh_client.get(PATHS[1])).json()
    assert a == b


async def test_card_without_auth_declares_no_security(tmp_path: Path) -> None:
    async with start_airlock(tmp_path, auth=False) as instance:
        card = await (await instance.mesh_client.get(PATHS[0])).json()
        assert not card.get("security")
        reply = await instance.rpc(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "message/send",
                "params": {"message": {"role": "user", "parts": [{"kind": "text", "text": "hi"}]}},
            },
            headers={},
        )
        assert reply["result"]["status"]["state"] == "input-required"
