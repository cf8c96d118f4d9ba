"""A dead link is noticed within seconds (the ping figures of tornado_app/settings.py): a page whose connection
stops carrying bytes, with no FIN and no RST (a dead Wi-Fi, a stalled tunnel), shows
"reconnecting" within 15 s, and connects again once the link is back.

The page runs in Chromium and reaches a real `python -m tornado_app` through a TCP proxy that
can freeze (tests/support/proxy.py). With Socket.IO's default ping figures (25 + 20 s) the
page went on saying "connected" for up to 45 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from deploy.services import free_port
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browser_missing
from tests.support.constants import OUTPUT_DIR
from tests.support.e2e import e2e_unavailable
from tests.support.matching import found
from tests.support.processes import ServerProcess
from tests.support.proxy import FreezableProxy
from tornado_app.patches.engineio_server import SWEEP_SECONDS
from tornado_app.settings import PRODUCTION

pytestmark = pytest.mark.e2e

SHOTS = OUTPUT_DIR / "liveness"
NOTICED_WITHIN = 15.0  # seconds: what the page promises (issue 22)
# The server's own rule: no frame for interval + timeout on a WebSocket; on long-polling, a
# pong late by `timeout`, found by the sweep that passes every second (SWEEP_SECONDS).
SERVER_GIVES_UP_WITHIN = PRODUCTION.ping_interval + PRODUCTION.ping_timeout + SWEEP_SECONDS + 1
STATE = "#live-view[data-socket-state={}]"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = browser_missing()
    if missing:
        e2e_unavailable(missing)
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server_behind_proxy() -> Iterator[tuple[ServerProcess, FreezableProxy]]:
    """The plain server, reached through a freezable proxy on another port: the page's
    `Host` is the proxy's address, so the server is told it by name (--allowed-host), the
    supported way to answer to a name other than its own; its own origin then follows."""
    proxy_port = free_port()
    server = ServerProcess("--port", str(free_port()), "--allowed-host", f"127.0.0.1:{proxy_port}")
    assert server.url, f"the server did not say where it serves: {server.first_line!r}"
    try:
        port = int(found(r":(\d+)/", server.url).group(1))
        with FreezableProxy("127.0.0.1", port, port=proxy_port) as proxy:
            yield server, proxy
    finally:
        server.close()


def test_the_defaults_give_up_a_silent_link_within_the_promise() -> None:
    """The page's rule (Socket.IO's JS client): a link with no ping for interval + timeout is dead."""
    assert PRODUCTION.ping_interval + PRODUCTION.ping_timeout <= NOTICED_WITHIN - 2  # room for a busy machine


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_frozen_link_shows_reconnecting_within_15_s_and_reconnects_after(
    browser: Any, server_behind_proxy: tuple[ServerProcess, FreezableProxy], transport: str
) -> None:
    server, proxy = server_behind_proxy
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    if transport == "polling":  # a page whose WebSocket is blocked on the way stays on long-polling
        context.add_init_script("window.WebSocket = undefined;")
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{proxy.port}/login")
        page.fill("#username", "Ada")
        page.click("#login-form button[type=submit]")
        page.wait_for_selector(STATE.format("connected"))
        if transport == "websocket":
            page.wait_for_selector("#handshake-log li:has-text('upgraded to websocket')")

        proxy.freeze()
        frozen_at = time.monotonic()
        # Waits well past the promise, so that a failure says how long it really took.
        page.wait_for_selector(STATE.format("connecting"), timeout=60_000)
        noticed = time.monotonic() - frozen_at
        print(f"\n{transport}: the page showed 'reconnecting' {noticed:.1f} s after the link froze")
        page.screenshot(path=SHOTS / f"frozen-{transport}.png")
        assert noticed <= NOTICED_WITHIN, f"the page said 'connected' for {noticed:.1f} s on a dead link"
        # The help under the socket says why, and stays through the reconnect attempts (the
        # state's own words change to "reconnecting (attempt 1)" 0.25 to 1.75 s after the drop,
        # which a loaded machine could reach before this line).
        assert "The connection dropped" in page.text_content("#socket-help-text")
        # The server gives the silent socket up as well, on its own (nothing from the page
        # reaches it): Ada leaves the others' presence lists instead of lingering for 45 s.
        server_noticed = seconds_until(lambda: "socket of 'Ada' from 127.0.0.1 closed:" in server.log(), frozen_at)
        print(f"{transport}: the server closed the silent socket {server_noticed:.1f} s after the link froze")
        assert server_noticed <= SERVER_GIVES_UP_WITHIN, f"the server kept a silent socket for {server_noticed:.1f} s"

        proxy.thaw()
        thawed_at = time.monotonic()
        # The client retries every few seconds at most (backoff capped at 5 s), and an attempt
        # made on the dead link goes through once it is back.
        page.wait_for_selector(STATE.format("connected"), timeout=45_000)
        print(f"{transport}: connected again {time.monotonic() - thawed_at:.1f} s after the link came back")
        page.wait_for_selector("#online-users li:has-text('Ada')")
    finally:
        context.close()
    _, _, log = server.stop()
    assert "Traceback" not in log


def seconds_until(condition: Callable[[], bool], since: float, within: float = 60) -> float:
    """Seconds from `since` (time.monotonic()) until `condition()` held; fails after `within`."""
    while not condition():
        assert time.monotonic() - since < within, f"still not true after {within} s"
        time.sleep(0.05)
    return time.monotonic() - since
