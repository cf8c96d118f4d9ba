"""What tornado_app/patches/upgrades.py relies on in engineio, checked against the installed
version: which WebSocket requests engineio's request handler refuses (and that its Tornado
driver cannot tell the client so), what its driver's `open` does, and that
`websocket_refusal` refuses the same requests before the upgrade.

(That no such WebSocket is held open, on both handlers: test_engineio_protocol.py's tests of
a WebSocket without a valid EIO or transport, of a second WebSocket on an upgraded session
and of a failed upgrade; on the app: ../test_transport.py's attack test.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import engineio
import pytest
import socketio
import tornado.web
from engineio.async_drivers import tornado as engineio_tornado
from engineio.async_socket import AsyncSocket
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from tornado_app.patches import upgrades
from tornado_app.patches.upgrades import serve_websocket, websocket_refusal

WEBSOCKET_HEADERS = {"HTTP_UPGRADE": "websocket", "HTTP_CONNECTION": "Upgrade"}


async def engineio_get(server: engineio.AsyncServer, query: str) -> str:
    """engineio's own answer to a WebSocket request (a GET with its Upgrade headers), as its
    request handler makes it, without Tornado: its status."""
    environ = {"REQUEST_METHOD": "GET", "QUERY_STRING": query, **WEBSOCKET_HEADERS}
    server._async = {**server._async, "translate_request": lambda *_: environ,
                     "make_response": lambda status, headers, payload, environ: status}
    status: str = await server.handle_request()
    return status


def engineio_socket(server: engineio.AsyncServer, sid: str, *, connected: bool, upgraded: bool = False) -> AsyncSocket:
    socket = AsyncSocket(server, sid)
    socket.connected = connected  # set by a polling handshake, or by a WebSocket's
    socket.upgraded = upgraded  # set once the probe and the upgrade packet have come
    server.sockets[sid] = socket
    return socket


@pytest.mark.gen_test
@pytest.mark.parametrize("query", ["transport=websocket", "EIO=abc&transport=websocket", "EIO=3&transport=websocket",
                                   "EIO=4&transport=abc", "transport=abc&sid=S"])
async def test_engineio_refuses_these_websockets_and_so_do_we(query: str) -> None:
    server = engineio.AsyncServer(async_mode="tornado")
    assert await engineio_get(server, query) == "400 BAD REQUEST"
    assert websocket_refusal(server, query) is not None
    assert not server.sockets


@pytest.mark.gen_test
@pytest.mark.parametrize("query", ["EIO=4", "EIO=4&transport=polling"])
async def test_engineio_takes_a_websocket_without_transport_websocket_for_a_polling_handshake(query: str) -> None:
    """engineio opens a polling session for it and answers with its open packet, which the
    WebSocket its driver accepted cannot carry: refused here, before the upgrade."""
    server = engineio.AsyncServer(async_mode="tornado")
    assert await engineio_get(server, query) == "200 OK"
    assert len(server.sockets) == 1
    assert websocket_refusal(engineio.AsyncServer(async_mode="tornado"), query) == upgrades.NOT_A_WEBSOCKET_TRANSPORT


@pytest.mark.gen_test
async def test_engineio_refuses_a_websocket_for_a_session_in_these_states_and_so_do_we() -> None:
    server = engineio.AsyncServer(async_mode="tornado")
    engineio_socket(server, "new", connected=False)
    engineio_socket(server, "upgraded", connected=True, upgraded=True)
    for sid, refusal in (("unknown", upgrades.INVALID_SESSION), ("new", upgrades.NOT_CONNECTED),
                         ("upgraded", upgrades.UPGRADED_ALREADY)):
        query = f"EIO=4&transport=websocket&sid={sid}"
        assert await engineio_get(server, query) == "400 BAD REQUEST", sid
        assert websocket_refusal(server, query) == refusal


def test_a_websocket_engineio_serves_is_let_through() -> None:
    """A WebSocket-only handshake, and the upgrade of a polling session (engineio would
    upgrade it: not run here, it needs the connection)."""
    server = engineio.AsyncServer(async_mode="tornado")
    engineio_socket(server, "polling", connected=True)
    assert websocket_refusal(server, "EIO=4&transport=websocket") is None
    assert websocket_refusal(server, "EIO=4&transport=websocket&sid=polling") is None
    assert websocket_refusal(server, "EIO=4&transport=websocket&sid=polling&sid=") is None  # engineio's parse_qs


def test_engineios_tornado_driver_drops_the_answer_it_cannot_send_on_a_websocket() -> None:
    """Why a refused WebSocket hung: the driver's make_response returns quietly where Tornado
    refuses a response on a WebSocket (and closes nothing)."""

    class AcceptedWebSocket:
        closed = False

        def set_status(self, status: int) -> None:
            raise RuntimeError("Method not supported for Web Sockets")

        def close(self) -> None:
            self.closed = True

    handler = AcceptedWebSocket()
    assert engineio_tornado.make_response("400 BAD REQUEST", [], b'"Invalid session"', {"tornado.handler": handler}) is None
    assert not handler.closed


class Connection:
    def set_close_callback(self, callback: Any) -> None:
        pass


@pytest.mark.gen_test
async def test_engineios_tornado_driver_hands_an_accepted_websocket_to_handle_request_from_open() -> None:
    """What serve_websocket does in place of the driver's `open`: the handler to the server's
    handle_request, in a task, and nothing else."""
    handed: list[Any] = []

    class Server:
        cors_allowed_origins = "*"

        async def handle_request(self, *args: Any) -> None:
            handed.append(args)

    handler_class = engineio_tornado.get_tornado_handler(Server())
    request = HTTPServerRequest(start_line=RequestStartLine("GET", "/socket.io/", "HTTP/1.1"),
                                headers=HTTPHeaders({"Host": "127.0.0.1"}), connection=Connection())  # type: ignore[arg-type]  # what it calls
    handler = handler_class(tornado.web.Application(), request)
    await handler.open()
    await asyncio.sleep(0)
    assert handed == [(handler,)]
    assert socketio.get_tornado_handler.__module__ == "socketio.tornado"  # python-socketio's is engineio's driver


class AcceptedHandler:
    """A Tornado WebSocket handler, open until closed."""

    def __init__(self) -> None:
        self.ws_connection: object | None = object()
        self.closes = 0

    def close(self) -> None:
        self.closes += 1
        self.ws_connection = None


@pytest.mark.gen_test
async def test_serve_websocket_closes_the_websocket_once_engineio_returns() -> None:
    engineio_done = asyncio.Event()

    class Server:
        async def handle_request(self, handler: AcceptedHandler) -> None:
            await engineio_done.wait()

    handler = AcceptedHandler()
    serve_websocket(Server(), handler)
    await asyncio.sleep(0.05)
    assert handler.closes == 0  # open while engineio serves it
    engineio_done.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert handler.closes == 1
    assert not upgrades._serving


@pytest.mark.gen_test
async def test_serve_websocket_logs_a_failure_of_engineio_and_closes(caplog: pytest.LogCaptureFixture) -> None:
    class Server:
        async def handle_request(self, handler: AcceptedHandler) -> None:
            raise ValueError("engineio failed")

    handler = AcceptedHandler()
    with caplog.at_level(logging.ERROR, logger=upgrades.__name__):
        serve_websocket(Server(), handler)
        for _ in range(5):
            await asyncio.sleep(0)
    assert handler.closes == 1
    assert "engineio's WebSocket request handler failed" in caplog.text and "engineio failed" in caplog.text
