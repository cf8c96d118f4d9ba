"""patches/websocket.py's reading side against the real app: a client's frames, however its
TCP writes cut them, reach engineio whole and in order; they are read from the stream a chunk
at a time; and a connection whose reader is held still reads no further than its bound."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
import tornado.iostream
import tornado.platform.asyncio
from tornado.websocket import WebSocketHandler

from tests.support.forms import log_in
from tests.support.protocol import ack_of, event_packet
from tests.support.raw import RawWebSocket
from tests.support.waiting import GENEROUS_SECONDS, eventually
from tornado_app.app import TornadoApp
from tornado_app.patches.websocket import INBOUND_FRAMES, READ_AHEAD_BYTES, ChunkReadingProtocol

TEXT, CONTINUATION, PING, PONG = 0x1, 0x0, 0x9, 0xA
MASK = b"\x5a\xa5\x0f\xf0"  # a real mask: the server must unmask every piece it is handed


def client_frame(payload: bytes | str, opcode: int = TEXT, final: bool = True) -> bytes:
    """A client's frame (RFC 6455 5.2), masked with MASK."""
    data = payload.encode() if isinstance(payload, str) else payload
    head = RawWebSocket.frame_header(len(data), opcode, final, mask=MASK)
    return head + bytes(byte ^ MASK[i % 4] for i, byte in enumerate(data))


async def server_frame(ws: RawWebSocket) -> tuple[int, bytes]:
    """The next frame from the server (unmasked, unfragmented): its opcode and payload."""
    reader = ws.reader
    first, second = await asyncio.wait_for(reader.readexactly(2), GENEROUS_SECONDS)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return first & 0x0F, await reader.readexactly(length)


async def next_ack(ws: RawWebSocket) -> tuple[int, list[Any]]:
    """The next Socket.IO ack from the server; events in between are passed over, pings answered."""
    while True:
        opcode, payload = await server_frame(ws)
        if opcode != TEXT:
            continue
        packet = payload.decode()
        if packet == "2":
            await write(ws, client_frame("3"))
        elif packet.startswith("43"):
            return ack_of(packet)


async def write(ws: RawWebSocket, data: bytes) -> None:
    ws.writer.write(data)
    await ws.writer.drain()


async def connected(base_url: str, cookie: str) -> RawWebSocket:
    """A raw WebSocket with its Socket.IO connect accepted."""
    ws = await RawWebSocket.open(base_url, {"Cookie": cookie, "Origin": base_url})
    assert ws.status == 101
    assert (await server_frame(ws))[1].startswith(b"0")  # Engine.IO's open
    await write(ws, client_frame("40"))
    while not (await server_frame(ws))[1].startswith(b"40"):
        pass  # the welcome, history and presence come first
    return ws


def whoami(ack_id: int, *args: Any) -> bytes:
    return client_frame(event_packet("whoami", *args, ack_id=ack_id))


@pytest.mark.gen_test(timeout=60)
async def test_frames_however_the_client_cuts_them_arrive_whole_and_in_order(app: TornadoApp, http_server: Any, base_url: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        ws = await connected(base_url, await log_in(http, base_url, "ada"))
        try:
            # Fifty frames in one write: one chunk, handed out frame by frame.
            await write(ws, b"".join(whoami(n) for n in range(50)))
            for n in range(50):
                assert await next_ack(ws) == (n, [{"username": "ada", "logged_in_at": pytest.approx(app.backend.clock(), abs=5)}])
            # One frame with a 16-bit length, a byte per write: its header, length, mask and
            # payload each come in pieces.
            for byte in whoami(50, "x" * 300):
                await write(ws, bytes([byte]))
                await asyncio.sleep(0.001)
            assert (await next_ack(ws))[0] == 50
            # A message in two fragments with a ping between them, and the next message's
            # first bytes in the same write as the last fragment.
            text = event_packet("whoami", "y" * 10, ack_id=51)
            following = whoami(52)
            await write(ws, client_frame(text[:7], final=False) + client_frame(b"hello", opcode=PING))
            assert await server_frame(ws) == (PONG, b"hello")
            await write(ws, client_frame(text[7:], opcode=CONTINUATION) + following[:3])
            await write(ws, following[3:])
            assert [(await next_ack(ws))[0] for _ in range(2)] == [51, 52]
        finally:
            ws.writer.close()


@contextmanager
def counting(owner: type, name: str) -> Iterator[list[int]]:
    """Count the calls of `owner.name` within the block (the server's, here: the test's
    clients are aiohttp and asyncio streams, not Tornado's)."""
    calls = [0]
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    setattr(owner, name, counted)
    try:
        yield calls
    finally:
        setattr(owner, name, original)


@pytest.mark.gen_test(timeout=60)
async def test_a_sockets_frames_are_read_a_chunk_at_a_time_and_its_read_interest_stays_on(
        app: TornadoApp, http_server: Any, base_url: str) -> None:
    """Tornado read a frame with three stream reads (header, mask, payload), each leaving the
    rest in its buffer, so the stream stopped listening for reads within each frame and started
    again for the next: two epoll_ctl calls per message (update_handler)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        ws = await connected(base_url, await log_in(http, base_url, "ada"))
        try:
            with counting(tornado.iostream.BaseIOStream, "read_bytes") as reads:
                await write(ws, b"".join(whoami(n) for n in range(50)))
                assert [(await next_ack(ws))[0] for _ in range(50)] == list(range(50))
            assert reads[0] <= 5, f"{reads[0]} stream reads for 50 frames sent in one write"
            with counting(tornado.platform.asyncio.BaseAsyncIOLoop, "update_handler") as updates:
                for n in range(50, 80):
                    await write(ws, whoami(n))
                    assert (await next_ack(ws))[0] == n
            assert updates[0] <= 3, f"{updates[0]} changes of the stream's events for 30 questions"
        finally:
            ws.writer.close()


@pytest.mark.gen_test(timeout=60)
async def test_a_socket_whose_reader_is_held_reads_no_further_than_its_bound(app: TornadoApp, http_server: Any, base_url: str) -> None:
    """INBOUND_FRAMES frames wait for engineio, and what was read ahead is at most a chunk
    past the frame being read; the rest stays in the kernel until the reader moves on."""
    held = asyncio.Event()
    release = asyncio.Event()
    handlers = app.sockets.sio.handlers["/"]
    answer = handlers["whoami"]

    async def slow_whoami(*args: Any) -> Any:
        held.set()
        await release.wait()
        return await answer(*args)

    handlers["whoami"] = slow_whoami
    frames = 400
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        ws = await connected(base_url, await log_in(http, base_url, "ada"))
        try:
            [handler] = [environ["tornado.handler"] for environ in app.sockets.sio.environ.values()]
            protocol = handler.ws_connection
            assert type(protocol) is ChunkReadingProtocol
            # With the parameters Tornado's own get_websocket_protocol gives its protocol (given
            # back the header it reads: a connected socket let go of its handshake's, guard.py).
            handler.request.headers["Sec-WebSocket-Version"] = "13"
            tornados: Any = WebSocketHandler.get_websocket_protocol(handler)
            assert vars(protocol.params) == vars(tornados.params)
            # Its read state is in slots: a 30th key would make the dict of every socket's
            # protocol leave the shared-key layout (+1.3 KiB each).
            assert not {"_unread", "_unread_at"} & vars(protocol).keys()
            ws.writer.write(b"".join(whoami(n, "z" * 1000) for n in range(frames)))  # ~400 KiB
            await asyncio.wait_for(held.wait(), GENEROUS_SECONDS)
            await eventually(lambda: handler.receive_queue.qsize() >= INBOUND_FRAMES - 1, what="the inbound frames queued")
            await asyncio.sleep(0.2)  # what else would be read, would be by now
            assert handler.receive_queue.qsize() <= INBOUND_FRAMES
            assert len(protocol._unread) - protocol._unread_at <= READ_AHEAD_BYTES + 1100
            release.set()
            await ws.writer.drain()
            assert [(await next_ack(ws))[0] for _ in range(frames)] == list(range(frames))
        finally:
            release.set()
            handlers["whoami"] = answer
            ws.writer.close()


def test_tornado_reads_a_frame_through_read_bytes_and_makes_its_protocol_in_get_websocket_protocol() -> None:
    """What ChunkReadingProtocol relies on: Tornado's frame parser takes its bytes from
    `_read_bytes(n)` (a coroutine, counting `_wire_bytes_in`), and its handler makes the
    protocol in `get_websocket_protocol`, as the tests above show by what comes through."""
    import inspect

    from tornado.websocket import WebSocketProtocol13

    assert inspect.iscoroutinefunction(WebSocketProtocol13._read_bytes)
    assert list(inspect.signature(WebSocketProtocol13._read_bytes).parameters) == ["self", "n"]
    assert "get_websocket_protocol" in vars(WebSocketHandler)


@pytest.mark.gen_test(timeout=60)
async def test_a_frame_for_a_waiting_reader_is_handed_to_it_not_queued(app: TornadoApp, http_server: Any, base_url: str) -> None:
    """Each frame went through asyncio.Queue's put and get (a dozen calls) even when
    engineio's reader was already waiting for it, as it is between two round trips; and the
    reader still ends when the connection closes while it waits."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        ws = await connected(base_url, await log_in(http, base_url, "ada"))
        [handler] = [environ["tornado.handler"] for environ in app.sockets.sio.environ.values()]
        queued: list[Any] = []
        put_nowait = handler.receive_queue.put_nowait

        def recorded(item: Any) -> None:
            queued.append(item)
            put_nowait(item)

        handler.receive_queue.put_nowait = recorded
        for n in range(20):
            await write(ws, whoami(n))
            assert (await next_ack(ws))[0] == n
        assert queued == []
        ws.writer.close()
        await eventually(lambda: not app.sockets.sio.eio.sockets, what="the Engine.IO session ended with its connection")
