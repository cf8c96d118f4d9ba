"""What tornado_app/patches/ relies on inside engineio, python-socketio, Tornado and asyncio,
checked against the installed versions: by behaviour where it can be observed, by
signature where only the shape can be. A new release that moves one of these fails here,
with the name of what moved, instead of leaking or slowing down somewhere else.

(Whether the patches then do their job is tested beside each one: test_engineio_server.py,
test_managers.py, ../test_transport.py, ../test_admission.py.)
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import engineio
import pytest
import socketio
import tornado.web
from engineio import packet as eio_packet
from engineio.async_drivers import tornado as engineio_tornado
from engineio.async_socket import AsyncSocket
from engineio.payload import Payload
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from tornado.iostream import IOStream, StreamBufferFullError
from tornado.netutil import bind_sockets
from tornado.tcpserver import TCPServer

from tests.support.forms import log_in
from tests.support.waiting import eventually
from tests.support.wire import WireSocket
from tornado_app.app import TornadoApp
from tornado_app.patches.accept import AcceptLoopHTTPServer
from tornado_app.patches.engineio_server import (
    CountingWebSocket,
    OutgoingQueue,
    TunedEngineIOServer,
)
from tornado_app.patches.guard import ProtocolGuardedServer
from tornado_app.patches.managers import DirectManager, DirectRedisManager, PendingSids
from tornado_app.patches.websocket import polling_payload_problem
from tornado_app.transport import ENGINEIO_SID_SHAPE, query_problem


def parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def message(data: str) -> eio_packet.Packet:
    return eio_packet.Packet(eio_packet.MESSAGE, data)


def new_socket(**server_options: Any) -> tuple[TunedEngineIOServer, AsyncSocket]:
    server = TunedEngineIOServer(async_mode="tornado", **server_options)
    engineio_socket = AsyncSocket(server, "sid-1")
    server.sockets["sid-1"] = engineio_socket
    return server, engineio_socket


# --- engineio (engineio_server.py) -------------------------------------------------------


@pytest.mark.gen_test
async def test_engineio_starts_each_ping_through_start_background_task_and_closes_through_disconnect() -> None:
    """The ping task is known from `start_background_task(socket._send_ping)` and cancelled
    from the 'disconnect' event that every close passes: a closed socket is freed at once.
    (A timer with the direct path on, a task with it off.)"""
    server, engineio_socket = new_socket()
    engineio_socket.schedule_ping()  # what a pong does
    ping = server._ping_tasks.get("sid-1")
    assert ping is not None, "engineio no longer starts _send_ping through start_background_task"
    assert not ping.cancelled()
    await engineio_socket.close(wait=False, abort=True)
    await eventually(ping.cancelled, what="the ping ended with its socket")
    assert server._ping_tasks == {}


@pytest.mark.parametrize("state", ["open", "closing", "closed"])
@pytest.mark.gen_test
async def test_the_ping_timer_does_what_engineios_ping_task_does_after_its_sleep(state: str) -> None:
    """TunedEngineIOServer._send_ping copies what engineio's AsyncSocket._send_ping does once
    its sleep is over (a ping interval of 0 here): the same PING queued, last_ping set, or
    nothing for a socket closing or closed."""
    effects = []
    for ours in (False, True):
        server, engineio_socket = new_socket(ping_interval=0)
        if state != "open":
            setattr(engineio_socket, state, True)
        before = time.time()
        if ours:
            server._send_ping(engineio_socket)
        else:
            await AsyncSocket._send_ping(engineio_socket)
        queued = [engineio_socket.queue.get_nowait().encode() for _ in range(engineio_socket.queue.qsize())]
        last_ping = engineio_socket.last_ping
        effects.append((queued, last_ping is not None and last_ping >= before, engineio_socket.closing, engineio_socket.closed))
    assert effects[0] == effects[1]
    assert effects[0][0] == ([] if state != "open" else ["2"])


@pytest.mark.gen_test
async def test_engineio_triggers_disconnect_before_a_socket_counts_as_closed() -> None:
    server, engineio_socket = new_socket()
    seen: list[tuple[str, bool]] = []

    async def record(event: str, *args: Any, **kwargs: Any) -> None:
        seen.append((event, engineio_socket.closed))

    server._trigger_event = record  # type: ignore[method-assign]  # recorded
    await engineio_socket.close(wait=False, abort=True, reason="test")
    assert seen == [("disconnect", False)]


class Body:
    """engineio's `wsgi.input` as its Tornado driver gives it."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    async def read(self, length: int | None = None) -> bytes:
        return self.payload


async def engineio_post(server: engineio.AsyncServer, query: str, body: bytes) -> Any:
    """engineio's own request handling of a polling POST, without Tornado: its status."""
    environ = {"REQUEST_METHOD": "POST", "QUERY_STRING": query, "CONTENT_LENGTH": str(len(body)), "wsgi.input": Body(body)}
    server._async = {**server._async, "translate_request": lambda *_: environ,
                     "make_response": lambda status, headers, payload, environ: status}
    return await server.handle_request()


def connected_polling_socket(server: engineio.AsyncServer, sid: str = "sid-1") -> AsyncSocket:
    engineio_socket = AsyncSocket(server, sid)
    engineio_socket.connected = True  # what a polling handshake does
    server.sockets[sid] = engineio_socket
    return engineio_socket


@pytest.mark.gen_test
async def test_engineio_ends_a_session_whose_post_fails_through_disconnect() -> None:
    """A POST of a packet no client sends makes engineio's receive() raise, and its request
    handler then calls `disconnect(sid)`: engineio's own waits for a GET (here: for ever),
    TunedEngineIOServer's ends the session at once."""
    plain = engineio.AsyncServer(async_mode="tornado")
    connected_polling_socket(plain)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(engineio_post(plain, "EIO=4&transport=polling&sid=sid-1", b"6"), 0.5)
    tuned = TunedEngineIOServer(async_mode="tornado")
    connected_polling_socket(tuned)
    assert await asyncio.wait_for(engineio_post(tuned, "EIO=4&transport=polling&sid=sid-1", b"6"), 1) == "400 BAD REQUEST"
    assert tuned.sockets == {}


@pytest.mark.gen_test
async def test_engineio_keeps_a_polling_socket_closed_by_its_client_until_a_get_comes() -> None:
    """A client's close packet by POST closes the socket but leaves it in `sockets` (until a
    GET, which such a client never sends); TunedEngineIOServer drops it with its 'disconnect'."""
    plain = engineio.AsyncServer(async_mode="tornado")
    connected_polling_socket(plain)
    assert await engineio_post(plain, "EIO=4&transport=polling&sid=sid-1", b"1") == "200 OK"
    assert plain.sockets["sid-1"].closed
    tuned = TunedEngineIOServer(async_mode="tornado")
    connected_polling_socket(tuned)
    assert await engineio_post(tuned, "EIO=4&transport=polling&sid=sid-1", b"1") == "200 OK"
    assert tuned.sockets == {}


# What real clients POST (JavaScript's and python-socketio's): messages, pongs, a close,
# several at once, a base64 binary message, nothing.
CLIENT_PAYLOADS = [b"40", b'42["chat",{"text":"caf\xc3\xa9 \xf0\x9f\x98\x80"}]', b'421["whoami"]', b"41", b"3", b"1",
                   b'3\x1e42["chat",{"text":"x"}]\x1e41', b"4", b"bAQID", b""]
# What engineio cannot take from a client (each raised or logged a traceback, or ended the
# session through a disconnect that waits).
NOT_CLIENT_PAYLOADS = [b"7", b"9", b"x", b"\xff", b"4\x1e7", b"0", b"2", b"6", b"4" + b"[" * 5000, b"3" + b"[" * 5000,
                       b"3\x1e" * 16 + b"3", b"4\x1e", b"\x1e"]
# What engineio takes but no client sends by POST: an upgrade (only ever on the WebSocket),
# a JSONP form (not served).
NEVER_POSTED = [b"5", b"d=4"]


@pytest.mark.gen_test
async def test_the_polling_payloads_refused_are_those_engineio_cannot_take_and_no_client_sends() -> None:
    """transport.py hands engineio only the payloads polling_payload_problem passes: engineio
    takes each of those without an error, and fails on each one it refuses but two."""
    for body in CLIENT_PAYLOADS:
        assert polling_payload_problem(body) is None, body
        server = engineio.AsyncServer(async_mode="tornado")
        await connected_polling_socket(server).handle_post_request({"CONTENT_LENGTH": str(len(body)), "wsgi.input": Body(body)})
    for body in NOT_CLIENT_PAYLOADS:
        assert polling_payload_problem(body) is not None, body
        server = engineio.AsyncServer(async_mode="tornado")
        engineio_socket = connected_polling_socket(server)
        with pytest.raises((Exception, RecursionError)):
            await engineio_socket.handle_post_request({"CONTENT_LENGTH": str(len(body)), "wsgi.input": Body(body)})
    assert all(polling_payload_problem(body) is not None for body in NEVER_POSTED)


@pytest.mark.parametrize("query", ["sid=S&sid=", "sid=&sid=S", "sid=S&sid=T", "sid=S%20", "sid=%20S", "sid=S&transport=websocket&transport=",
                                   "transport=polling&transport=websocket", "EIO=4&EIO=3", "sid=", "sid=S;sid=T", "SID=S"])
def test_a_query_the_handler_passes_names_what_engineio_acts_on(query: str) -> None:
    """engineio reads its parameters with parse_qs (blanks dropped, the first value taken);
    Tornado's get_query_argument takes the last, stripped. A query that transport.py passes
    names one and the same sid, transport and EIO for both; it refuses the others."""
    real = "AAAAAAAAAAAAAAAAAAAA"
    query = query.replace("S", real).replace("T", "B" * 20)
    engineio_reads = {name: values[0] for name, values in parse_qs(query).items()}
    request = HTTPServerRequest(start_line=RequestStartLine("GET", "/socket.io/?" + query, "HTTP/1.1"), headers=HTTPHeaders({"Host": "localhost"}))
    tornado_reads = {name: value.decode().strip() for name, values in request.query_arguments.items() for value in values[-1:]}
    if query_problem(request.query_arguments) is None:
        for name in ("sid", "transport", "EIO"):
            assert engineio_reads.get(name) == tornado_reads.get(name), (query, name)
    else:
        assert any(engineio_reads.get(name) != tornado_reads.get(name) for name in ("sid", "transport", "EIO")) or "sid=" in query


def test_engineio_sids_have_the_shape_the_handler_expects() -> None:
    server = engineio.AsyncServer(async_mode="tornado")
    assert all(ENGINEIO_SID_SHAPE.fullmatch(server.generate_id().encode()) for _ in range(2000))


def test_the_engineio_signatures_relied_on() -> None:
    assert parameters(AsyncSocket.close) == ["self", "wait", "abort", "reason"]
    assert parameters(engineio.AsyncServer._trigger_event)[:2] == ["self", "event"]
    assert parameters(engineio.AsyncServer._log_error_once) == ["self", "message", "message_key"]
    assert parameters(engineio.AsyncServer.disconnect) == ["self", "sid"]
    assert Payload.max_decode_packets == 16
    assert parameters(engineio.AsyncServer.send_packet) == ["self", "sid", "pkt"]
    assert parameters(engineio_tornado.WebSocket.__init__) == ["self", "handler", "server"]
    assert isinstance(engineio.AsyncServer().sockets, dict)
    assert {"closing", "closed", "upgrading", "upgraded", "last_ping", "queue"} <= set(vars(AsyncSocket(engineio.AsyncServer(), "x")))


@pytest.mark.gen_test
async def test_asyncio_queues_put_and_take_through_put_and_get_hooks() -> None:
    """OutgoingQueue counts in asyncio.Queue's `_put` and `_get`, which every way in and out
    goes through; None (engineio's stop signal) is not a packet."""
    queue = OutgoingQueue()
    queue.put_nowait("a")
    await queue.put("b")
    queue.put_nowait(None)
    assert queue.unsent == 2
    assert queue.get_nowait() == "a" and queue.unsent == 1
    assert await queue.get() == "b" and queue.unsent == 0
    assert queue.get_nowait() is None and queue.unsent == 0


@pytest.mark.gen_test
async def test_engineio_queues_each_sockets_packets_in_the_queue_create_queue_gave_it() -> None:
    _, engineio_socket = new_socket()
    assert type(engineio_socket.queue) is OutgoingQueue, "engineio no longer takes a socket's queue from create_queue"
    await engineio_socket.send(message("a"))
    await engineio_socket.send(message("b"))
    assert engineio_socket.queue.unsent == 2, "engineio no longer queues a packet through put"
    assert [pkt.data for pkt in await engineio_socket.poll()] == ["a", "b"]
    assert engineio_socket.queue.unsent == 0, "a long poll no longer takes packets through get / get_nowait"
    _, plain = new_socket(direct_writes=False)
    assert type(plain.queue) is asyncio.Queue


@pytest.mark.parametrize("late", [False, True], ids=["answering", "past-ping-timeout"])
@pytest.mark.gen_test
async def test_the_ping_timeout_rule_copied_from_engineio_agrees_with_it(late: bool) -> None:
    """queue_now and direct_websocket repeat engineio's "client gone" rule (AsyncSocket.
    check_ping_timeout) so as not to await: on both sides of the limit they must agree."""
    server, engineio_socket = new_socket(ping_timeout=5)
    engineio_socket.queue.websocket = object()  # as if upgraded, so that only the rule decides
    now = time.time()
    engineio_socket.last_ping = now - (5.5 if late else 4.5)
    ours_direct = server.direct_websocket(engineio_socket, now) is not None
    ours_queue = server.queue_now(engineio_socket, message("x"), now)
    engineio_says_alive = await engineio_socket.check_ping_timeout()
    assert ours_queue == ours_direct == engineio_says_alive == (not late)


@pytest.mark.gen_test
async def test_engineio_upgrades_through_its_websocket_class_given_the_sockets_bound_handler() -> None:
    server, engineio_socket = new_socket()
    made: list[tuple[Any, Any]] = []

    class Recording(CountingWebSocket):
        def __init__(self, handler: Any, server: Any) -> None:
            made.append((handler, server))
            super().__init__(handler, server)

        async def __call__(self, environ: dict[str, Any]) -> str:  # type: ignore[override]  # a result to see
            return "upgraded"

    server._async = {**server._async, "websocket": Recording}
    assert await engineio_socket._upgrade_websocket({}) == "upgraded"
    [(handler, given_server)] = made
    assert handler == engineio_socket._websocket_handler and handler.__self__ is engineio_socket and given_server is server


@pytest.mark.gen_test
async def test_on_an_open_websocket_a_packet_is_written_directly_not_queued(app: TornadoApp, http_server: Any, base_url: str) -> None:
    """The direct path engages on a real connection: engineio's reader asks the wrapper for
    frames once upgraded (CountingWebSocket.wait learns the connection there), and a packet
    then never waits in the queue. Were engineio to stop going through the wrapper, every
    packet would silently take the slow path."""
    sio = app.sockets.sio
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        client = await WireSocket.connect(http, base_url, await log_in(http, base_url, "ada"), origin=base_url)
        [engineio_socket] = sio.eio.sockets.values()
        queue = engineio_socket.queue
        await eventually(lambda: queue.websocket is not None, what="the direct path engaged")
        [sid] = [sid for sid, _ in sio.manager.get_participants("/", None)]
        await sio.emit("probe", {"n": 1}, to=sid)
        assert queue.unsent == 0, "the packet waited in engineio's queue"
        assert await client.next("probe") == {"n": 1}
        await client.close()


@pytest.mark.gen_test
async def test_engineios_tornado_handler_reads_frames_through_receive_queue() -> None:
    """websocket.py replaces the handler's on_message and get_next_message around engineio's
    `receive_queue`; engineio's own on_close still ends the reader (a None in the queue), and its
    WebSocket wrapper still reads through get_next_message."""

    class Connection:
        def set_close_callback(self, callback: Any) -> None:
            pass

    handler_class = socketio.get_tornado_handler(socketio.AsyncServer(async_mode="tornado"))
    request = HTTPServerRequest(start_line=RequestStartLine("GET", "/socket.io/", "HTTP/1.1"),
                                 headers=HTTPHeaders({"Host": "127.0.0.1"}), connection=Connection())  # type: ignore[arg-type]  # what it calls
    handler = handler_class(tornado.web.Application(), request)
    assert isinstance(handler.receive_queue, asyncio.Queue)
    assert handler.ws_connection is None  # Tornado's WebSocket connection, once open: its stream is bounded
    wrapper = engineio_tornado.WebSocket(None, None)
    wrapper.tornado_handler = handler
    handler.receive_queue.put_nowait("4hello")
    assert await wrapper.wait() == "4hello"
    handler.on_close()
    with pytest.raises(OSError):  # how engineio's reader learns that the connection is gone
        await wrapper.wait()


# --- python-socketio (guard.py, managers.py) ---------------------------------------------


def test_the_socketio_server_methods_the_guard_overrides() -> None:
    server = socketio.AsyncServer
    assert parameters(server._handle_eio_connect) == ["self", "eio_sid", "environ"]
    assert parameters(server._handle_eio_disconnect) == ["self", "eio_sid", "reason"]
    assert parameters(server._handle_eio_message) == ["self", "eio_sid", "data"]
    assert parameters(server._handle_connect) == ["self", "eio_sid", "namespace", "data"]
    # python-socketio builds its engineio server from _engineio_server_class().
    assert type(ProtocolGuardedServer(async_mode="tornado", session_id_of=lambda handler: None, connect_timeout=10.0).eio) is TunedEngineIOServer


@pytest.mark.gen_test
async def test_a_catch_all_handler_returning_not_handled_leaves_an_unknown_event_unanswered() -> None:
    """count_unknown_events: the event is heard, and no ack goes back (as with no handler)."""
    sio = ProtocolGuardedServer(async_mode="tornado", session_id_of=lambda handler: None, connect_timeout=10.0)
    heard: list[str] = []
    sio.count_unknown_events(lambda: heard.append("heard"))
    sent: list[Any] = []

    async def record(eio_sid: str, data: Any) -> None:
        sent.append(data)

    sio.eio.send = record  # what every packet goes through (the ack too: guard.py's ack_text)
    await sio._handle_event_internal(sio, "s1", "e1", ["made_up", 1], "/", 7)  # with ack id 7
    assert heard == ["heard"] and sent == []
    sio.on("*", lambda *args: None)  # a catch-all returning anything else is answered
    await sio._handle_event_internal(sio, "s1", "e1", ["made_up", 1], "/", 8)
    assert sent == ["38[]"]


@pytest.mark.gen_test
async def test_socketio_sends_each_packet_through_engineios_send_and_send_packet() -> None:
    sio = socketio.AsyncServer(async_mode="tornado")
    sent: list[str] = []

    async def record_send(eio_sid: str, data: Any) -> None:
        sent.append(eio_sid)

    sio.eio.send = record_send
    await sio._send_packet("e1", sio.packet_class(socketio.packet.EVENT, data=["x"]))
    assert sent == ["e1"]
    eio = TunedEngineIOServer(async_mode="tornado")
    packets: list[str] = []

    async def record_packet(sid: str, pkt: Any) -> None:
        packets.append(sid)

    eio.send_packet = record_packet  # type: ignore[method-assign]  # recorded
    await eio.send("e1", "data")
    assert packets == ["e1"]


def test_the_socketio_manager_signatures_relied_on() -> None:
    base = socketio.base_manager.BaseManager
    assert parameters(socketio.AsyncManager.emit) == ["self", "event", "data", "namespace", "room", "skip_sid", "callback", "to", "kwargs"]
    assert parameters(socketio.AsyncManager.get_participants) == ["self", "namespace", "room"]
    assert parameters(base.basic_disconnect) == ["self", "sid", "namespace", "kwargs"]
    assert parameters(base.basic_enter_room) == ["self", "sid", "namespace", "room", "eio_sid"]
    assert parameters(base.basic_leave_room) == ["self", "sid", "namespace", "room"]


@pytest.mark.gen_test
async def test_socketio_starts_a_namespaces_pending_sids_through_item_assignment() -> None:
    from .test_managers import FakeSocketServer

    manager = DirectManager()
    manager.set_server(FakeSocketServer())
    await manager.pre_connect("e1", "/")
    assert type(manager.pending_connect["/"]) is PendingSids


@pytest.mark.gen_test
async def test_the_redis_manager_delivers_locally_through_the_direct_emit(monkeypatch: pytest.MonkeyPatch) -> None:
    delivered: list[str] = []

    async def direct_emit(self: Any, event: str, data: Any, namespace: str, **kwargs: Any) -> None:
        delivered.append(event)

    monkeypatch.setattr(DirectManager, "emit", direct_emit)
    manager = DirectRedisManager("redis://127.0.0.1:1/0")  # never connects in this test
    await manager._handle_emit({"event": "chat", "data": {}, "namespace": "/"})
    assert delivered == ["chat"]


@pytest.mark.gen_test
async def test_the_redis_manager_sends_a_broadcast_to_the_other_processes_through_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    """managers.py replaces `_publish`: python-socketio's emit must still go through it with
    the message, and its Redis manager keep the names our `_publish` uses."""
    published: list[Any] = []

    async def publish(self: Any, data: Any) -> None:
        published.append(data)

    async def handle_here(self: Any, message: Any) -> None:
        pass

    monkeypatch.setattr(DirectRedisManager, "_publish", publish)
    monkeypatch.setattr(DirectRedisManager, "_handle_emit", handle_here)
    manager = DirectRedisManager("redis://127.0.0.1:1/0", channel="c", write_only=True)  # never connects
    await manager.emit("chat", {"text": "hi"}, namespace="/")
    assert [(data["method"], data["event"], data["data"]) for data in published] == [("emit", "chat", [{"text": "hi"}])]
    assert parameters(socketio.AsyncRedisManager._publish) == ["self", "data"]
    assert callable(socketio.AsyncRedisManager._redis_connect) and parameters(socketio.AsyncRedisManager._redis_connect) == ["self"]
    assert (manager.connected, manager.redis, manager.channel) == (False, None, "c") and hasattr(manager, "json")
    assert "redis_options" in parameters(socketio.AsyncRedisManager.__init__)


# --- Tornado (accept.py, websocket.py) ---------------------------------------------------


@pytest.mark.gen_test
async def test_a_tornado_stream_refuses_writes_past_its_max_write_buffer_size() -> None:
    left, right = socket.socketpair()  # nobody reads `right`: the kernel's buffer fills
    try:
        stream = IOStream(left)
        stream.max_write_buffer_size = 1 << 20
        stream.write(b"x" * (1 << 20))
        with pytest.raises(StreamBufferFullError):
            stream.write(b"y" * (1 << 20))
        assert stream.writing()
        stream.close()
    finally:
        right.close()


@pytest.mark.gen_test
async def test_tornados_server_stops_the_listeners_our_accept_loop_registered() -> None:
    """accept.py fills TCPServer's `_sockets` and `_handlers`: stop() must still close the
    listening sockets and stop watching them."""
    admitted: list[Any] = []

    class Recording(AcceptLoopHTTPServer):
        def admit(self, connection: socket.socket, address: Any) -> None:
            admitted.append(address)
            connection.close()

    listeners = bind_sockets(0, "127.0.0.1")
    port = listeners[0].getsockname()[1]
    server = Recording(tornado.web.Application())
    server.add_sockets(listeners)
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    await eventually(lambda: admitted, what="the connection accepted")
    writer.close()
    server.stop()
    assert all(listener.fileno() == -1 for listener in listeners)
    assert parameters(TCPServer._handle_connection) == ["self", "connection", "address"]
