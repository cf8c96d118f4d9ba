"""frames.py builds the WebSocket frames of the direct path: a real client must read every
length form (7-bit, 16-bit and 64-bit lengths) and both text and binary frames."""

from __future__ import annotations

import socket as sock

import aiohttp
import pytest

from tests.support.forms import log_in
from tests.support.wire import WireSocket
from tornado_app.app import TornadoApp
from tornado_app.patches.frames import server_frame


def test_each_length_form_has_its_header() -> None:
    assert server_frame("4") == b"\x81\x014"
    assert server_frame("x" * 125)[:2] == b"\x81\x7d"
    assert server_frame("x" * 126)[:4] == b"\x81\x7e\x00\x7e"
    assert server_frame("x" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")
    assert server_frame(b"\x00\x01")[:2] == b"\x82\x02"
    assert server_frame("é")[1] == 2  # the length counts UTF-8 bytes, not characters


@pytest.mark.gen_test
async def test_a_real_client_reads_broadcasts_of_every_length_form(app: TornadoApp, http_server, base_url: str) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        socket = await WireSocket.connect(http, base_url, await log_in(http, base_url, "ada"), origin=base_url)
        for length in (10, 125, 126, 1000, 65535, 70_000):
            text = "é" * (length // 2)
            await app.sockets.sio.emit("note", {"text": text})
            assert (await socket.next("note"))["text"] == text
        await socket.close()


@pytest.mark.gen_test
async def test_a_frame_goes_straight_to_the_socket_and_what_the_kernel_leaves_waits_in_order(
        app: TornadoApp, http_server, base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """websocket.py's write_frame sends a frame to the connection's socket itself while nothing
    of it waits in Tornado's buffer (no Tornado write at all); what the kernel does not take
    goes to that buffer, and every later frame behind it, so that nothing is reordered."""
    import tornado.iostream

    tornado_writes: list[int] = []
    write = tornado.iostream.IOStream.write

    def counting(stream: tornado.iostream.IOStream, data: bytes | memoryview) -> object:
        tornado_writes.append(len(data))
        return write(stream, data)

    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        socket = await WireSocket.connect(http, base_url, await log_in(http, base_url, "ada"), origin=base_url)
        monkeypatch.setattr(tornado.iostream.IOStream, "write", counting)
        for n in range(10):
            await app.sockets.sio.emit("note", {"n": n})
        assert [(await socket.next("note"))["n"] for _ in range(10)] == list(range(10))
        assert tornado_writes == []
        # A small send buffer: the kernel takes a few KiB of a frame at once, not 200 KB.
        [eio_socket] = app.sockets.sio.eio.sockets.values()
        eio_socket.queue.websocket.ws_connection.stream.socket.setsockopt(sock.SOL_SOCKET, sock.SO_SNDBUF, 4096)
        for _ in range(3):  # a frame larger than the kernel takes at once (under the 256 KiB cap), then small ones
            await app.sockets.sio.emit("note", {"n": -1, "text": "x" * 200_000})
            for n in range(20):
                await app.sockets.sio.emit("note", {"n": n})
            assert [(await socket.next("note"))["n"] for _ in range(21)] == [-1, *range(20)]
        assert tornado_writes  # the rest of each large frame, and what came behind it
        await socket.close()


def test_the_app_s_streams_take_the_straight_path_and_tls_ones_do_not() -> None:
    """write_frame sends to the socket itself only for a stream that writes to its socket as
    IOStream does: the app's counted plain stream (admission.py) does, a TLS stream does not."""
    from tornado.iostream import SSLIOStream

    from tornado_app.admission import CountedIOStream, CountedSSLIOStream
    from tornado_app.patches.websocket import PLAIN_WRITE

    assert CountedIOStream.write_to_fd is PLAIN_WRITE
    assert SSLIOStream.write_to_fd is not PLAIN_WRITE and CountedSSLIOStream.write_to_fd is not PLAIN_WRITE
