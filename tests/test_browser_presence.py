"""The page's side of asking for the presence state again (issue 21, item 6), in Chromium: a
page that missed a change asks, and when refused for asking too often it waits as long as the
refusal says, asks again, and ends with the server's list."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from typing import Any

import aiohttp
import pytest

from tests.support.forms import log_in
from tests.support.processes import ServerProcess
from tests.support.wire import WireSocket
from tornado_app.reasons import STATE_SLOW_DOWN

from .test_browser import Person, browser, wait_for_socket  # noqa: F401 (browser: the fixture)

pytestmark = pytest.mark.e2e

ASK = re.compile(r'42(\d+)\["presence_state"\]')
RETRY_AFTER = 2.5  # seconds, more than the page's own 1.2 s between two tries


def until(page: Any, condition: Any, timeout: float = 10) -> None:
    """Wait for `condition()`, letting Playwright run meanwhile (its WebSocket route's
    handlers run only while this thread is inside a Playwright call, never in time.sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s")
        page.wait_for_timeout(50)


class Crowd:
    """People who come online from a loop of their own, one call at a time."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.http: aiohttp.ClientSession | None = None
        self.sockets: list[WireSocket] = []

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def join(self, name: str) -> None:
        async def joining() -> None:
            if self.http is None:
                self.http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
            cookie = await log_in(self.http, self.base, name)
            self.sockets.append(await WireSocket.connect(self.http, self.base, cookie, origin=self.base))

        self.run(joining())

    def close(self) -> None:
        async def leaving() -> None:
            for socket in self.sockets:
                await socket.close()
            if self.http is not None:
                await self.http.close()

        self.run(leaving())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_a_page_refused_the_state_waits_as_told_then_asks_again_and_shows_who_is_online(browser: Any) -> None:
    """Between the page and the server (Playwright's WebSocket route): one `presence_diff` is
    dropped, so the page sees a gap at the next and asks; its first ask is answered with the
    server's refusal (`{"refused", "retry_after"}`), the next goes to the server. Before, the
    page took the refusal for a state, applied nothing, never asked again, and showed a list
    without the people of the held changes."""
    server = ServerProcess("--port", "0", "--login-rate", "off", "--connect-rate", "off")
    base = server.url.rstrip("/")
    person = Person(browser, server.url)
    crowd = Crowd(base)
    routed = threading.Event()
    drop_next_diff = threading.Event()
    dropped: list[str] = []
    asks: list[float] = []

    def route(page_side: Any) -> None:
        server_side = page_side.connect_to_server()

        def to_server(message: str | bytes) -> None:
            ask = ASK.fullmatch(message) if isinstance(message, str) else None
            if ask is not None:
                asks.append(time.monotonic())
                if len(asks) == 1:
                    refusal = {"refused": STATE_SLOW_DOWN, "retry_after": RETRY_AFTER}
                    page_side.send(f"43{ask.group(1)}" + json.dumps([refusal]))
                    return
            server_side.send(message)

        def to_page(message: str | bytes) -> None:
            if isinstance(message, str) and message.startswith('42["presence_diff"') and drop_next_diff.is_set():
                drop_next_diff.clear()
                dropped.append(message)
                return
            page_side.send(message)

        page_side.on_message(to_server)
        server_side.on_message(to_page)
        routed.set()

    person.context.route_web_socket(re.compile(r".*/socket\.io/.*transport=websocket.*"), route)
    try:
        page = person.log_in("watcher")
        wait_for_socket(page, "connected")
        until(page, routed.is_set)  # the page's socket upgraded to a WebSocket
        page.wait_for_timeout(500)  # the upgrade completes: what follows comes over the WebSocket
        drop_next_diff.set()
        crowd.join("ada")  # her join is the change the page misses
        until(page, lambda: bool(dropped))
        crowd.join("bob")  # the next change shows the gap: the page asks, and is refused
        until(page, lambda: len(asks) >= 2)
        assert asks[1] - asks[0] >= RETRY_AFTER - 0.1, asks  # it waited as long as it was told
        names = lambda: sorted(page.eval_on_selector_all("#online-users li[data-username]", "items => items.map(i => i.dataset.username)"))  # noqa: E731
        until(page, lambda: names() == ["ada", "bob", "watcher"])
        assert page.text_content("#online-count") == "3"
        assert len(asks) == 2
    finally:
        crowd.close()
        person.context.close()
        server.close()
    assert [text for text in person.console_errors if "status of 4" not in text] == []
