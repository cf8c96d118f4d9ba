"""patches/engineio_server.py under fire: closed sockets freed at once, sessions ended
without waiting, the direct path keeping every packet in order on both paths, and the
sessions per address. (What it relies on in engineio: test_internals.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from typing import Any, Literal

import aiohttp
import pytest
import socketio

from tests.support.forms import log_in
from tests.support.polling import UpgradingClient
from tests.support.waiting import GENEROUS_SECONDS, eventually
from tests.support.wire import WireSocket
from tornado_app.app import TornadoApp
from tornado_app.patches.engineio_server import OutgoingQueue, TunedEngineIOServer
from tornado_app.settings import Settings


def test_our_socket_server_runs_on_the_promptly_freeing_engineio_server(app: TornadoApp) -> None:
    assert type(app.sockets.sio.eio) is TunedEngineIOServer


@pytest.mark.gen_test
async def test_a_closed_sockets_ping_task_is_cancelled_at_once(app: TornadoApp, http_server, base_url: str) -> None:
    eio = app.sockets.sio.eio
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        socket = await WireSocket.connect(http, base_url, await log_in(http, base_url, "ada"), origin=base_url)
        [(_sid, ping)] = eio._ping_tasks.items()
        assert not ping.cancelled()  # due in a ping interval (8 s), holding the socket
        await socket.close()
        await eventually(ping.cancelled, what="the ping was cancelled")
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



@pytest.mark.gen_test
async def test_ending_a_session_upgraded_from_polling_closes_its_websocket(app: TornadoApp, http_server, base_url: str) -> None:
    """A browser page begins by polling and upgrades: ending its session (a drain's batch, a
    logout) closes the WebSocket it was upgraded to, at once. (The handler that opened the
    session, the one engineio's environ keeps, is the first long-poll's: closing only that
    left the page's WebSocket open until the process exited.)"""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        client = UpgradingClient(http, base_url, await log_in(http, base_url, "ada"))
        await client.open()
        await client.upgrade()
        assert client._websocket is not None and client._reader is not None
        await eventually(lambda: app.sockets.sio.eio.sockets[client.sid].upgraded, what="the server took the upgrade")
        await asyncio.wait_for(app.sockets.sio.end_engineio_session(client.sid, "server disconnect"), 1)
        # The reader ends only when the WebSocket closes (a close packet alone does not end it).
        await asyncio.wait_for(asyncio.shield(client._reader), 2)
        assert client._websocket.closed
        await client.close()


# --- The direct path (direct_writes) under fire --------------------------------

SOURCES = ("broadcast-a", "broadcast-b", "to-each", "mixed")
PACKETS_PER_SOURCE = 150
PACE = 0.02  # seconds between a source's packets: the hammering lasts PACKETS_PER_SOURCE * PACE
HAMMERING = 2.0  # seconds within which the upgrades and the leaves start, in the thick of it


def sequences(received: list[tuple[str, int]], sources: tuple[str, ...] = SOURCES) -> dict[str, list[int]]:
    by_source: dict[str, list[int]] = {source: [] for source in sources}
    for source, n in received:
        by_source[source].append(n)
    return by_source


def upgraded_received(client: UpgradingClient) -> list[tuple[str, int]]:
    return [(payload["source"], payload["n"]) for payload in client.received("seq")]


def wire_received(socket: WireSocket) -> list[tuple[str, int]]:
    received = []
    while socket.pending("seq"):
        payload = socket._events["seq"].get_nowait()
        received.append((payload["source"], payload["n"]))
    return received


async def hammer(sio: socketio.AsyncServer, registry: Any, kicked: list[str], kick_at: int) -> None:
    """Four sources of `seq` packets at once, each numbering its own: two broadcasters, one
    emitting to each socket in turn, one mixing broadcasts, emits to one socket and raw
    engineio sends. The mixed source disconnects the `kicked` sockets right after its
    packet `kick_at`. About 3 s in all, so that sockets that stop answering pings
    (interval 0.3 s, timeout 2 s) ping out in the middle of it."""

    async def broadcaster(source: str) -> None:
        for n in range(PACKETS_PER_SOURCE):
            await sio.emit("seq", {"source": source, "n": n})
            await asyncio.sleep(PACE if n % 2 else 0)

    async def to_each() -> None:
        for n in range(PACKETS_PER_SOURCE):
            for sid in list(registry.all_sockets()):
                await sio.emit("seq", {"source": "to-each", "n": n}, to=sid)
            await asyncio.sleep(PACE if n % 3 else 0)

    async def mixed() -> None:
        for n in range(PACKETS_PER_SOURCE):
            payload = {"source": "mixed", "n": n}
            route = n % 3
            if route == 0:
                await sio.emit("seq", payload)
            else:
                for sid in list(registry.all_sockets()):
                    if route == 1:
                        await sio.emit("seq", payload, to=sid)
                    else:  # the path of acks and connect packets: engineio's send, one socket
                        eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
                        await sio._send_packet(eio_sid, sio.packet_class(socketio.packet.EVENT, data=["seq", payload], namespace="/"))
            if n == kick_at:
                for sid in kicked:
                    await sio.disconnect(sid)
            await asyncio.sleep(PACE)

    await asyncio.gather(broadcaster("broadcast-a"), broadcaster("broadcast-b"), to_each(), mixed())


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "engineio-path"])
@pytest.mark.gen_test(timeout=60)
async def test_packets_keep_their_order_and_none_is_lost_while_sockets_upgrade_leave_and_ping_out(
    fast_path: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """Each socket must get each source's packets in order with no gap: all of them if it
    stays; a gapless start if it leaves, is disconnected or stops answering pings (then
    exactly the ones sent before its disconnect, for a socket the server disconnects)."""
    import random

    import tornado.httpserver
    from tornado.testing import bind_unused_port

    from tornado_app.app import make_app

    random.seed(7)
    # Pings every 0.3 s so that the silent sockets go during the hammering; two seconds to
    # answer, since the clients answering here share one loop with a busy server: on
    # engineio's path a ping waits behind every packet queued before it, and with 1 s a
    # loaded machine had a steady socket cut (no frame from it for interval + timeout).
    app = make_app("s" * 32, settings=Settings(ping_interval=0.3, ping_timeout=2.0), fast_path=fast_path)
    listener, port = bind_unused_port()
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets([listener])
    base = f"http://127.0.0.1:{port}"
    sio = app.sockets.sio
    kick_at = PACKETS_PER_SOURCE // 2
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            cookies = [await log_in(http, base, f"person{i}") for i in range(6)]
            steady = [await WireSocket.connect(http, base, cookies[i % 6], origin=base) for i in range(12)]
            leaving = [await WireSocket.connect(http, base, cookies[i % 6], origin=base) for i in range(4)]
            silent = [await WireSocket.connect(http, base, cookies[i % 6], origin=base, answer_pings=False) for i in range(4)]
            upgrading = [UpgradingClient(http, base, cookies[i % 6]) for i in range(8)]
            for client in upgrading:
                await client.open()
            known = set(sio.eio.sockets)
            to_kick = [await WireSocket.connect(http, base, cookies[i % 6], origin=base) for i in range(4)]
            kicked_eio = set(sio.eio.sockets) - known
            kicked = [sid for sid in app.sockets.registry.all_sockets() if sio.manager.eio_sid_from_sid(sid, "/") in kicked_eio]
            assert len(kicked) == 4

            tight_packets: dict[str, int] = {}

            async def upgrade_later(client: UpgradingClient) -> None:
                """Upgrade under a fifth source that sends to this socket at every turn of the
                loop, so that some of its packets fall in each step of the upgrade."""
                await asyncio.sleep(random.uniform(0.0, HAMMERING))
                sid = sio.manager.sid_from_eio_sid(client.sid, "/")
                upgraded = asyncio.Event()

                async def tight() -> None:
                    n = 0
                    while not upgraded.is_set():
                        await sio.emit("seq", {"source": "tight", "n": n}, to=sid)
                        n += 1
                        await asyncio.sleep(0)
                    tight_packets[client.sid] = n

                sending = asyncio.ensure_future(tight())
                await client.upgrade()
                await asyncio.sleep(0.05)
                upgraded.set()
                await sending

            async def leave_later(socket: WireSocket) -> None:
                await asyncio.sleep(random.uniform(0.05, HAMMERING))
                await socket.close()

            await asyncio.gather(
                hammer(sio, app.sockets.registry, kicked, kick_at),
                *(upgrade_later(client) for client in upgrading),
                *(leave_later(socket) for socket in leaving),
            )
            complete = [source for source in SOURCES for _ in range(PACKETS_PER_SOURCE)]


            def everything_arrived() -> bool:
                """every stayer has every packet"""
                return all(socket.pending("seq") >= len(complete) for socket in steady) and all(
                    len(upgraded_received(client)) >= len(complete) + tight_packets[client.sid] for client in upgrading)

            with contextlib.suppress(AssertionError):  # the checks below then say what is missing
                await eventually(everything_arrived)
            everything = list(range(PACKETS_PER_SOURCE))
            for socket in steady:
                assert not socket.closed.is_set(), f"a steady socket was closed: {socket.close_reason}"
                assert sequences(wire_received(socket)) == dict.fromkeys(SOURCES, everything)
            for client in upgrading:
                assert client.upgraded and not client.disconnected.is_set()
                expected = dict.fromkeys(SOURCES, everything) | {"tight": list(range(tight_packets[client.sid]))}
                assert sequences(upgraded_received(client), (*SOURCES, "tight")) == expected
            for socket in [*leaving, *silent]:
                for numbers in sequences(wire_received(socket)).values():
                    assert numbers == list(range(len(numbers)))  # in order, no gap
            for socket in silent:  # pinged out (those still pending once everyone else was done)
                await asyncio.wait_for(socket.closed.wait(), GENEROUS_SECONDS)
            for socket in to_kick:
                await asyncio.wait_for(socket.closed.wait(), GENEROUS_SECONDS)
                assert socket.close_reason == "io server disconnect"
                assert sequences(wire_received(socket))["mixed"] == list(range(kick_at + 1))
            if fast_path:  # the upgraded sockets ended up on the direct path, nothing stuck
                for client in upgrading:
                    queue = sio.eio.sockets[client.sid].queue
                    assert queue.websocket is not None
                    # A ping (every 0.3 s here) is counted from being queued until written: wait
                    # for a moment with nothing on its way rather than sampling once.
                    await eventually(lambda: queue.unsent == 0, what=f"nothing left unsent to {client.sid}")  # noqa: B023 (awaited in this iteration)
            for socket in steady:
                await socket.close()
            for client in upgrading:
                await client.close()
    finally:
        server.stop()
        await app.sockets.shutdown()
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []


async def serve(app: TornadoApp) -> tuple[Any, str]:
    import tornado.httpserver
    from tornado.testing import bind_unused_port

    listener, port = bind_unused_port()
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets([listener])
    return server, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "engineio-path"])
@pytest.mark.gen_test(timeout=30)
async def test_a_burst_of_chats_is_taken_in_order_and_reaches_everyone_in_order(fast_path: bool) -> None:
    from tornado_app.app import make_app

    app = make_app("s" * 32, settings=Settings(chat_rate="off"), fast_path=fast_path)  # 300 at once, from one session
    server, base = await serve(app)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            cookie = await log_in(http, base, "ada")
            sender = await WireSocket.connect(http, base, cookie, origin=base)
            listener = await WireSocket.connect(http, base, cookie, origin=base)
            for n in range(300):
                await sender.emit("chat", {"text": f"message {n}"})  # no waiting between them
            received = [(await listener.next("chat"))["text"] for _ in range(300)]
            assert received == [f"message {n}" for n in range(300)]
            assert [(await sender.next("chat"))["text"] for _ in range(300)] == received
    finally:
        server.stop()
        await app.sockets.shutdown()


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "engineio-path"])
@pytest.mark.gen_test(timeout=30)
async def test_a_socket_that_keeps_talking_stays_while_it_answers_pings_and_goes_when_it_stops(fast_path: bool) -> None:
    """The direct path hands Socket.IO frames over inside engineio's reader, whose 45 s
    wait is its "client gone" watchdog: talking must neither keep alive a client that stopped
    answering pings, nor let the watchdog cut a client that answers them (here with a ping
    interval of 0.3 s and a timeout of 2 s, over 5 s of a question every 10 ms: twice the
    watchdog's interval + timeout). With a 0.3 s timeout, a loaded machine that paused the
    loop the clients share with the server cut the answering client."""
    from tornado_app.app import make_app

    app = make_app("s" * 32, settings=Settings(ping_interval=0.3, ping_timeout=2.0), fast_path=fast_path)
    server, base = await serve(app)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            cookie = await log_in(http, base, "ada")
            answering = await WireSocket.connect(http, base, cookie, origin=base)
            silent = await WireSocket.connect(http, base, cookie, origin=base, answer_pings=False)

            async def keep_asking(socket: WireSocket) -> int:
                answered = 0
                deadline = asyncio.get_running_loop().time() + 5.0
                while asyncio.get_running_loop().time() < deadline and not socket.closed.is_set():
                    try:
                        assert (await socket.call("whoami"))["username"] == "ada"
                        answered += 1
                    except (TimeoutError, ConnectionError):
                        break
                    await asyncio.sleep(0.01)
                return answered

            answered, _ = await asyncio.gather(keep_asking(answering), keep_asking(silent))
            # (about 300 answers on an idle machine; a busy one still gives far more than 20)
            assert not answering.closed.is_set() and answered > 20
            await asyncio.wait_for(silent.closed.wait(), GENEROUS_SECONDS)
            await answering.close()
    finally:
        server.stop()
        await app.sockets.shutdown()


def test_without_the_fast_path_every_packet_takes_engineios_own_queue_and_writer() -> None:
    from engineio.async_drivers.tornado import WebSocket

    from tornado_app.app import make_app
    from tornado_app.patches.engineio_server import CountingWebSocket, OutgoingQueue

    off = make_app("s" * 32, fast_path=False).sockets.sio.eio
    assert type(off.create_queue()) is asyncio.Queue and off._async["websocket"] is WebSocket
    on = make_app("s" * 32).sockets.sio.eio
    assert type(on.create_queue()) is OutgoingQueue and on._async["websocket"] is CountingWebSocket
    assert WebSocket.__module__ == "engineio.async_drivers.tornado"  # engineio's dict itself is untouched
    import engineio.async_drivers.tornado as driver

    assert driver._async["websocket"] is WebSocket


# --- What a connect sends, in one stream write (writes_gathered) ----------------------


class RecordingSocket:
    """A connection's socket that keeps what each `send` (each syscall) carried: Tornado's
    writes and websocket.py's own both send through it."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped
        self.sent: list[bytes] = []

    def send(self, data: Any, *flags: int) -> int:
        count: int = self.wrapped.send(data, *flags)
        self.sent.append(bytes(data[:count]))
        return count

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def carried(queue: OutgoingQueue) -> bool:
    return queue.websocket is not None


@pytest.mark.gen_test
async def test_an_accepted_connects_welcome_history_presence_and_ack_leave_in_one_send_in_order(
        app: TornadoApp, http_server, base_url: str) -> None:
    """The four packets of an accepted connect were four `send` syscalls, one after another;
    now one, in order."""
    from tests.support.protocol import websocket_url

    eio = app.sockets.sio.eio
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        cookie = await log_in(http, base_url, "ada")
        for _ in range(2):  # the second socket's state names ada: a presence frame of some size
            async with http.ws_connect(websocket_url(base_url), headers={"Cookie": cookie, "Origin": base_url}, compress=0) as ws:
                opening = await ws.receive_str(timeout=10)
                queue: OutgoingQueue = eio.sockets[json.loads(opening[1:])["sid"]].queue
                await eventually(functools.partial(carried, queue), what="the WebSocket carries the socket")
                stream = queue.websocket.ws_connection.stream  # type: ignore[union-attr]  # a Tornado handler
                stream.socket = recording = RecordingSocket(stream.socket)
                await ws.send_str("40")
                while not (await ws.receive_str(timeout=10)).startswith("40"):
                    pass
                [sent] = recording.sent
                marks = [sent.index(mark) for mark in (b'42["welcome"', b'42["history"', b'42["presence_state"', b'40{"sid"')]
                assert marks == sorted(marks)


@pytest.mark.gen_test
async def test_newcomers_history_and_presence_frames_are_built_once_until_they_change(
        app: TornadoApp, http_server, base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The history and the presence state are encoded once per position and version
    (sockets.py, presence.py); the direct emit then builds their frames once too
    (DirectManager.reuse_frames_for), until a message or a person changes them."""
    from tornado_app.patches import managers

    built: list[bytes] = []
    server_frame = managers.server_frame

    def recording(payload: str | bytes) -> bytes:
        frame = server_frame(payload)
        built.append(frame)
        return frame

    monkeypatch.setattr(managers, "server_frame", recording)

    def count(event: str) -> int:
        return sum(1 for frame in built if f'42["{event}"'.encode() in frame[:40])

    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        cookie = await log_in(http, base_url, "ada")
        first = await WireSocket.connect(http, base_url, cookie, origin=base_url)
        await first.sees_online(["ada"])
        built.clear()
        newcomers = [await WireSocket.connect(http, base_url, cookie, origin=base_url) for _ in range(3)]
        # The history is the first socket's frame again; the state changed once since (ada came).
        assert count("history") == 0 and count("presence_state") == 1
        histories = [await socket.next("history") for socket in newcomers]
        assert histories[0] == histories[1] == histories[2]
        states = [await socket.next("presence_state") for socket in newcomers]
        assert states[0] == states[1] == states[2] and [person["name"] for person in states[0]["people"]] == ["ada"]
        await first.call("chat", {"text": "hello"})
        latest = await WireSocket.connect(http, base_url, cookie, origin=base_url)
        assert count("history") == 1  # a message changed it
        assert [message["text"] for message in (await latest.next("history"))["messages"]] == ["hello"]
        for socket in [first, *newcomers, latest]:
            await socket.close()


class RecordingWriter:
    """A WebSocket handler as the direct path writes to it, keeping each write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write_frame(self, frame: bytes) -> None:
        self.writes.append(frame)


def test_gathered_frames_go_out_together_in_order_and_past_the_bound_at_once() -> None:
    from tornado_app.patches.engineio_server import GATHERED_BYTES

    queue, writer = OutgoingQueue(), RecordingWriter()
    assert not queue.gather()  # no WebSocket carries the socket yet: nothing to gather for
    queue.websocket = writer
    queue.write(writer, b"a")
    assert writer.writes == [b"a"]  # not gathering: at once
    assert queue.gather() and not queue.gather()
    queue.write(writer, b"b")
    queue.write(writer, b"c")
    assert writer.writes == [b"a"]
    queue.release()
    assert writer.writes == [b"a", b"bc"]
    queue.write(writer, b"d")
    assert writer.writes == [b"a", b"bc", b"d"]  # released: at once again
    queue.gather()
    big = b"x" * GATHERED_BYTES
    queue.write(writer, b"e")
    queue.write(writer, big)  # past the bound: out now, with what came before it
    assert writer.writes[-1] == b"e" + big
    queue.write(writer, b"f")
    queue.websocket = None  # the connection closed: what was gathered goes with it
    queue.release()
    assert writer.writes[-1] == b"e" + big and queue.gathered is None


@pytest.mark.gen_test
async def test_a_session_ended_during_its_connect_is_sent_what_was_gathered_before_its_close(
        app: TornadoApp, http_server, base_url: str) -> None:
    """end_session writes what was gathered, then closes: the client reads the packets, then
    the close (engineio's CLOSE packet goes through the same gathering)."""
    eio = app.sockets.sio.eio
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        socket = await WireSocket.connect(http, base_url, await log_in(http, base_url, "ada"), origin=base_url)
        [eio_sid] = eio.sockets
        with eio.writes_gathered(eio_sid):
            await app.sockets.sio.emit("note", {"n": 1})
            await app.sockets.sio.emit("note", {"n": 2})
            await app.sockets.sio.end_engineio_session(eio_sid, "server disconnect")
        assert [(await socket.next("note"))["n"] for _ in range(2)] == [1, 2]
        await asyncio.wait_for(socket.closed.wait(), GENEROUS_SECONDS)


@pytest.mark.gen_test
async def test_engineios_poll_waits_for_packets_without_a_task_and_still_times_out() -> None:
    """engineio's writer and long polls wait through `asyncio.wait_for(queue.get(), timeout)`:
    a Task per wait for a coroutine, none for a future (OutgoingQueue.get). The timeout still
    ends a wait, and takes nothing from the queue."""
    from engineio import exceptions
    from engineio import packet as eio_packet
    from engineio.async_socket import AsyncSocket

    from tornado_app.app import make_app

    eio = make_app("s" * 32, settings=Settings(ping_interval=0.3, ping_timeout=0.3)).sockets.sio.eio
    socket = AsyncSocket(eio, "a-sid")
    loop = asyncio.get_running_loop()
    started: list[Any] = []

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        started.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        loop.call_later(0.05, socket.queue.put_nowait, eio_packet.Packet(eio_packet.NOOP))
        assert [pkt.packet_type for pkt in await socket.poll()] == [eio_packet.NOOP]  # waited for it
        socket.queue.put_nowait(eio_packet.Packet(eio_packet.PING))
        socket.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))
        assert [pkt.packet_type for pkt in await socket.poll()] == [eio_packet.PING, eio_packet.NOOP]
        assert started == []
        with pytest.raises(exceptions.QueueEmpty):
            await socket.poll()  # nothing within ping interval + timeout
        socket.queue.put_nowait(eio_packet.Packet(eio_packet.PING))
        assert [pkt.packet_type for pkt in await socket.poll()] == [eio_packet.PING]  # not lost to the wait that timed out
        assert socket.queue.qsize() == 0
        await socket.queue.join()  # engineio's poll marked each one done
    finally:
        loop.set_task_factory(None)


@pytest.mark.gen_test(timeout=30)
async def test_pings_go_out_every_interval_without_a_task_per_ping() -> None:
    """engineio sleeps in a task per socket and ping cycle (AsyncSocket._send_ping); with the
    direct path each ping is a timer, and a client still gets one every interval."""
    from tornado_app.app import make_app

    app = make_app("s" * 32, settings=Settings(ping_interval=0.2, ping_timeout=2.0))
    server, base = await serve(app)
    loop = asyncio.get_running_loop()
    started: list[str] = []

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        started.append(getattr(coro, "__qualname__", ""))
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            socket = await WireSocket.connect(http, base, await log_in(http, base, "ada"), origin=base)
            await eventually(lambda: socket.pongs >= 3, what="three pings answered")
            assert not socket.closed.is_set()
            await socket.close()
        assert "AsyncSocket._send_ping" not in started
    finally:
        loop.set_task_factory(None)
        server.stop()
        await app.sockets.shutdown()


# --- Engine.IO sessions per client address, and polling sessions that never poll (issue 14,
# item 5), against a real server process. The attacker comes from 127.0.0.2. -------------


@pytest.mark.gen_test(timeout=30)
async def test_limit_sessions_counts_engineio_sessions_per_address_and_gives_places_back() -> None:
    """What limit_sessions relies on in engineio: its 'connect' event comes with the
    handshake's environ (the Tornado handler), a reason returned from it refuses the session
    (401 with that reason; a WebSocket is closed, 1013), and every session that closes
    passes 'disconnect'."""
    from tests.support.protocol import SOCKETIO_POLLING, websocket_url
    from tornado_app.app import make_app
    from tornado_app.sockets_per_address import SocketsPerAddress

    app = make_app("s" * 32, settings=Settings(max_sockets_per_ip=1, first_poll_timeout=None))
    server, base = await serve(app)
    eio: TunedEngineIOServer = app.sockets.sio.eio
    assert isinstance(eio.session_gate, SocketsPerAddress)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            async with http.get(base + SOCKETIO_POLLING) as first:
                assert first.status == 200
                sid = json.loads((await first.text())[1:])["sid"]
            assert eio.session_gate.open == {"127.0.0.1": 1}
            async with http.get(base + SOCKETIO_POLLING) as second:
                assert second.status == 401
                assert await second.json() == "too many sockets from your address"
            assert list(eio.sockets) == [sid]  # the refused one is not kept
            refused = await http.ws_connect(websocket_url(base), headers={"Origin": base})
            closing = await refused.receive(timeout=GENEROUS_SECONDS)  # a WebSocket past the cap: try again later
            assert (closing.data, closing.extra) == (1013, "too many sockets from your address")
            assert list(eio.sockets) == [sid] and eio.session_gate.open == {"127.0.0.1": 1}
            await app.sockets.sio.end_engineio_session(sid, "server disconnect")
            assert eio.session_gate.open == {}
            async with http.get(base + SOCKETIO_POLLING) as third:
                assert third.status == 200
    finally:
        server.stop()
        await app.sockets.shutdown()


def test_polling_handshakes_from_one_address_are_capped_and_hold_little_memory(server_process: Any) -> None:
    """300 polling handshakes without a cookie that never poll, from one address, against
    --max-sockets-per-ip 50: 50 are opened, 250 refused (401, one log line), memory stays
    flat, and another address still logs in and connects. (Before: 1,155 handshakes a second
    gave +231 MiB, ~20 KiB each, held until their timeouts.)"""
    from tests.support.attacked import AttackedServer, still_serves_a_person
    from tests.support.attacks import polling_handshakes

    attacked = AttackedServer(server_process("--port", "0", "--max-sockets-per-ip", "50", "--first-poll-timeout", "30"))

    async def scenario() -> None:
        await still_serves_a_person(attacked.url)  # warm up
        before = attacked.rss_mib()
        statuses = await polling_handshakes(attacked.url, 300)
        assert statuses.count(200) == 50 and statuses.count(401) == 250, statuses
        assert attacked.rss_mib() - before < 8
        await still_serves_a_person(attacked.url)

    asyncio.run(scenario())
    status, _, log = attacked.server.stop()
    assert status == 0 and "Traceback" not in log
    assert log.count("refused Engine.IO sessions over --max-sockets-per-ip") == 1, log[-2000:]
    assert "refused GET /socket.io/" not in log  # counted in that line, not one access-log line each


def test_a_polling_session_that_never_polls_is_ended_and_one_that_polls_stays(server_process: Any) -> None:
    """With --first-poll-timeout 1, a handshake never followed by a poll is ended (its sid
    is unknown afterwards), while one that polls at once, as a page does, stays open."""
    from tests.support.attacked import AttackedServer
    from tests.support.protocol import SOCKETIO_POLLING

    attacked = AttackedServer(server_process("--port", "0", "--first-poll-timeout", "1"))
    base = attacked.url

    async def scenario() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:

            async def handshake() -> str:
                async with http.get(base + SOCKETIO_POLLING) as opening:
                    return json.loads((await opening.text())[1:])["sid"]

            idle, polling = await handshake(), await handshake()
            poll = asyncio.ensure_future(http.get(f"{base}{SOCKETIO_POLLING}&sid={polling}"))
            await asyncio.sleep(2.5)  # past the first-poll timeout, with margin for a busy machine

            async def post_connect(sid: str) -> int:
                """A Socket.IO connect (refused without a cookie, but taken: 200 while the
                Engine.IO session is open, 400 once engineio no longer knows it)."""
                async with http.post(f"{base}{SOCKETIO_POLLING}&sid={sid}", data="40") as response:
                    return response.status

            assert await post_connect(polling) == 200  # still open
            assert await post_connect(idle) == 400  # ended
            poll.cancel()

    asyncio.run(scenario())
    _status, _, log = attacked.server.stop()
    assert log.count("ended polling sessions that never polled: 1 s after the handshake") == 1, log[-2000:]


# --- The sweep for sockets that stopped answering pings (_service_task) ----------


class CountingEvent(asyncio.Event):
    """The service task's stop event, counting how often the sweep waits on it (a wake-up each)."""

    waits = 0

    async def wait(self) -> Literal[True]:
        self.waits += 1
        return await super().wait()


class IdleSocket:
    """What the sweep reads of an engineio socket: one that answered its last ping."""

    closed = False
    closing = False
    last_ping: float | None = None
    checked = 0

    async def check_ping_timeout(self) -> bool:
        self.checked += 1
        self.closed = True
        return False


@pytest.mark.gen_test(timeout=30)
async def test_the_sweep_wakes_once_a_second_whatever_the_number_of_sockets() -> None:
    """engineio's sweep slept ping_timeout / N between every two sockets: with 10,000 idle
    sockets and a 5 s timeout, 2,000 wake-ups a second (each a wait_for, a task and a timer),
    about half a core for sockets that do nothing (bench/idle.py). Ours is one pass a second
    that closes exactly the sockets whose ping went unanswered, and drops the closed ones."""
    import time

    server = TunedEngineIOServer(async_mode="tornado", ping_interval=8, ping_timeout=5)
    event = CountingEvent()
    server.create_event = lambda: event
    idle = {f"idle{i}": IdleSocket() for i in range(10_000)}
    silent, closing, closed = IdleSocket(), IdleSocket(), IdleSocket()
    silent.last_ping = closing.last_ping = time.time() - 6  # pinged 6 s ago, no pong
    closing.closing = True  # already on its way out: not closed twice
    closed.closed = True
    server.sockets.update(idle, silent=silent, closing=closing, closed=closed)

    sweeping = asyncio.ensure_future(server._service_task())
    await asyncio.sleep(2.5)
    event.set()
    await asyncio.wait_for(sweeping, 5)

    assert event.waits <= 4, f"{event.waits} wake-ups in 2.5 s"
    assert silent.checked == 1 and closing.checked == 0
    assert "closed" not in server.sockets and all(socket.checked == 0 for socket in idle.values())


@pytest.mark.gen_test(timeout=30)
async def test_a_polling_client_that_stops_polling_is_closed_by_the_sweep() -> None:
    """Nothing else notices a long-polling client that went away between two polls: no
    request is open to time out, and nothing is sent to it that would check its ping."""
    from tornado_app.app import make_app

    app = make_app("s" * 32, settings=Settings(ping_interval=0.5, ping_timeout=0.5))
    server, base = await serve(app)
    eio = app.sockets.sio.eio
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/socket.io/?EIO=4&transport=polling") as opening:
                sid = (await opening.text()).split('"sid":"', 1)[1].split('"', 1)[0]
            assert eio.service_task_handle.get_coro().__qualname__ == "TunedEngineIOServer._service_task"
            # pinged 0.5 s after the handshake, unanswered 0.5 s later, swept every 0.5 s
            await eventually(lambda: sid not in eio.sockets, what="the silent session was closed")
    finally:
        server.stop()
