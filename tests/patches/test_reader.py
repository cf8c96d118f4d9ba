"""The way in of an event with an ack: engineio_server.py's reader (CountingWebSocket.wait)
hands a Socket.IO packet to python-socketio without engineio's packet layers, and guard.py
answers it with the ACK python-socketio would send, encoded without its walk for bytes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import engineio.async_socket
import pytest
import socketio

from tests.support.forms import log_in
from tests.support.wire import WireSocket
from tornado_app import packet_json
from tornado_app.app import TornadoApp
from tornado_app.packet_json import RawJSON
from tornado_app.patches.engineio_server import TunedEngineIOServer
from tornado_app.patches.guard import ProtocolGuardedServer

ANSWERS: list[Any] = [None, "x", 3, {"a": "é 😀"}, ("a", 1), [1, [2]], RawJSON.of({"x": 1}), b"\x00bytes", {"nested": [b"\x01"]}]


@contextmanager
def calls_of(owner: type, name: str) -> Iterator[list[tuple[Any, ...]]]:
    """The arguments of every call of `owner.name` within the block."""
    calls: list[tuple[Any, ...]] = []
    original = vars(owner)[name]
    function = original.__func__ if isinstance(original, classmethod) else original

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return function(*args, **kwargs)

    setattr(owner, name, classmethod(recorded) if isinstance(original, classmethod) else recorded)
    try:
        yield calls
    finally:
        setattr(owner, name, original)


async def acks_sent(through: Any, sio: ProtocolGuardedServer, answer: Any, namespace: str) -> list[Any]:
    """What goes to engineio's send when `answer` is an event's answer, handled by `through`."""
    sent: list[Any] = []

    async def record(eio_sid: str, data: Any) -> None:
        sent.append(data)

    async def handler(*args: Any) -> Any:
        return answer

    sio.eio.send = record
    sio.on("ask", handler, namespace=namespace)
    await through(sio, sio, "s1", "e1", ["ask", 1], namespace, 7)
    return sent


@pytest.mark.gen_test
@pytest.mark.parametrize("namespace", ["/", "/other"])
async def test_an_ack_is_the_packet_python_socketio_sends_byte_for_byte(namespace: str) -> None:
    sio = ProtocolGuardedServer(async_mode="tornado", json=packet_json, session_id_of=lambda handler: None, connect_timeout=10.0)
    for answer in ANSWERS:
        ours = await acks_sent(ProtocolGuardedServer._handle_event_internal, sio, answer, namespace)
        theirs = await acks_sent(socketio.AsyncServer._handle_event_internal, sio, answer, namespace)
        assert ours == theirs, answer


@pytest.mark.gen_test
async def test_an_ack_with_json_is_encoded_without_looking_through_it_for_bytes() -> None:
    """python-socketio's Packet walks every answer for bytes (data_is_binary: 5 calls for a
    one-key dict, 150 for a list of 50 people) before encoding it as JSON, which cannot hold
    bytes anyway: an answer with bytes still goes as python-socketio sends it (the test above)."""
    sio = ProtocolGuardedServer(async_mode="tornado", json=packet_json, session_id_of=lambda handler: None, connect_timeout=10.0)
    with calls_of(socketio.packet.Packet, "data_is_binary") as walks:
        sent = await acks_sent(ProtocolGuardedServer._handle_event_internal, sio, {"username": "ada", "people": [{"n": 1}] * 50}, "/")
    assert sent[0].startswith('37[{"username":"ada"')
    assert walks == []


@pytest.mark.gen_test
async def test_a_socketio_packet_reaches_python_socketio_without_engineios_packet_receive_and_trigger_event(
        app: TornadoApp, http_server: Any, base_url: str) -> None:
    """engineio took each frame through its Packet, `AsyncSocket.receive` and `_trigger_event`
    (which asks `inspect.iscoroutinefunction` of the handler every time) before python-socketio."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        socket = await WireSocket.connect(http, base_url, await log_in(http, base_url, "ada"), origin=base_url)
        try:
            with (calls_of(engineio.async_socket.AsyncSocket, "receive") as received,
                  calls_of(TunedEngineIOServer, "_trigger_event") as triggered):
                for _ in range(20):
                    assert (await socket.call("whoami"))["username"] == "ada"
            assert [args for args in received if args[1].packet_type == engineio.packet.MESSAGE] == []
            assert [args for args in triggered if args[1] == "message"] == []
        finally:
            await socket.close()


@pytest.mark.gen_test
async def test_an_error_in_the_message_handler_is_logged_as_engineio_logs_it_and_the_socket_goes_on(
        app: TornadoApp, http_server: Any, base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    handlers = app.sockets.sio.eio.handlers
    python_socketio = handlers["message"]

    async def failing_once(sid: str, data: Any) -> None:
        if data == '2["break"]':
            raise RuntimeError("a bug")
        await python_socketio(sid, data)

    handlers["message"] = failing_once
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        socket = await WireSocket.connect(http, base_url, await log_in(http, base_url, "ada"), origin=base_url)
        try:
            with caplog.at_level(logging.ERROR):
                await socket.emit("break")
                assert (await socket.call("whoami"))["username"] == "ada"
            [record] = [record for record in caplog.records if record.levelno >= logging.ERROR]
            assert record.getMessage() == "message async handler error" and record.exc_info is not None
        finally:
            handlers["message"] = python_socketio
            await socket.close()



@pytest.mark.gen_test
async def test_python_socketio_answers_an_event_from_handle_event_internal() -> None:
    """What guard.py overrides: python-socketio's `_handle_event` runs a connected socket's
    event, and sends its ACK, through `_handle_event_internal(server, sid, eio_sid, data,
    namespace, id)` (the tests above show the ACK it sends)."""
    called: list[tuple[Any, ...]] = []

    class Recording(socketio.AsyncServer):
        async def _handle_event_internal(self, *args: Any) -> None:
            called.append(args[1:])

    sio = Recording(async_mode="tornado", async_handlers=False)
    sio.manager.initialize()
    sid = await sio.manager.connect("e1", "/")
    await sio._handle_event("e1", None, 7, ["ask", 1])
    assert called == [(sid, "e1", ["ask", 1], "/", 7)]


def a_server() -> ProtocolGuardedServer:
    return ProtocolGuardedServer(async_mode="tornado", json=packet_json, session_id_of=lambda handler: None, connect_timeout=10.0)


async def outcome(trigger: Any, sio: ProtocolGuardedServer, event: Any, namespace: Any, *args: Any) -> Any:
    try:
        return ("returned", await trigger(sio, event, namespace, *args))
    except TypeError as error:  # what a handler given the wrong arguments raises, both ways
        return ("raised", type(error), str(error))


@pytest.mark.gen_test
async def test_an_event_triggers_its_handler_as_python_socketio_triggers_it() -> None:
    sio = a_server()

    async def answer(sid: str, *args: Any) -> Any:
        return {"sid": sid, "args": list(args)}

    def synchronous(sid: str, *args: Any) -> Any:
        return ["sync", sid, *args]

    async def two_arguments(sid: str, one: Any) -> Any:
        return one

    async def anything(event: str, sid: str, *args: Any) -> Any:
        return ["caught", event, sid, *args]

    async def legacy_disconnect(sid: str) -> str:
        return "left " + sid

    class Other(socketio.AsyncNamespace):
        async def on_ping(self, sid: str, *args: Any) -> Any:
            return ["namespace", sid, *args]

    sio.on("ask", answer)
    sio.on("sync", synchronous)
    sio.on("two", two_arguments)
    sio.on("*", anything)
    sio.on("disconnect", legacy_disconnect)
    sio.register_namespace(Other("/other"))
    cases: list[tuple[Any, ...]] = [("ask", "/", "s1", 1, "x"), ("sync", "/", "s1", 2), ("two", "/", "s1", 1, 2, 3), ("made_up", "/", "s1", 5),
             ("disconnect", "/", "s1", "client disconnect"), ("ping", "/other", "s2", 7), ("nothing", "/none", "s3")]
    for event, namespace, *args in cases:
        ours = await outcome(ProtocolGuardedServer._trigger_event, sio, event, namespace, *args)
        theirs = await outcome(socketio.AsyncServer._trigger_event, sio, event, namespace, *args)
        assert ours == theirs, event
    assert (await outcome(ProtocolGuardedServer._trigger_event, sio, "two", "/", "s1", 1, 2))[0] == "raised"  # a TypeError, as theirs


@pytest.mark.gen_test
async def test_an_async_def_handler_is_awaited_without_asking_inspect_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    sio = a_server()

    async def answer(sid: str) -> str:
        return sid

    sio.on("ask", answer)
    asked: list[Any] = []
    iscoroutinefunction = inspect.iscoroutinefunction
    def asking(function: Any) -> bool:
        asked.append(function)
        return iscoroutinefunction(function)

    monkeypatch.setattr(inspect, "iscoroutinefunction", asking)
    assert [await sio._trigger_event("ask", "/", f"s{n}") for n in range(3)] == ["s0", "s1", "s2"]
    assert asked == []
