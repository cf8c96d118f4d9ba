"""Binding and serving: the periodic expiry sweep, and a shutdown that closes every socket."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import tornado.httpclient

from tornado_app.app import make_app
from tornado_app.server import CannotBind, bind, serve, sweep_interval

from .conftest import TEST_SECRET, FakeClock, SocketClient, WebUser


def test_sweep_interval_keeps_expiry_timely_but_not_busy() -> None:
    assert sweep_interval(1) == 1.0
    assert sweep_interval(60) == 15.0
    assert sweep_interval(1800) == 30.0


def test_bind_picks_a_free_port_and_reports_its_url() -> None:
    bound = bind("127.0.0.1", 0)
    try:
        assert bound.port > 0
        assert bound.url == f"http://127.0.0.1:{bound.port}/"
    finally:
        bound.close()


# Tornado's bind_sockets leaves the socket it failed to bind for the garbage collector.
leaks_a_socket_in_tornado = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@leaks_a_socket_in_tornado
def test_bind_to_a_taken_port_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CannotBind, match=f"port {port} on 127.0.0.1 is already in use"):
            bind("127.0.0.1", port)


@leaks_a_socket_in_tornado
def test_bind_to_an_address_we_do_not_have_is_a_clear_error() -> None:
    with pytest.raises(CannotBind, match="cannot listen on 192.0.2.1:0"):
        bind("192.0.2.1", 0)  # TEST-NET-1: never one of this machine's addresses


@pytest.mark.gen_test(timeout=60)
async def test_serve_sweeps_expired_sessions_and_shutdown_closes_sockets(clock: FakeClock) -> None:
    app = make_app(TEST_SECRET, session_ttl=1, clock=clock)
    bound = bind("127.0.0.1", 0)
    stop = asyncio.Event()
    serving = asyncio.ensure_future(serve(app, bound, stop))
    http_client = tornado.httpclient.AsyncHTTPClient()
    base_url = bound.url.rstrip("/")

    idle_user = WebUser(http_client, base_url)
    await idle_user.login("idle")
    idle_socket = SocketClient()
    await idle_socket.sio.connect(base_url, headers={"Cookie": idle_user.cookie_header}, transports=["websocket"])
    clock.advance(5)
    await idle_socket.next("disconnect")  # the periodic sweep found it
    assert await app.store.count() == 0

    user = WebUser(http_client, base_url)
    await user.login("ada")
    live_socket = SocketClient()
    await live_socket.sio.connect(base_url, headers={"Cookie": user.cookie_header}, transports=["websocket"])
    stop.set()
    await asyncio.wait_for(serving, 3)
    assert await live_socket.next("ended") == {"reason": "shutdown"}  # said, then closed
    await live_socket.next("disconnect")
    with socket.socket() as probe:  # the port is free again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", bound.port))
    for client in (idle_socket, live_socket):
        await client.close()
    http_client.close()


@pytest.mark.gen_test(timeout=60)
async def test_half_open_requests_are_dropped_after_the_header_and_body_timeouts() -> None:
    """Tornado's defaults wait an hour for a request's headers and body; ours wait seconds
    (0.5 s here), so connections that trickle or stall do not pile up."""
    app = make_app(TEST_SECRET)
    bound = bind("127.0.0.1", 0)
    stop = asyncio.Event()
    serving = asyncio.ensure_future(serve(app, bound, stop, header_timeout=0.5, body_timeout=0.5))

    async def held_for(first_bytes: bytes) -> float:
        """Seconds until the server closes a connection that sent only `first_bytes`."""
        reader, writer = await asyncio.open_connection("127.0.0.1", bound.port)
        started = time.monotonic()
        writer.write(first_bytes)
        await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return time.monotonic() - started

    headers_begun = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    body_begun = b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nusername=a"
    for first_bytes in (headers_begun, body_begun):
        assert 0.4 < await held_for(first_bytes) < 2
    stop.set()
    await asyncio.wait_for(serving, 3)
