"""REST error bodies on every route: JSON ``{"error": {"code", "message"}}``, the right status, never a 500."""

from __future__ import annotations

import gzip
import json

import orjson
import pytest

from tests.conftest import Airlock, bearer
from tests.gateway.conftest import error_of

MIB = 1024 * 1024
JSON = "application/json"

POST_ROUTES = [
    "/messages/pending",
    "/messages/some-task/resolve",
    "/internal/policies/new",
    "/internal/policies/update",
    "/internal/policies/delete",
    "/internal/channels/new",
    "/internal/channels/delete",
]
BAD_BODIES = [b"not json", b"{", b"{'a': 1}", b"NaN", b"\xff\xfe", b'{"a": 1e400}']


async def test_healthz(airlock: Airlock) -> None:
    resp = await airlock.gateway.get("/healthz")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert await resp.json() == {"status": "ok"}


async def test_healthz_needs_no_token_and_ignores_a_bad_one(airlock: Airlock) -> None:
    resp = await airlock.gateway.get("/healthz", headers={"Authorization": "Bearer junk"})
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("raw", BAD_BODIES)
async def test_non_json_body_is_400(airlock: Airlock, path: str, raw: bytes) -> None:
    resp = await airlock.gateway.post(path, data=raw, headers={**bearer(), "Content-Type": "application/json"})
    await error_of(resp, 400)


@pytest.mark.parametrize("path", [p for p in POST_ROUTES if p != "/messages/pending"])
@pytest.mark.parametrize("raw", [b"", b"[]", b'"text"', b"42", b"null"])
async def test_body_that_is_not_an_object_is_400(airlock: Airlock, path: str, raw: bytes) -> None:
    resp = await airlock.gateway.post(path, data=raw, headers={**bearer(), "Content-Type": "application/json"})
    await error_of(resp, 400)


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
async def test_pending_body_that_is_not_an_object_is_400(airlock: Airlock, raw: bytes) -> None:
    resp = await airlock.gateway.post("/messages/pending", data=raw, headers={**bearer(), "Content-Type": JSON})
    await error_of(resp, 400)


@pytest.mark.parametrize("path", POST_ROUTES)
async def test_body_over_one_mib_is_413(airlock: Airlock, path: str) -> None:
    raw = orjson.dumps({"resolution": {"decision": "approve"}, "pad": "x" * MIB})
    assert len(raw) > MIB
    resp = await airlock.gateway.post(path, data=raw, headers={**bearer(), "Content-Type": "application/json"})
    err = await error_of(resp, 413)
    assert err["code"] == "payload_too_large"


async def test_body_of_exactly_one_mib_is_not_413(airlock: Airlock) -> None:
    prefix, suffix = b'{"limit": 5, "pad": "', b'"}'
    raw = prefix + b"x" * (MIB - len(prefix) - len(suffix)) + suffix
    assert len(raw) == MIB
    resp = await airlock.gateway.post("/messages/pending", data=raw, headers={**bearer(), "Content-Type": JSON})
    assert resp.status == 200, await resp.text()


async def test_unknown_route_is_json_404(airlock: Airlock) -> None:
    await error_of(await airlock.gateway.get("/nope", headers=bearer()), 404)
    await error_of(await airlock.gateway.post("/messages/x/approve", json={}, headers=bearer()), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/messages/pending"),
        ("GET", "/messages/x/resolve"),
        ("DELETE", "/internal/policies"),
        ("GET", "/internal/policies/new"),
        ("POST", "/healthz"),
        ("POST", "/internal/plugins"),
    ],
)
async def test_wrong_method_is_json_405(airlock: Airlock, method: str, path: str) -> None:
    resp = await airlock.gateway.request(method, path, headers=bearer())
    err = await error_of(resp, 405)
    assert err["code"] == "method_not_allowed"
    allowed = {m.strip() for m in resp.headers["Allow"].split(",")}
    assert allowed and method not in allowed and allowed <= {"GET", "POST", "HEAD"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/messages/pending", {"limit": 10**30}),
        ("/messages/pending", {"offset": 10**30}),
        ("/messages/pending", {"offset": 10**9, "limit": 500}),
        ("/messages/pending", {"session_id": "\u0000" * 10}),
        ("/messages/x/resolve", {"resolution": {"decision": "approve"}, "callback_token": 12}),
        ("/messages/x/resolve", {"resolution": {"decision": "approve"}, "callback_token": ""}),
        ("/messages/x/resolve", {"resolution": {"decision": "approve"}, "callback_token": "\ud800"}),
        ("/internal/policies/new", {"name": ["a"]}),
        ("/internal/policies/new", {**{"name": "p", "scope_type": "tool", "enforcement": "allow"}, "evaluator": 5}),
        (
            "/internal/policies/new",
            {"name": "p", "scope_type": ["tool"], "enforcement": "allow", "evaluator": {"plugin": "always"}},
        ),
        (
            "/internal/policies/new",
            {"name": "p", "scope_type": "tool", "enforcement": {}, "evaluator": {"plugin": "always"}},
        ),
        (
            "/internal/policies/new",
            {"name": "p", "scope_type": "tool", "enforcement": "allow", "evaluator": {"plugin": ["always"]}},
        ),
        (
            "/internal/policies/new",
            {
                "name": "p",
                "scope_type": "tool",
                "enforcement": "allow",
                "evaluator": {"plugin": "command_match", "config": {"patterns": ["("]}},
            },
        ),
        (
            "/internal/policies/new",
            {
                "name": "p",
                "scope_type": "tool",
                "enforcement": "allow",
                "evaluator": {"plugin": "always"},
                "timeout": 10**30,
            },
        ),
        (
            "/internal/policies/new",
            {
                "name": "p",
                "scope_type": "tool",
                "enforcement": "allow",
                "evaluator": {"plugin": "always"},
                "priority": 10**30,
            },
        ),
        ("/internal/policies/update", {"policy_id": ["x"]}),
        ("/internal/policies/update", {"policy_id": None}),
        ("/internal/policies/delete", {"policy_id": {"a": 1}}),
        ("/internal/policies/delete", {}),
        ("/internal/channels/new", {"name": "c", "type": "webhook", "config": {"url": 5}}),
        ("/internal/channels/new", {"name": "c", "type": ["webhook"], "config": {"url": "http://x"}}),
        ("/internal/channels/new", {"name": "c", "type": "webhook", "config": {"url": "http://[::1"}}),
        ("/internal/channels/delete", {"name": ["c"]}),
        ("/internal/channels/delete", {}),
    ],
)
async def test_odd_bodies_never_500(airlock: Airlock, path: str, body: dict) -> None:
    raw = json.dumps(body).encode()  # stdlib: big integers and lone surrogates as the wire can carry them
    resp = await airlock.gateway.post(path, data=raw, headers={**bearer(), "Content-Type": "application/json"})
    assert resp.status < 500, await resp.text()
    assert resp.content_type == "application/json"
    if resp.status >= 400:
        await error_of(resp, resp.status)


@pytest.mark.parametrize(
    ("encoding", "raw"),
    [("gzip", b"this is not gzip"), ("deflate", b"nor this deflate")],
    ids=["gzip", "deflate"],
)
@pytest.mark.parametrize("path", ["/messages/pending", "/messages/x/resolve", "/internal/policies/new"])
async def test_body_that_does_not_decode_is_400(airlock: Airlock, path: str, encoding: str, raw: bytes) -> None:
    headers = {**bearer(), "Content-Encoding": encoding, "Content-Type": JSON}
    resp = await airlock.gateway.post(path, data=raw, headers=headers)
    await error_of(resp, 400)


async def test_compressed_json_body_is_read(airlock: Airlock) -> None:
    raw = gzip.compress(b'{"limit": 7}')
    headers = {**bearer(), "Content-Encoding": "gzip", "Content-Type": JSON}
    resp = await airlock.gateway.post("/messages/pending", data=raw, headers=headers)
    assert resp.status == 200
    assert (await resp.json())["limit"] == 7


async def test_compressed_body_over_one_mib_once_decoded_is_413(airlock: Airlock) -> None:
    raw = gzip.compress(b'{"pad": "' + b"0" * (2 * MIB) + b'"}')
    assert len(raw) < MIB
    headers = {**bearer(), "Content-Encoding": "gzip", "Content-Type": JSON}
    resp = await airlock.gateway.post("/messages/pending", data=raw, headers=headers)
    await error_of(resp, 413)


async def test_streamed_body_over_one_mib_is_413(airlock: Airlock) -> None:
    async def chunks():
        for _ in range(20):
            yield b"x" * 65536 * 2

    resp = await airlock.gateway.post("/messages/pending", data=chunks(), headers=bearer())
    await error_of(resp, 413)


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/octet-stream", None]
)
async def test_a_body_not_sent_as_json_is_415(airlock: Airlock, path: str, content_type: str | None) -> None:
    headers = {**bearer(), **({"Content-Type": content_type} if content_type else {})}
    resp = await airlock.gateway.post(path, data=b'{"resolution": {"decision": "approve"}}', headers=headers)
    err = await error_of(resp, 415)
    assert err["code"] == "unsupported_media_type"


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/merge-patch+json"])
async def test_json_media_types_with_parameters_or_suffixes_are_read(airlock: Airlock, content_type: str) -> None:
    resp = await airlock.gateway.post(
        "/messages/pending", data=b'{"limit": 3}', headers={**bearer(), "Content-Type": content_type}
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["limit"] == 3


async def test_an_empty_body_needs_no_content_type(airlock: Airlock) -> None:
    resp = await airlock.gateway.post("/messages/pending", headers=bearer())
    assert resp.status == 200, await resp.text()
