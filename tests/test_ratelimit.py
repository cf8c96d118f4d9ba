"""Per-client rates, attacked on a real server process: one address logging in or opening
sockets as fast as it can, one session flooding the chat. The limit holds for that client
only, across processes when they share Redis, and every refusal is said to the client and
counted in the log (one line, not one per refusal)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from deploy.services import AppProcess
from tests.support.forms import log_in
from tests.support.wire import Refused, WireSocket
from tornado_app.ratelimit import parse_rate

SECRET = "a-secret-shared-by-every-process"
ATTACKER, BYSTANDER = "127.0.0.1", "127.0.0.2"  # two client addresses on one machine (Linux: all of 127/8)


def from_address(address: str) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, local_addr=(address, 0))
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


@pytest.fixture
def apps(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[AppProcess]]:
    """One process in memory mode, or two sharing Redis, with small rates."""
    env = {"TORNADO_APP_COOKIE_SECRET": SECRET}
    if request.param == "redis":
        env["TORNADO_APP_REDIS_URL"] = request.getfixturevalue("redis_url")
    rates = ["--login-rate", "6/minute", "--connect-rate", "6/minute", "--chat-rate", "5/10 seconds"]
    started = [AppProcess(tmp_path / f"app{n}.log", "--log-level", "info", *rates, env=env)
               for n in range(1 if request.param == "memory" else 2)]
    yield started
    for app in started:
        app.stop()


async def login_status(http: aiohttp.ClientSession, base: str, username: str) -> tuple[int, str, str | None]:
    try:
        await log_in(http, base, username)
        return 303, "", None
    except RuntimeError:
        pass
    async with http.get(base + "/login") as page:  # the refused POST again, to read its answer
        token = (await page.text()).split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
        xsrf = page.cookies["_xsrf"].value
    async with http.post(base + "/login", data={"_xsrf": token, "username": username},
                         headers={"Cookie": f"_xsrf={xsrf}"}, allow_redirects=False) as answer:
        return answer.status, await answer.text(), answer.headers.get("Retry-After")


both_stores = pytest.mark.parametrize("apps", ["memory", "redis"], indirect=True)


@both_stores
def test_logins_past_the_rate_get_429_for_that_address_only_across_processes(apps: list[AppProcess]) -> None:
    """Before: 2,372 logins a second from one client evicted every session of a full store
    in 4.3 s. Now an address gets --login-rate (6 a minute here), counted over every process."""

    async def scenario() -> None:
        async with from_address(ATTACKER) as attacker, from_address(BYSTANDER) as bystander:
            answers = [await login_status(attacker, apps[n % len(apps)].url, f"bot{n}") for n in range(9)]
            assert [status for status, *_ in answers] == [303] * 6 + [429] * 3
            _, page, retry_after = answers[-1]
            assert "Too many logins from your address (at most 6 per 1 minute)" in page and retry_after == "60"
            assert (await login_status(bystander, apps[-1].url, "person"))[0] == 303

    asyncio.run(scenario())
    for app in apps:
        app.stop()
        assert "Traceback" not in app.log()
    refusals = sum(app.log().count("refused logins over --login-rate") for app in apps)
    assert refusals == len(apps) or refusals == 1, [app.log()[-1500:] for app in apps]  # one line per process at most


@both_stores
def test_socket_connects_past_the_rate_are_refused_with_slow_down_for_that_address_only(apps: list[AppProcess]) -> None:
    async def scenario() -> None:
        async with from_address(ATTACKER) as attacker, from_address(BYSTANDER) as bystander:
            cookie = await log_in(attacker, apps[0].url, "ada")
            opened = []
            for n in range(6):
                base = apps[n % len(apps)].url
                opened.append(await WireSocket.connect(attacker, base, cookie, origin=base))
            for app in apps:
                with pytest.raises(Refused, match="slow down: too many connections from your address"):
                    await WireSocket.connect(attacker, app.url, cookie, origin=app.url)
            person = await WireSocket.connect(bystander, apps[-1].url, await log_in(bystander, apps[-1].url, "grace"), origin=apps[-1].url)
            assert (await person.call("whoami"))["username"] == "grace"
            for socket in [*opened, person]:
                await socket.close()

    asyncio.run(scenario())
    for app in apps:
        app.stop()
        assert "Traceback" not in app.log()
        assert app.log().count("refused sockets over --connect-rate") == 1, app.log()[-1500:]


@both_stores
def test_a_chat_flood_is_cut_at_the_rate_and_the_sender_is_told_each_time(apps: list[AppProcess]) -> None:
    """Before: one session sent 1,440 messages of 500 characters a second to everyone (0.75
    MB/s to each reader). Now a session's messages past --chat-rate (5 per 10 s here) are
    not sent, and each refused one is answered with an `error` that says so: nothing is lost
    silently."""

    async def scenario() -> None:
        async with from_address(ATTACKER) as attacker, from_address(BYSTANDER) as bystander:
            flooder = await WireSocket.connect(attacker, apps[0].url, await log_in(attacker, apps[0].url, "flood"), origin=apps[0].url)
            reader = await WireSocket.connect(bystander, apps[-1].url, await log_in(bystander, apps[-1].url, "reader"), origin=apps[-1].url)
            for n in range(30):
                await flooder.emit("chat", {"text": f"spam {n} " + "x" * 480})
            errors = [await flooder.next("error") for _ in range(25)]
            assert {error["message"] for error in errors} == {
                "slow down: too many messages (at most 5 per 10 second): this message was not sent"}
            # The server is fine: it answers, and the reader got exactly the first five.
            assert (await flooder.call("whoami"))["username"] == "flood"
            await reader.emit("chat", {"text": "and now me"})
            received = []
            while not received or received[-1] != "and now me":
                received.append((await reader.next("chat"))["text"])
            assert [text.split(" ", 2)[:2] for text in received[:-1]] == [["spam", str(n)] for n in range(5)]
            await flooder.close()
            await reader.close()

    asyncio.run(scenario())
    for app in apps:
        app.stop()
        assert "Traceback" not in app.log()
    assert apps[0].log().count("refused chat messages over --chat-rate") == 1, apps[0].log()[-1500:]


def test_a_rate_is_a_count_per_period_or_off() -> None:
    assert str(parse_rate("30/minute")) == "30 per 1 minute"
    assert parse_rate("off") is None
    with pytest.raises(ValueError, match="is not a rate like 30/minute"):
        parse_rate("fast")


def test_the_rate_flags_have_defaults_and_refuse_nonsense(server_process: Any) -> None:
    bad = server_process("--port", "0", "--login-rate", "lots")
    assert bad.process.wait(10) == 2
    assert "argument --login-rate: 'lots' is not a rate like 30/minute" in bad.log()
