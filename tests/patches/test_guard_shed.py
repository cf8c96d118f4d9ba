"""patches/guard.py's shed_handshake: once a socket is connected, python-socketio's environ
for it keeps only what is read again, and its Tornado request lets go of its headers and
query arguments; the socket still works, and still connects again on the same connection."""

from __future__ import annotations

import aiohttp
import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from tornado.web import Application, RequestHandler

from tests.support.forms import log_in
from tests.support.wire import WireSocket
from tornado_app.app import TornadoApp
from tornado_app.patches.guard import SESSION_ID


@pytest.mark.gen_test
async def test_a_connected_socket_keeps_only_what_is_read_again(app: TornadoApp, http_server, base_url: str) -> None:
    sio = app.sockets.sio
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        socket = await WireSocket.connect(http, base_url, await log_in(http, base_url, "ada"), origin=base_url)
        await socket.next("welcome")
        [(eio_sid, environ)] = sio.environ.items()
        assert set(environ) == {"tornado.handler", SESSION_ID}
        handler = environ["tornado.handler"]
        request = handler.request
        assert len(request.headers) == 0 and request.arguments == {} and request.query_arguments == {}
        assert handler._headers_written and len(handler._headers) == 0  # the 101's, written: let go of
        assert request.remote_ip == "127.0.0.1"  # what the logs and the caps read stays

        assert (await socket.call("whoami"))["username"] == "ada"
        # A new Socket.IO connect on the same Engine.IO connection reads the environ again.
        await socket.send_raw("41")
        await socket.send_raw("40")
        assert (await socket.next("welcome"))["username"] == "ada"
        assert (await socket.call("whoami"))["username"] == "ada"
        assert sio.same_session(eio_sid, environ[SESSION_ID])
        await socket.close()


def test_tornado_keeps_a_handlers_response_headers_where_the_shedding_lets_go_of_them() -> None:
    """shed_handshake replaces RequestHandler._headers once `_headers_written`: if Tornado
    renamed either, the shedding would add an attribute and free nothing."""
    request = HTTPServerRequest(start_line=RequestStartLine("GET", "/", "HTTP/1.1"), headers=HTTPHeaders({"Host": "127.0.0.1"}),
                                 connection=_NoConnection())  # type: ignore[arg-type]  # what it calls
    handler = RequestHandler(Application(), request)
    assert isinstance(handler._headers, HTTPHeaders) and "Server" in handler._headers
    assert handler._headers_written is False


class _NoConnection:
    def set_close_callback(self, callback: object) -> None:
        pass
