"""One home for the limits (tornado_app/settings.py), safe by default (issue 24, item 4).

An app built with no settings, on a backend built with none (`make_app(secret)`,
`Backend.in_memory()`, `Backend.redis(url)`), applies the production caps and rates: attacked
here on a real in-process server from one address. (Before, those calls applied no socket cap
and no rate at all: only the command line and the launcher passed their defaults.) The
command line builds the same settings from its flags, one field per flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

import aiohttp
import pytest

from tests.support.forms import log_in
from tests.support.protocol import SOCKETIO_POLLING
from tests.support.wire import Refused, WireSocket
from tornado_app.app import TornadoApp, make_app
from tornado_app.backend import Backend
from tornado_app.cli import DRAIN_SECONDS_ENV, build_parser, settings_from_args
from tornado_app.reasons import SLOW_DOWN, TOO_MANY_CONNECTS, TOO_MANY_SOCKETS
from tornado_app.server import bind, serve
from tornado_app.settings import PRODUCTION, Settings

from .support.constants import TEST_SECRET
from .test_ratelimit import login_status

HANDSHAKES_AT_ONCE = 25
MOST_HANDSHAKES = 2000  # sessions that never poll end after 5 s: a slow machine just needs more


@contextlib.asynccontextmanager
async def served(app: TornadoApp) -> AsyncIterator[str]:
    """`app` served as `serve` serves it with no arguments but the port; its base URL."""
    bound = bind("127.0.0.1", 0)
    stop = asyncio.Event()
    serving = asyncio.ensure_future(serve(app, bound, stop))
    try:
        yield bound.url.rstrip("/")
    finally:
        stop.set()
        await asyncio.wait_for(serving, 10)


def plain_session(connections: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), cookie_jar=aiohttp.DummyCookieJar())


# `limits`, which counts the rates, has no way to close its Redis connection: a server
# process holds it until it exits, and the Redis backends built here are held as long, so
# that the connection is not collected (and warned of) during another test.
HELD_TILL_EXIT: list[Backend] = []


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.process)])
def backend_of_no_settings(request: pytest.FixtureRequest) -> Backend:
    """A backend built with no settings, in each store."""
    if request.param == "memory":
        return Backend.in_memory()
    HELD_TILL_EXIT.append(Backend.redis(request.getfixturevalue("redis_url")))
    return HELD_TILL_EXIT[-1]


@pytest.mark.gen_test(timeout=120)
async def test_an_app_of_no_settings_caps_the_engineio_sessions_of_one_address(caplog: pytest.LogCaptureFixture) -> None:
    """Polling handshakes that never poll, from one address, as fast as it can: past 200 open
    (--max-sockets-per-ip's default) each is refused with 401. Before: none ever was."""
    caplog.set_level(logging.INFO)
    cap = PRODUCTION.max_sockets_per_ip
    assert cap is not None
    app = make_app(TEST_SECRET)
    async with served(app) as base, plain_session(HANDSHAKES_AT_ONCE) as http:

        async def handshake() -> tuple[int, str]:
            async with http.get(base + SOCKETIO_POLLING) as response:
                return response.status, await response.text()

        answers: list[tuple[int, str]] = []
        while len(answers) < MOST_HANDSHAKES and all(status == 200 for status, _ in answers):
            answers += await asyncio.gather(*(handshake() for _ in range(HANDSHAKES_AT_ONCE)))
        refused = [(status, text) for status, text in answers if status != 200]
        assert refused, f"{len(answers)} handshakes from one address, none refused"
        assert all(status == 401 and TOO_MANY_SOCKETS in text for status, text in refused), refused[:3]
        assert len(answers) - len(refused) >= cap  # no refusal below the cap
    assert f"refused Engine.IO sessions over --max-sockets-per-ip: answered 401 ({cap} open)" in caplog.text


@pytest.mark.gen_test(timeout=120)
async def test_an_app_on_a_backend_of_no_settings_limits_logins_connects_and_chat(backend_of_no_settings: Backend) -> None:
    """From one address: the 31st login in a minute is answered 429, a session's 21st chat
    message in 10 s is not sent, and the 121st socket connect in a minute is refused with
    'slow down' (the default --login-rate, --chat-rate and --connect-rate), in memory and in
    Redis. Before: a backend built with no settings counted nothing."""
    app = make_app(TEST_SECRET, backend=backend_of_no_settings)
    async with served(app) as base, plain_session() as http:
        cookie = await log_in(http, base, "ada")
        logins = [await login_status(http, base, f"person{n}") for n in range(30)]
        assert [status for status, *_ in logins] == [303] * 29 + [429], [status for status, *_ in logins]
        assert "Too many logins from your address (at most 30 per 1 minute)" in logins[-1][1]

        ada = await WireSocket.connect(http, base, cookie, origin=base)
        answers = [await ada.call("chat", {"text": f"message {n}"}) for n in range(21)]
        assert [answer["ok"] for answer in answers] == [True] * 20 + [False], answers[-2:]
        assert answers[-1]["message"].startswith(f"{SLOW_DOWN} (at most 20 per 10 second)"), answers[-1]
        await ada.close()
        for _ in range(119):  # 120 connects in all, each closed again
            socket = await WireSocket.connect(http, base, cookie, origin=base)
            await socket.close()
        with pytest.raises(Refused, match=TOO_MANY_CONNECTS):
            await WireSocket.connect(http, base, cookie, origin=base)


@pytest.mark.gen_test(timeout=60)
async def test_serve_with_no_settings_caps_the_connections_of_one_address() -> None:
    """200 connections from one address are served (--max-connections-per-ip's default); the
    201st is closed at once. (serve applied this default before too: it stays.)"""
    app = make_app(TEST_SECRET)
    async with served(app) as base:
        port = int(base.rsplit(":", 1)[1])
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(PRODUCTION.max_connections_per_ip)]
        try:
            for reader, writer in held:  # each one served: the server counts them all
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200"), "a held connection was not served"
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed at once, before a word
            writer.close()
        finally:
            for _, writer in held:
                writer.close()


# --- The settings themselves. -------------------------------------------------------------


def test_the_command_line_with_no_flags_builds_the_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DRAIN_SECONDS_ENV, raising=False)  # the tests' conftest sets it
    assert settings_from_args(build_parser().parse_args([])) == PRODUCTION


# A value other than the default for each field that has a flag of its name.
FLAG_VALUES: dict[str, Any] = {
    "max_connections_per_ip": 7, "max_sockets_per_ip": 8, "max_sessions": 9, "history": 10, "max_unsent_kib": 128,
    "max_body_kib_in_flight": 512, "login_rate": "3/minute", "connect_rate": "off", "chat_rate": "5/10 seconds",
    "session_ttl": 60, "ping_interval": 3, "ping_timeout": 2, "connect_timeout": 1.5, "first_poll_timeout": 2.5,
    "drain_seconds": 0.0,
}


@pytest.mark.parametrize("name", sorted(FLAG_VALUES))
def test_each_flag_sets_the_field_of_its_name(name: str) -> None:
    value = FLAG_VALUES[name]
    assert getattr(PRODUCTION, name) != value
    args = build_parser().parse_args(["--" + name.replace("_", "-"), str(value)])
    assert getattr(settings_from_args(args), name) == value


def test_every_field_but_the_request_timeouts_has_a_flag() -> None:
    """A new field without a flag would keep its default on the command line unnoticed."""
    flags = set(vars(build_parser().parse_args([])))
    assert {field.name for field in fields(Settings)} - flags == {"header_timeout", "body_timeout"}
    assert set(FLAG_VALUES) == {field.name for field in fields(Settings)} & flags


def test_lifted_lifts_the_per_address_caps_and_the_rates_only() -> None:
    lifted = Settings.lifted(session_ttl=60)
    changed = {field.name for field in fields(Settings) if getattr(lifted, field.name) != getattr(PRODUCTION, field.name)}
    assert changed == {"max_connections_per_ip", "max_sockets_per_ip", "login_rate", "connect_rate", "chat_rate", "session_ttl"}
    assert (lifted.max_sockets_per_ip, lifted.login_rate, lifted.connect_rate, lifted.chat_rate) == (None, "off", "off", "off")


def test_a_rate_that_is_not_one_is_refused_when_the_backend_is_built() -> None:
    with pytest.raises(ValueError, match="'lots' is not a rate like 30/minute"):
        Backend.in_memory(Settings(login_rate="lots"))
