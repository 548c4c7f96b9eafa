"""``GET /v1/approvals`` a page at a time: a keyset cursor that neither repeats nor skips a hold while holds
come and go, bounded ``limit``, refused cursors; and the listings' long messages cut to a bound, whole at
``GET /v1/approvals/{id}``. Every answer is checked against the OpenAPI document."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from gateway.models.approvals import MESSAGE_LIMIT
from gateway.openapi import SPEC_PATH
from tests.conftest import Airlock, bearer
from tests.gateway.conftest import error_of
from tests.gateway.test_openapi import DOC_URI, assert_matches

AGENT = bearer("bot", "agent")
APPROVER = bearer("bob", "approver")
CALL = {"tool": "exec", "agent": "deploy-bot", "message": "clean the build cache", "command": "rm -rf /tmp/cache"}
LIST = "/v1/approvals"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def registry(doc: dict[str, Any]) -> Registry:
    return Registry().with_resource(DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012))


async def create(airlock: Airlock, **body: Any) -> dict[str, Any]:
    resp = await airlock.gateway.post(LIST, json={**CALL, **body}, headers=AGENT)
    answer = await resp.json()
    assert resp.status == 201, answer
    return answer


async def page(airlock: Airlock, doc: dict[str, Any], registry: Registry, **query: str | int) -> dict[str, Any]:
    resp = await airlock.gateway.get(LIST, params={k: str(v) for k, v in query.items()}, headers=APPROVER)
    return await assert_matches(doc, registry, resp, LIST, "get", 200)


async def walk(
    airlock: Airlock, doc: dict[str, Any], registry: Registry, limit: int, between: Any = None
) -> list[list[str]]:
    """Every page's ids, following next_cursor to the end; ``between`` runs after the first page."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query: dict[str, str | int] = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
        body = await page(airlock, doc, registry, **query)
        assert len(body["approvals"]) <= limit
        pages.append([a["id"] for a in body["approvals"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert body["approvals"], "a page with a next cursor has rows"
        if between is not None and len(pages) == 1:
            await between()


async def test_pages_walk_every_hold_once_in_creation_order(
    airlock: Airlock, doc: dict[str, Any], registry: Registry
) -> None:
    made = [(await create(airlock))["id"] for _ in range(7)]
    pages = await walk(airlock, doc, registry, limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == made
    # a last page that is exactly full says so: no empty page after it
    assert [len(p) for p in await walk(airlock, doc, registry, limit=7)] == [7]
    assert [len(p) for p in await walk(airlock, doc, registry, limit=500)] == [7]
    assert (await page(airlock, doc, registry))["next_cursor"] is None  # the default limit (50) holds them all


async def test_a_hold_made_or_resolved_between_pages_neither_repeats_nor_hides_another(
    airlock: Airlock, doc: dict[str, Any], registry: Registry
) -> None:
    made = [(await create(airlock))["id"] for _ in range(6)]
    late: list[str] = []

    async def meanwhile() -> None:
        late.append((await create(airlock))["id"])  # newest: on a later page
        # one of the first page is resolved, which shifts an offset but not a keyset
        resp = await airlock.gateway.post(f"{LIST}/{made[0]}/resolve", json={"approved": False}, headers=APPROVER)
        assert resp.status == 200, await resp.text()

    pages = await walk(airlock, doc, registry, limit=2, between=meanwhile)
    seen = [i for p in pages for i in p]
    assert len(seen) == len(set(seen)), "a hold was listed twice"
    assert seen == [*made, *late]


async def test_paging_within_a_run(airlock: Airlock, doc: dict[str, Any], registry: Registry) -> None:
    ours = [(await create(airlock, run_id="r1"))["id"] for _ in range(3)]
    await create(airlock, run_id="r2")
    first = await page(airlock, doc, registry, run_id="r1", limit=2)
    assert [a["id"] for a in first["approvals"]] == ours[:2]
    assert first["run_groups"] == [{"run_id": "r1", "count": 3, "ids": ours}]
    rest = await page(airlock, doc, registry, run_id="r1", limit=2, cursor=first["next_cursor"])
    assert [a["id"] for a in rest["approvals"]] == ours[2:] and rest["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "501", "", "1.5", "-1", "ten", " 5", "1e2", "9" * 40])
async def test_a_limit_out_of_bounds_or_not_an_integer_is_400_naming_it(
    airlock: Airlock, doc: dict[str, Any], registry: Registry, limit: str
) -> None:
    await create(airlock)
    resp = await airlock.gateway.get(LIST, params={"limit": limit}, headers=APPROVER)
    err = await assert_matches(doc, registry, resp, LIST, "get", 400)
    assert err["error"]["field"] == "limit", err


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "abc",
        "!!!",
        "x" * 401,
        b64(b"not json"),
        b64(b"[1.5]"),
        b64(b'["later", "id"]'),
        b64(b"[1.5, 7]"),
        b64(b'[true, "id"]'),
        b64(b'[1.5, ""]'),
        b64(b'[1e999, "id"]'),
        b64(b'{"created_at": 1.5, "id": "x"}'),
        b64(b"\xff\xfe"),
    ],
)
async def test_a_cursor_no_listing_gave_is_400_naming_it(
    airlock: Airlock, doc: dict[str, Any], registry: Registry, cursor: str
) -> None:
    await create(airlock)
    resp = await airlock.gateway.get(LIST, params={"cursor": cursor}, headers=APPROVER)
    err = await assert_matches(doc, registry, resp, LIST, "get", 400)
    assert err["error"]["field"] == "cursor", err


async def test_an_empty_run_id_is_400(airlock: Airlock) -> None:
    await error_of(await airlock.gateway.get(LIST, params={"run_id": ""}, headers=APPROVER), 400, field="run_id")


async def test_listings_cut_a_long_message_and_the_approval_keeps_it_whole(
    airlock: Airlock, doc: dict[str, Any], registry: Registry
) -> None:
    long_text = "why " * 2_500  # 10 000 characters, the most a created approval takes
    long = await create(airlock, message=long_text)
    edge = await create(airlock, message="x" * MESSAGE_LIMIT)  # exactly the bound: not cut
    rows = {a["id"]: a for a in (await page(airlock, doc, registry))["approvals"]}
    assert rows[long["id"]]["message"] == long_text[:MESSAGE_LIMIT]
    assert rows[long["id"]]["message_truncated"] is True
    assert (rows[edge["id"]]["message"], rows[edge["id"]]["message_truncated"]) == ("x" * MESSAGE_LIMIT, False)

    resp = await airlock.gateway.get(f"{LIST}/{long['id']}", headers=APPROVER)
    one = await assert_matches(doc, registry, resp, "/v1/approvals/{id}", "get", 200)
    assert (one["message"], one["message_truncated"]) == (long_text, False)

    resp = await airlock.gateway.post("/messages/pending", json={}, headers=APPROVER)
    listed = await assert_matches(doc, registry, resp, "/messages/pending", "post", 200)
    held = {m["approval_id"]: m for m in listed["messages"]}
    assert held[long["id"]]["user_input"] == long_text[:MESSAGE_LIMIT]
    assert held[long["id"]]["message_truncated"] is True
    assert held[edge["id"]]["message_truncated"] is False
