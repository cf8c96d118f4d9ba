"""Frames carry UTF-8 as it is (issue 21 item 9), and a chat message is bounded by its encoded
bytes as well as its characters: attacked on a real server, in both stores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from socketio import packet as sio_packet

from deploy.services import AppProcess
from tests.support.app_env import app_env
from tests.support.forms import http_session, log_in
from tests.support.protocol import event_of, websocket_url
from tests.support.wire import WireSocket
from tornado_app import packet_json
from tornado_app.app import make_app
from tornado_app.cli import Misconfigured, check_history_fits
from tornado_app.history import history_frame_bytes
from tornado_app.settings import PRODUCTION

# This module's fixtures that start processes: a test using one is marked `process`
# (tests/support/process_marker.py).
PROCESS_FIXTURES = {"app"}

EMOJI = "\U0001F600"  # 4 bytes in UTF-8, 12 as the escapes "\ud83d\ude00"
MESSAGES = 51  # one more than the history keeps


@pytest.fixture(params=["memory", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppProcess]:
    started = AppProcess(tmp_path / "app.log", "--log-level", "info", "--chat-rate", "off", env=app_env(request, request.param))
    yield started
    started.stop()


async def newcomers_history_frame(http: aiohttp.ClientSession, base: str, cookie: str) -> str:
    """The `history` frame a new socket gets, as the WebSocket carried it."""
    async with http.ws_connect(websocket_url(base), headers={"Cookie": cookie, "Origin": base}, compress=0) as ws:
        assert (await ws.receive_str(timeout=10)).startswith("0")
        await ws.send_str("40")
        while True:
            frame = await ws.receive_str(timeout=10)
            if frame.startswith('42["history"'):
                return frame


def test_a_newcomers_history_of_emoji_is_its_utf8_size_not_three_times_it(app: AppProcess) -> None:
    """Before: 51 messages of 500 emoji made every newcomer's history frame 304,528 bytes (each
    emoji written as 12 bytes of escapes), above --max-unsent-kib. Now ~4 bytes an emoji."""

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, app.url, "ada")
            ada = await WireSocket.connect(http, app.url, cookie, origin=app.url)
            text = EMOJI * 500
            for _ in range(MESSAGES):
                await ada.emit("chat", {"text": text})
                assert (await ada.next("chat"))["text"] == text  # unchanged, every character of it
            frame = await newcomers_history_frame(http, app.url, await log_in(http, app.url, "bob"))
            size = len(frame.encode())
            texts = [message["text"] for message in event_of(frame)[1][0]["messages"]]
            assert texts == [text] * PRODUCTION.history
            utf8 = PRODUCTION.history * len(text.encode())  # 100,000 bytes of text
            assert utf8 < size < utf8 + PRODUCTION.history * 200, size  # plus each message's id, name, tag and time
            assert size <= history_frame_bytes(PRODUCTION.history) <= PRODUCTION.max_unsent_bytes
            await ada.close()

    asyncio.run(scenario())
    app.stop()
    assert "Traceback" not in app.log()


def test_a_message_over_the_byte_bound_or_not_utf8_is_refused_clearly_and_kept_from_everyone(app: AppProcess) -> None:
    """500 emoji (2,000 bytes, the most a frame carries for a message's text) pass; 400 control
    characters (400 characters, but 2,400 bytes as every frame would write them) and half of an
    emoji (a lone surrogate: no UTF-8 writes it) are refused with a message, reach nobody and
    are not kept."""

    async def scenario() -> None:
        async with http_session() as http:
            ada = await WireSocket.connect(http, app.url, await log_in(http, app.url, "ada"), origin=app.url)
            bob = await WireSocket.connect(http, app.url, await log_in(http, app.url, "bob"), origin=app.url)
            assert "control characters" in (await ada.call("chat", {"text": "\x01" * 400}))["message"]
            await ada.send_raw('42900["chat",{"text":"half \\ud83d"}]')  # with an ack id of its own
            refusal = await ada.next("ack 900")
            assert refusal["ok"] is False and "half of a character" in refusal["message"]
            assert (await ada.call("chat", {"text": EMOJI * 500}))["ok"] is True
            assert (await bob.next("chat"))["text"] == EMOJI * 500  # the first bob hears
            assert bob.pending("chat") == 0
            carol = await WireSocket.connect(http, app.url, await log_in(http, app.url, "carol"), origin=app.url)
            assert [message["text"] for message in (await carol.next("history"))["messages"]] == [EMOJI * 500]
            for socket in (ada, bob, carol):
                await socket.close()

    asyncio.run(scenario())
    app.stop()
    assert "Traceback" not in app.log()


# --- the JSON module itself -----------------------------------------------------------------


def test_packets_are_utf8_and_a_lone_surrogate_falls_back_to_escapes() -> None:
    assert packet_json.dumps(["chat", {"text": "é" + EMOJI}], separators=(",", ":")) == '["chat",{"text":"é' + EMOJI + '"}]'
    lone = packet_json.dumps({"text": "\ud83d"})
    assert lone == '{"text": "\\ud83d"}' and lone.encode()  # writable as UTF-8
    assert packet_json.loads(lone) == {"text": "\ud83d"}


def test_raw_json_is_written_as_it_is_where_it_is_an_argument() -> None:
    state = packet_json.RawJSON.of({"version": 3, "people": [{"name": "zoë", "tag": "t"}]})
    encoded = packet_json.dumps(["presence_state", state, 1], separators=(",", ":"))
    assert encoded == '["presence_state",{"version":3,"people":[{"name":"zoë","tag":"t"}]},1]'
    assert json.loads(encoded)[1]["people"][0]["name"] == "zoë"


def test_a_history_that_cannot_fit_in_max_unsent_kib_refuses_to_start() -> None:
    """The largest history frame (every message at its byte bound) must fit in what a socket
    may leave unsent: 50 messages need 159 KiB of the default 256 (3,236 bytes a message, with
    the longest name, skeleton, text and position)."""
    check_history_fits(PRODUCTION.history, PRODUCTION.max_unsent_kib)
    check_history_fits(80, 256)
    with pytest.raises(Misconfigured, match=r"--history 81 .* above --max-unsent-kib 256: keep at most 80 messages"):
        check_history_fits(81, 256)
    with pytest.raises(Misconfigured, match="keep at most 20 messages"):
        check_history_fits(PRODUCTION.history, 64)


def test_the_direct_path_writes_the_very_packet_python_socketio_would() -> None:
    """patches/managers.py builds broadcast frames itself: through the same JSON module, so
    both paths write UTF-8, and a RawJSON argument the same way."""
    manager = make_app("a-secret").sockets.sio.manager  # the server installs packet_json
    for event, argument in [("chat", {"text": "é " + EMOJI, "username": "zoë"}),
                            ("presence_state", packet_json.RawJSON.of({"version": 1, "people": [{"name": "漢", "tag": "t"}]}))]:
        direct = manager._encode_event(event, [argument], "/")  # noqa: SLF001 (the direct path's encoder)
        library = sio_packet.Packet(sio_packet.EVENT, data=[event, argument]).encode()
        assert direct == library and direct.isascii() is False, (direct, library)
