"""`--process-label`: which process serves a socket, said in its `welcome`, shown on the page's
Socket card and written as the JSON log's `process` field; a bad label is refused at start.

Real servers (`python -m tornado_app` in child processes), a wire client, and Debian's
Chromium for the page (skipped with the reason where it is missing, failed under
REQUIRE_E2E=1). make cluster's labels and terminal: tests/test_cluster_terminal.py.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from deploy.services import ROOT, free_port
from tests.support.browser import PHONE, VIEWPORT, Person, box, launched_chromium, wait_for_socket
from tests.support.constants import OUTPUT_DIR
from tests.support.e2e import e2e_unavailable
from tests.support.forms import http_session, log_in
from tests.support.processes import ServerProcess
from tests.support.wire import WireSocket

pytestmark = pytest.mark.process  # every test here starts an app, redis-server or nginx

SHOTS = OUTPUT_DIR / "browser"


async def welcome_of(url: str, username: str = "ada") -> dict[str, Any]:
    """Log in and open a socket as a wire client: the welcome it gets."""
    async with http_session() as http:
        socket = await WireSocket.connect(http, url, await log_in(http, url, username), origin=url.rstrip("/"))
        try:
            return await socket.next("welcome")
        finally:
            await socket.close()


def test_the_welcome_names_the_process_by_its_label_and_json_logs_carry_the_same(
        server_process: Callable[..., ServerProcess]) -> None:
    server = server_process("--port", "0", "--process-label", "app7", "--log-format", "json")
    welcome = asyncio.run(welcome_of(server.url))
    assert welcome["process"] == "app7" and welcome["username"] == "ada"
    status, _, log = server.stop()
    assert status == 0
    lines = [json.loads(line) for line in log.splitlines()]
    assert any(line["message"].startswith("login: 'ada'") for line in lines)
    assert {line["process"] for line in lines} == {"app7"}, log


def test_without_a_label_the_process_is_its_pid_in_the_welcome_and_the_log(server_process: Callable[..., ServerProcess]) -> None:
    server = server_process("--port", "0", "--log-format", "json")
    assert asyncio.run(welcome_of(server.url))["process"] == str(server.process.pid)
    _, _, log = server.stop()
    assert {json.loads(line)["process"] for line in log.splitlines()} == {str(server.process.pid)}


@pytest.mark.parametrize("label", ["", "app 2", "a" * 33, "app2;id", "äpp2", "app/2", "<b>app</b>", "app\n2", "app2\u2028"])
def test_a_bad_label_is_refused_with_one_error_line_and_status_2(label: str) -> None:
    result = subprocess.run([sys.executable, "-m", "tornado_app", "--port", "0", "--process-label", label], cwd=ROOT,
                            check=False, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and result.stdout == ""  # never started serving
    # argparse's usage (as for every bad flag), then one line that says why.
    said = [line for line in result.stderr.splitlines() if not line.startswith(("usage: ", " "))]
    assert said == [f"tornado-app: error: argument --process-label: {label!r} is not a process label: "
                    "1 to 32 letters, digits, '.', '-' or '_' (e.g. app2)"], result.stderr


def test_the_longest_label_and_every_allowed_character_are_taken(server_process: Callable[..., ServerProcess]) -> None:
    label = "A-z_0.9" + "x" * 25
    server = server_process("--port", "0", "--process-label", label)
    assert asyncio.run(welcome_of(server.url))["process"] == label


# --- The page ---


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield from launched_chromium(e2e_unavailable)


def served_by(page: Any) -> str:
    """The Socket card's "Served by process ..." label, once it is shown."""
    page.wait_for_selector("#socket-process:not([hidden])")
    return page.text_content("#socket-process-label")


@pytest.mark.e2e
def test_the_socket_card_shows_the_process_and_a_reconnect_to_another_process_changes_it(browser: Any, redis_url: str) -> None:
    """Two processes on one Redis take turns on one port: the page's reconnect lands on the
    second, still logged in, and its Socket card (and handshake log) says so."""
    port = free_port()
    shared = ["--port", str(port), "--redis-url", redis_url, "--cookie-secret", "s" * 32]
    first = ServerProcess(*shared, "--process-label", "app1")
    second = None
    person = Person(browser, first.url)
    try:
        page = person.log_in("Ada")
        wait_for_socket(page, "connected")
        assert served_by(page) == "app1"
        assert page.is_visible("#socket-process") and page.text_content("#socket-process") == "Served by process app1"
        page.wait_for_selector("#handshake-log li:has-text('welcome as Ada, served by app1')")
        first.stop(signal.SIGINT)  # at once (SIGTERM may drain)
        page.wait_for_selector("#socket-process", state="hidden")  # not said while nobody serves it
        second = ServerProcess(*shared, "--process-label", "app2")
        wait_for_socket(page, "connected")
        assert served_by(page) == "app2"
        page.wait_for_selector("#handshake-log li:has-text('welcome as Ada, served by app2')")
        page.screenshot(path=SHOTS / "17-served-by-another-process.png")
        # Requests that found no server while it was away are the browser's reports, not the page's errors.
        assert [error for error in person.console_errors if not error.startswith(("Failed to load resource", "WebSocket connection to"))] == []
    finally:
        person.context.close()
        first.close()
        if second is not None:
            second.close()


@pytest.mark.e2e
@pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["1280x800", "390x844"])
def test_the_longest_label_fits_the_socket_card_and_the_page_has_no_accessibility_violation(
        browser: Any, server_process: Callable[..., ServerProcess], viewport: dict[str, int]) -> None:
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        e2e_unavailable("axe-playwright-python is not installed (pip install -e '.[test]')")
    label = "app-" + "9" * 28
    server = server_process("--port", "0", "--process-label", label)
    person = Person(browser, server.url, viewport)
    try:
        page = person.log_in("Ada")
        wait_for_socket(page, "connected")
        assert served_by(page) == label
        card, line = box(page, "section[aria-labelledby=socket-heading]"), box(page, "#socket-process")
        assert card["x"] <= line["x"] and line["x"] + line["width"] <= card["x"] + card["width"], (card, line)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # nothing wider than the phone
        violations = Axe().run(page).response["violations"]
        assert [(violation["id"], [node["target"] for node in violation["nodes"]]) for violation in violations] == []
        page.locator("section[aria-labelledby=socket-heading]").screenshot(
            path=SHOTS / f"17-socket-card-longest-label-{viewport['width']}x{viewport['height']}.png")
    finally:
        person.context.close()
