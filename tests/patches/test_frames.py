"""frames.py builds the WebSocket frames of the direct path: a real client must read every
length form (7-bit, 16-bit and 64-bit lengths) and both text and binary frames."""

from __future__ import annotations

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
