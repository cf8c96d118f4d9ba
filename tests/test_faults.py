"""Faults a real network produces: clients that vanish mid-handshake or mid-session, clients
that stop answering pings, a polling client that never polls again, and a server restart.

Each time the server must stay up, free what the client held (the socket registry and
engineio's own socket table), log at most one line about it, and never a traceback.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import tornado.httpclient

from deploy.services import free_port
from tests.support.clock import FakeClock
from tests.support.constants import MAX_SESSIONS, SESSION_TTL, TEST_SECRET
from tests.support.forms import log_in
from tests.support.processes import ServerProcess
from tests.support.raw import RawWebSocket
from tests.support.waiting import eventually
from tests.support.wire import Refused, WireSocket
from tornado_app.app import TornadoApp, make_app
from tornado_app.backend import Backend
from tornado_app.reasons import END_REASONS, NOT_AUTHENTICATED
from tornado_app.settings import Settings
from tornado_app.sockets import CLOSED_BECAUSE

# engineio's defaults: with these, a freed socket can only mean the server noticed the
# dropped connection itself (no ping cycle is short enough to have done it).
DEFAULT_PINGS = (25.0, 20.0)
# Short enough to see a ping timeout within a test; passed per test with `fast_pings`. The
# test's clients share one event loop with the server, so a loaded machine that pauses the
# process delays every pong: a client that answers gets 2 s for it (0.3 s dropped her). The
# interval stays above the server's 1 s sweep, as in production (8 s): a client that stops
# answering is then closed by the sweep ("ping timeout") before engineio's writer gives up on
# a socket it has had nothing to send for interval + timeout ("transport close").
FAST_PINGS = (1.5, 2.0)
fast_pings = pytest.mark.parametrize("ping_settings", [FAST_PINGS], ids=["fast-pings"])

PROMPTLY = 10.0  # seconds within which a dropped connection must be freed (pings alone take 13 s)
PING_DEADLINE = 15.0  # seconds within which a silent client must be dropped (about 4 s; never, without pings)

SOCKET_LOGGER = "tornado_app.sockets"


@pytest.fixture
def ping_settings() -> tuple[float, float]:
    return DEFAULT_PINGS


@pytest.fixture
def app(clock: FakeClock, ping_settings: tuple[float, float]) -> TornadoApp:
    """The conftest app, with the ping interval and timeout chosen per test."""
    interval, timeout = ping_settings
    settings = Settings.lifted(session_ttl=SESSION_TTL, max_sessions=MAX_SESSIONS, ping_interval=interval, ping_timeout=timeout)
    return make_app(TEST_SECRET, settings=settings, backend=Backend.in_memory(settings, clock=clock))


class ServerLog:
    """What the in-process server logged, from a mark on: the lines an operator would read
    (INFO and up, without Tornado's per-request access log) and any traceback at all."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog
        caplog.set_level(logging.DEBUG)

    def mark(self) -> int:
        return len(self._caplog.records)

    def lines_since(self, mark: int) -> list[str]:
        return [
            f"{record.name}: {record.getMessage()}"
            for record in self._caplog.records[mark:]
            if record.levelno >= logging.INFO and record.name != "tornado.access"
        ]

    def assert_no_traceback(self) -> None:
        with_traceback = [
            f"{record.name}: {record.getMessage()}"
            for record in self._caplog.records
            if record.exc_info or record.exc_text or record.stack_info or "Traceback" in record.getMessage()
        ]
        assert with_traceback == []
        assert "Traceback" not in self._caplog.text


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> ServerLog:
    return ServerLog(caplog)


def sockets_freed(app: TornadoApp) -> Callable[[], bool]:
    def freed() -> bool:
        """the socket registry and engineio's socket table are empty"""
        return app.sockets.registry.is_empty() and not app.sockets.sio.eio.sockets

    return freed


def held_by(app: TornadoApp, count: int) -> Callable[[], bool]:
    def held() -> bool:
        return len(app.sockets.registry) == count and len(app.sockets.sio.eio.sockets) == count

    held.__doc__ = f"exactly {count} socket(s) registered and in engineio's table"
    return held


@asynccontextmanager
async def aiohttp_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        yield http


async def logged_in_cookie(web_user: Callable[[], Any], username: str) -> str:
    user = web_user()
    await user.login(username)
    return user.cookie_header


async def assert_whoami(socket: WireSocket, username: str) -> None:
    answer = await socket.call("whoami")
    assert answer["username"] == username


# --- a client that drops its TCP connection --------------------------------------------


HALF_UPGRADE_REQUEST = (
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Ke"  # cut off in the middle of a header: no blank line ever comes
)

FULL_UPGRADE_REQUEST = (
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Cookie: {cookie}\r\n"
    "\r\n"
)


@pytest.mark.parametrize(
    ("request_text", "read_first"),
    [(HALF_UPGRADE_REQUEST, False), (FULL_UPGRADE_REQUEST, False), (FULL_UPGRADE_REQUEST, True)],
    ids=["half-request", "whole-request-then-gone", "gone-after-the-open-packet"],
)
@pytest.mark.gen_test(timeout=60)
async def test_a_client_gone_mid_handshake_leaves_nothing_behind_and_no_noise(
    http_server: Any, base_url: str, app: TornadoApp, web_user: Callable[[], Any],
    server_log: ServerLog, request_text: str, read_first: bool,
) -> None:
    """A client that drops its connection mid-handshake costs the server nothing: no socket
    left in engineio's table, no log line, and another person's socket keeps working."""
    async with aiohttp_session() as http:
        grace = await WireSocket.connect(http, base_url, await logged_in_cookie(web_user, "grace"))
        ada_cookie = await logged_in_cookie(web_user, "ada")
        mark = server_log.mark()

        url = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(request_text.format(host=url.netloc, cookie=ada_cookie).encode())
        await writer.drain()
        if read_first:
            answer = await asyncio.wait_for(reader.readuntil(b"0{"), 2)
            assert answer.startswith(b"HTTP/1.1 101"), answer
            # grace's and this one's, not yet a Socket.IO socket
            await eventually(lambda: len(app.sockets.sio.eio.sockets) == 2)
        writer.transport.abort()
        writer.close()

        await asyncio.sleep(0.3)
        await eventually(held_by(app, 1), within=PROMPTLY)
        await assert_whoami(grace, "grace")
        assert grace.pending("presence_diff") == 1  # only her own arrival: nobody came or went
        assert server_log.lines_since(mark) == []
        await grace.close()
    server_log.assert_no_traceback()


@pytest.mark.gen_test(timeout=60)
async def test_a_client_that_drops_its_connection_mid_session_is_freed_at_once(
    http_server: Any, base_url: str, app: TornadoApp, web_user: Callable[[], Any], server_log: ServerLog,
) -> None:
    """A crashed client (TCP gone, no goodbye) is noticed without waiting for a ping: its
    socket is freed within a second or so, others see it go offline, one log line."""
    async with aiohttp_session() as http:
        grace = await WireSocket.connect(http, base_url, await logged_in_cookie(web_user, "grace"))
        ada = await WireSocket.connect(http, base_url, await logged_in_cookie(web_user, "ada"))
        assert (await ada.next("welcome"))["username"] == "ada"
        await grace.sees_online(["ada", "grace"])
        await eventually(held_by(app, 2), within=PROMPTLY)
        mark = server_log.mark()

        ada.abort()
        took = await eventually(held_by(app, 1), within=PROMPTLY)
        assert took < PROMPTLY
        await grace.sees_online(["grace"])
        await assert_whoami(grace, "grace")
        await ada.closed.wait()
        await ada.close()
        assert server_log.lines_since(mark) == [f"{SOCKET_LOGGER}: socket of 'ada' from 127.0.0.1 closed: transport close"]
        await grace.close()
    await eventually(sockets_freed(app), within=PROMPTLY)
    server_log.assert_no_traceback()


# Each chat message to the stalled client is about 6 KB (500 astral characters, JSON-escaped);
# with both kernel buffers of its connection made small (a slow network), a few dozen are more
# than the kernel takes, so Tornado still holds writes for it when the client goes. (Fewer
# than the 256 KiB after which a socket that does not read is dropped: test_transport.py.)
STALLING_CHATS = 30
SMALL_BUFFER = 4096


def server_side_stream_of(app: TornadoApp, username: str) -> Any:
    """The server's IOStream for the one socket of `username`."""
    registry, sio = app.sockets.registry, app.sockets.sio
    [sid] = [sid for sid in registry.all_sockets() if (owner := registry.owner(sid)) is not None and owner.username == username]
    return sio.environ[sio.manager.eio_sid_from_sid(sid, "/")]["tornado.handler"].ws_connection.stream


@pytest.mark.gen_test(timeout=30)
async def test_a_stalled_client_that_drops_is_freed_without_an_error_in_the_log(
    http_server: Any, base_url: str, app: TornadoApp, web_user: Callable[[], Any], server_log: ServerLog,
) -> None:
    """A client that stops reading (a frozen tab, a dead network) while others chat, then
    drops, is freed with one log line and no traceback, though the server still held
    messages for it."""
    async with aiohttp_session() as http:
        grace = await WireSocket.connect(http, base_url, await logged_in_cookie(web_user, "grace"))
        ada_cookie = await logged_in_cookie(web_user, "ada")
        ada = await asyncio.wait_for(RawWebSocket.open(base_url, {"Cookie": ada_cookie}, receive_buffer=SMALL_BUFFER), 2)
        await asyncio.wait_for(ada.reader.readuntil(b"0{"), 2)
        await ada.send_text("40")  # then ada's client never reads again
        await eventually(held_by(app, 2), within=PROMPTLY)
        server_side_stream_of(app, "ada").socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        mark = server_log.mark()

        for index in range(STALLING_CHATS):
            await grace.emit("chat", {"text": "\U0001d11e" * 500})
            if index % 20 == 0:
                await asyncio.sleep(0)
        await asyncio.sleep(0.3)
        ada.abort()
        await eventually(held_by(app, 1), within=PROMPTLY)
        await asyncio.sleep(0.2)
        gc.collect()  # asyncio reports a lost write when its task is collected: make that happen here
        await assert_whoami(grace, "grace")
        lines = server_log.lines_since(mark)
        await grace.close()
    assert lines == [f"{SOCKET_LOGGER}: socket of 'ada' from 127.0.0.1 closed: transport close"]
    server_log.assert_no_traceback()


# --- a client that stops answering -------------------------------------------------------


async def keep_talking(socket: WireSocket, every: float = 0.1) -> None:
    """Send a `whoami` (asking for no answer) every so often until the socket is closed."""
    while not socket.closed.is_set():
        try:
            await socket.emit("whoami")
        except ConnectionError:
            return
        await asyncio.sleep(every)


@fast_pings
@pytest.mark.gen_test(timeout=60)
async def test_a_client_that_never_answers_pings_is_dropped_for_ping_timeout(
    http_server: Any, base_url: str, app: TornadoApp, web_user: Callable[[], Any], server_log: ServerLog,
) -> None:
    """A client that keeps sending events but never answers a ping is dropped once its ping
    timeout has passed (with these short ping settings), logged once as a ping timeout, and
    freed; a client that does answer its pings stays."""
    async with aiohttp_session() as http:
        grace = await WireSocket.connect(http, base_url, await logged_in_cookie(web_user, "grace"))
        ada_cookie = await logged_in_cookie(web_user, "ada")
        mark = server_log.mark()
        started = time.monotonic()  # before the handshake, from which engineio counts
        deaf = await WireSocket.connect(http, base_url, ada_cookie, answer_pings=False)
        talking = asyncio.ensure_future(keep_talking(deaf))
        await asyncio.wait_for(deaf.closed.wait(), PING_DEADLINE)
        assert time.monotonic() - started > sum(FAST_PINGS)  # pinged, then given its whole timeout
        await talking
        await eventually(held_by(app, 1), within=PROMPTLY)
        await deaf.close()

        answered = grace.pongs  # grace answers her pings: she outlives two more cycles
        await eventually(lambda: grace.pongs >= answered + 2, what="grace answered two more pings")
        await assert_whoami(grace, "grace")
        assert server_log.lines_since(mark) == [f"{SOCKET_LOGGER}: socket of 'ada' from 127.0.0.1 closed: ping timeout"]
        await grace.close()
    await eventually(sockets_freed(app), within=PROMPTLY)
    server_log.assert_no_traceback()


@fast_pings
@pytest.mark.gen_test(timeout=60)
async def test_a_silent_client_is_dropped_after_its_ping_timeout(
    http_server: Any, base_url: str, app: TornadoApp, web_user: Callable[[], Any], server_log: ServerLog,
) -> None:
    """A client that goes completely silent (no pongs, nothing else) is dropped once its ping
    timeout has passed (3.5 to 4.5 s with these settings), logged once, and freed."""
    async with aiohttp_session() as http:
        grace = await WireSocket.connect(http, base_url, await logged_in_cookie(web_user, "grace"))
        ada_cookie = await logged_in_cookie(web_user, "ada")
        mark = server_log.mark()
        started = time.monotonic()  # before the handshake, from which engineio counts
        silent = await WireSocket.connect(http, base_url, ada_cookie, answer_pings=False)
        await asyncio.wait_for(silent.closed.wait(), PING_DEADLINE)
        assert time.monotonic() - started > sum(FAST_PINGS)
        await eventually(held_by(app, 1), within=PROMPTLY)
        await silent.close()
        await assert_whoami(grace, "grace")
        lines = server_log.lines_since(mark)
        # engineio races two equal timers here: its monitor task ("ping timeout") and its
        # WebSocket reader, which gives up after ping_interval + ping_timeout without a frame
        # ("transport close"). Which one names the reason depends on when the monitor last
        # looked (with grace connected it is almost always the reader).
        assert lines in (
            [f"{SOCKET_LOGGER}: socket of 'ada' from 127.0.0.1 closed: ping timeout"],
            [f"{SOCKET_LOGGER}: socket of 'ada' from 127.0.0.1 closed: transport close"],
        )
        await grace.close()
    await eventually(sockets_freed(app), within=PROMPTLY)
    server_log.assert_no_traceback()


# --- a polling client that never polls again ---------------------------------------------


async def poll(http_client: tornado.httpclient.AsyncHTTPClient, url: str, cookie: str, body: str | None = None) -> str:
    response = await http_client.fetch(
        url, method="GET" if body is None else "POST", body=body,
        headers={"Cookie": cookie, "Content-Type": "text/plain;charset=UTF-8"}, request_timeout=3,
    )
    return response.body.decode()


@fast_pings
@pytest.mark.gen_test(timeout=60)
async def test_a_polling_client_that_stops_polling_is_timed_out_and_freed(
    http_server: Any, base_url: str, app: TornadoApp, web_user: Callable[[], Any],
    http_client: tornado.httpclient.AsyncHTTPClient, server_log: ServerLog,
) -> None:
    """A long-polling client that connects, reads its welcome and then never polls again
    (a laptop lid closed mid-session) is timed out, freed from both tables, logged once."""
    cookie = await logged_in_cookie(web_user, "ada")
    mark = server_log.mark()
    endpoint = base_url + "/socket.io/?EIO=4&transport=polling"
    started = time.monotonic()  # before the handshake, from which engineio counts
    opening = await poll(http_client, endpoint, cookie)
    assert opening.startswith('0{"sid":'), opening
    sid = json.loads(opening[1:])["sid"]
    assert await poll(http_client, f"{endpoint}&sid={sid}", cookie, body="40") == "OK"
    received: list[str] = []
    for _ in range(3):  # the greeting may take a second poll
        received += (await poll(http_client, f"{endpoint}&sid={sid}", cookie)).split("\x1e")
        if any(packet.startswith('42["welcome",{"username":"ada"') for packet in received):
            break
    assert any(packet.startswith('42["welcome",{"username":"ada"') for packet in received), received
    # (python-socketio sends what the connect handler emits before the `40` that accepts the
    # namespace connect; clients buffer such events, so only their presence is checked.)
    assert any(packet.startswith('40{"sid":') for packet in received), received
    assert held_by(app, 1)()

    await eventually(sockets_freed(app), within=PING_DEADLINE)
    assert time.monotonic() - started > sum(FAST_PINGS)  # pinged, then given its whole timeout
    assert server_log.lines_since(mark) == [f"{SOCKET_LOGGER}: socket of 'ada' from 127.0.0.1 closed: ping timeout"]
    server_log.assert_no_traceback()
    # the session itself is untouched: only the socket was dropped
    assert (await web_user().request("GET", "/api/session", headers={"Cookie": cookie})).code == 200


# --- a session that ends ------------------------------------------------------------------


def test_every_way_a_session_ends_has_words_for_the_close_line() -> None:
    assert set(CLOSED_BECAUSE) == set(END_REASONS)


@pytest.mark.gen_test(timeout=30)
async def test_a_socket_closed_for_its_sessions_end_says_why_in_the_log(
    http_server: Any, base_url: str, app: TornadoApp, clock: FakeClock, web_user: Callable[[], Any], server_log: ServerLog,
) -> None:
    """Issue 17: each of these closes used to be logged with engineio's "server disconnect";
    the operator reads why instead: a logout, a login that replaced the session, an eviction,
    an idle expiry. One close line each."""

    async def closes_with(socket: WireSocket, end: Callable[[], Awaitable[object]]) -> list[str]:
        """The socket logger's lines while `end()` ends the socket's session."""
        mark = server_log.mark()

        def lines() -> list[str]:
            return [line for line in server_log.lines_since(mark) if line.startswith(SOCKET_LOGGER)]

        await end()
        await asyncio.wait_for(socket.closed.wait(), PROMPTLY)
        await eventually(lines, within=PROMPTLY, what="a close line")
        return lines()

    def closed(username: str, why: str) -> list[str]:
        return [f"{SOCKET_LOGGER}: socket of {username!r} from 127.0.0.1 closed: {why}"]

    async with aiohttp_session() as http:
        leaver = web_user()
        await leaver.login("leaver")
        socket = await WireSocket.connect(http, base_url, leaver.cookie_header)
        assert await closes_with(socket, leaver.logout) == closed("leaver", "logged out")

        again = web_user()
        await again.login("again")
        socket = await WireSocket.connect(http, base_url, again.cookie_header)
        assert await closes_with(socket, lambda: again.login("again")) == closed("again", "session replaced")

        first = web_user()
        await first.login("first")
        socket = await WireSocket.connect(http, base_url, first.cookie_header)

        async def crowd_in() -> None:
            for number in range(MAX_SESSIONS):
                await web_user().login(f"newcomer{number}")

        assert await closes_with(socket, crowd_in) == closed("first", "session evicted")

        idle = web_user()
        await idle.login("idle")
        socket = await WireSocket.connect(http, base_url, idle.cookie_header)

        async def idle_past_the_ttl() -> None:
            clock.advance(SESSION_TTL + 1)
            await app.sweep_expired_sessions()

        assert await closes_with(socket, idle_past_the_ttl) == closed("idle", "session expired")
    await eventually(sockets_freed(app), within=PROMPTLY)
    server_log.assert_no_traceback()


# --- a server restart ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "secret_env",
    [{}, {"TORNADO_APP_COOKIE_SECRET": "the-same-secret-across-restarts"}],
    ids=["random-secret-per-start", "same-secret"],
)
@pytest.mark.gen_test(timeout=30)
async def test_after_a_server_restart_the_old_session_is_refused_cleanly(
    server_process: Callable[..., ServerProcess], secret_env: dict[str, str],
) -> None:
    """A restart ends every session (they live in memory): the open socket sees its connection
    close (so that a page tries again by itself); with the old cookie a new socket is refused with "not authenticated", the page says
    the session has ended and shows the login form, and /api/session answers 401. With the same
    secret the old cookie still has a valid signature, so this is the session lookup refusing
    it, not the signature check."""
    port = free_port()
    old_server = server_process("--port", str(port), env=secret_env)
    base = old_server.url.rstrip("/")
    assert base == f"http://127.0.0.1:{port}", old_server.first_line
    async with aiohttp_session() as http:
        cookie = await log_in(http, base, "ada")
        old_socket = await WireSocket.connect(http, base, cookie)
        assert (await old_socket.next("welcome"))["username"] == "ada"

        stopping = asyncio.ensure_future(asyncio.to_thread(old_server.stop))
        await asyncio.wait_for(old_socket.closed.wait(), 5)
        await old_socket.close()  # answers the server's WebSocket close, so it can exit promptly
        status, _, old_log = await stopping
        # Closed, not told "disconnect" (final for a Socket.IO client): a page reconnects by
        # itself, to a restarted server (refused here, its session gone with the memory) or,
        # with Redis, to any process (accepted: test_cluster.py).
        assert old_socket.close_reason == "transport close"
        assert status == 0
        assert "socket of 'ada' from 127.0.0.1 closed: server stopping" in old_log
        assert "did not close" not in old_log
        # No traceback, not even for a frame that arrived while the server was stopping.
        assert "Traceback" not in old_log

        new_server = server_process("--port", str(port), env=secret_env)
        assert new_server.url == old_server.url, new_server.first_line
        with pytest.raises(Refused, match=f"^{NOT_AUTHENTICATED}$"):
            await WireSocket.connect(http, base, cookie)

        async with http.get(base + "/", headers={"Cookie": cookie}) as page:
            html = await page.text()
            assert page.status == 200
            assert "Your session has ended" in html
            assert 'name="username"' in html and 'name="_xsrf"' in html
        async with http.get(base + "/api/session", headers={"Cookie": cookie}) as answer:
            assert answer.status == 401
            assert await answer.json() == {"error": "not logged in"}

    status, _, new_log = await asyncio.to_thread(new_server.stop)
    assert status == 0
    assert "not authenticated" not in new_log  # a socket without a session is refused as designed: DEBUG only
    assert "Traceback" not in new_log
