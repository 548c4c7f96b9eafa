"""Browser tests of the dashboard: Playwright for Python driving Debian's Chromium (never a browser of its own)
against a real ``airlock serve --demo`` process. A failed test leaves a screenshot in ``tests/dashboard/artifacts``.
Without Chromium (or Playwright) the tests skip, except under ``CI=true`` where they fail."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GUIDE_POLICY, GUIDE_TEXT, IN_CI
from tests.e2e.conftest import Server, start_server, stop_server

ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 5000
CHROMIUM = shutil.which("chromium")


def _missing() -> str | None:
    if CHROMIUM is None:
        return "Debian's chromium is not installed (make test installs it: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (make install-test)"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="module")  # closed before other modules' async tests run on their own loops
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        if IN_CI:
            pytest.fail(f"browser tests cannot run under CI=true: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield instance
        instance.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    instance = start_server(tmp_path / "home", "--demo")
    yield instance
    stop_server(instance)


class Pages:
    """New browser pages (each in a context of its own: its own cookies), screenshotted when the test fails."""

    def __init__(self, browser: Any, request: pytest.FixtureRequest) -> None:
        self.browser, self.request = browser, request
        self.contexts: list[Any] = []

    def new(self, **options: Any) -> Any:
        context = self.browser.new_context(**options)
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        report = getattr(self.request.node, "rep_call", None)
        failed = report is None or report.failed
        for n, context in enumerate(self.contexts):
            if failed:
                ARTIFACTS.mkdir(exist_ok=True)
                for m, page in enumerate(context.pages):
                    name = f"{self.request.node.name}-{n}-{m}.png"
                    try:
                        page.screenshot(path=str(ARTIFACTS / name), full_page=True)
                    except Exception:  # a page that crashed: keep going, close the rest
                        pass
            context.close()


@pytest.fixture
def pages(browser: Any, request: pytest.FixtureRequest) -> Iterator[Pages]:
    holder = Pages(browser, request)
    yield holder
    holder.close()


def call(url: str, body: Any = None, token: str | None = None, method: str | None = None) -> tuple[int, Any]:
    """One JSON request to the server (the test's own client, not the browser)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def send(server: Server, text: str, token: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``message/send`` to the mesh (a text, or a data part); the task it answers with."""
    part = {"kind": "data", "data": data} if data is not None else {"kind": "text", "text": text}
    body = {
        "jsonrpc": "2.0",
        "id": "1",
        "method": "message/send",
        "params": {"message": {"role": "user", "parts": [part]}},
    }
    status, reply = call(f"{server.mesh_url}/", body, token)
    assert status == 200 and "result" in reply, reply
    return reply["result"]


def add_guide_policy(server: Server) -> None:
    status, body = call(f"{server.gateway_url}/internal/policies/new", GUIDE_POLICY, server.token("root", "admin"))
    assert status == 201, body


def hold(server: Server) -> dict[str, Any]:
    """The guide's message, held by its policy: the task, in ``input-required``."""
    task = send(server, GUIDE_TEXT, server.token("carol", "agent"))
    assert task["status"]["state"] == "input-required", task
    return task


def approval_id(task: dict[str, Any]) -> str:
    meta = task["metadata"]["airlock"]
    return meta.get("approvalId") or meta["inputRequestId"]


def sign_in(page: Any, server: Server, sub: str = "alice", *roles: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{server.gateway_url}/dashboard")
    expect(page).to_have_url(f"{server.gateway_url}/dashboard/login")
    page.get_by_label("Airlock token").fill(server.token(sub, *(roles or ("approver",))))
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.gateway_url}/dashboard")
    expect(page.get_by_role("heading", name="Approval Queue")).to_be_visible()
