"""engine.py reaches into engineio's internals; these tests fail loudly (not silently slower,
not silently leaking) if a new engineio or python-socketio changes what it relies on."""

from __future__ import annotations

import asyncio
import inspect

import aiohttp
import engineio
import pytest
import socketio
from engineio.async_socket import AsyncSocket

from bench.wire import WireSocket, log_in
from tornado_app.app import TornadoApp
from tornado_app.engine import TunedEngineIOServer


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_engineio_internals_relied_on_still_have_their_shape() -> None:
    assert inspect.iscoroutinefunction(AsyncSocket._send_ping)
    assert "start_background_task(self._send_ping)" in inspect.getsource(AsyncSocket.schedule_ping)
    assert parameters(AsyncSocket.close) == ["self", "wait", "abort", "reason"]
    # close() triggers 'disconnect' first: that is where the ping task is cancelled.
    close_source = inspect.getsource(AsyncSocket.close)
    assert close_source.index("_trigger_event") < close_source.index("self.closed = True")
    assert parameters(engineio.AsyncServer._trigger_event)[:2] == ["self", "event"]
    assert parameters(engineio.AsyncServer._log_error_once) == ["self", "message", "message_key"]
    assert isinstance(engineio.AsyncServer().sockets, dict)


def test_the_socketio_internals_relied_on_still_have_their_shape() -> None:
    server = socketio.AsyncServer
    assert parameters(server._handle_eio_connect) == ["self", "eio_sid", "environ"]
    assert parameters(server._handle_eio_disconnect) == ["self", "eio_sid", "reason"]
    assert parameters(server._handle_eio_message) == ["self", "eio_sid", "data"]
    assert parameters(server._handle_connect) == ["self", "eio_sid", "namespace", "data"]
    assert "_engineio_server_class()" in inspect.getsource(socketio.base_server.BaseServer.__init__)


def test_our_socket_server_runs_on_the_promptly_freeing_engineio_server(app: TornadoApp) -> None:
    assert type(app.sockets.sio.eio) is TunedEngineIOServer


@pytest.mark.gen_test
async def test_a_closed_sockets_ping_task_is_cancelled_at_once(app: TornadoApp, http_server, base_url: str) -> None:
    eio = app.sockets.sio.eio
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        socket = await WireSocket.connect(http, base_url, await log_in(http, base_url, "ada"), origin=base_url)
        [(sid, ping_task)] = eio._ping_tasks.items()
        assert not ping_task.done()  # sleeping for the 25 s ping interval, holding the socket
        await socket.close()
        for _ in range(100):
            if ping_task.done():
                break
            await asyncio.sleep(0.01)
    assert ping_task.cancelled()
    assert eio._ping_tasks == {} and eio.sockets == {}


@pytest.mark.gen_test
async def test_ending_a_polling_session_does_not_wait_for_its_next_poll(app: TornadoApp, http_server, base_url: str) -> None:
    """engineio's own disconnect() waits until a GET collects the close packet: forever for a
    client that stopped polling."""
    async with aiohttp.ClientSession() as http:
        async with http.get(base_url + "/socket.io/?EIO=4&transport=polling") as opening:
            sid = (await opening.text()).split('"sid":"', 1)[1].split('"', 1)[0]
        await asyncio.wait_for(app.sockets.sio.end_engineio_session(sid, "transport error"), 1)
        assert sid not in app.sockets.sio.eio.sockets
