"""Per-client rates, attacked on a real server process: one address logging in or opening
sockets as fast as it can, one session flooding the chat. The limit holds for that client
only, across processes when they share Redis, and every refusal is said to the client and
counted in the log (one line, not one per refusal). A client is an IPv4 address or an IPv6
/64, whether it is the TCP peer or named by a proxy's X-Real-Ip (issue 21, item 4)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from deploy.app_process import AppDidNotStart
from deploy.services import AppProcess
from tests.support.app_env import app_env
from tests.support.forms import log_in
from tests.support.processes import ServerProcess
from tests.support.wire import Refused, WireSocket
from tornado_app.ratelimit import RateLimiter, Rates, parse_rate

# This module's fixtures that start processes: a test using one is marked `process`
# (tests/support/process_marker.py).
PROCESS_FIXTURES = {"apps", "proxied_apps", "server_on_ipv6_loopback"}

ATTACKER, BYSTANDER = "127.0.0.1", "127.0.0.2"  # two client addresses on one machine (Linux: all of 127/8)


def from_address(address: str) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, local_addr=(address, 0))
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


RATES = ("--login-rate", "6/minute", "--connect-rate", "6/minute", "--chat-rate", "5/10 seconds")


def stopped_logs(apps: list[AppProcess]) -> list[str]:
    """Stop each process and return its log, which holds no traceback."""
    logs = []
    for app in apps:
        app.stop()
        logs.append(app.log())
        assert "Traceback" not in logs[-1], logs[-1][-3000:]
    return logs


@pytest.fixture
def apps(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[AppProcess]]:
    """One process in memory mode, or two sharing Redis, with small rates."""
    env = app_env(request, request.param)
    started = [AppProcess(tmp_path / f"app{n}.log", "--log-level", "info", *RATES, env=env)
               for n in range(1 if request.param == "memory" else 2)]
    yield started
    for app in started:
        app.stop()


@pytest.fixture
def proxied_apps(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[AppProcess]]:
    """As `apps`, behind a proxy (--behind-proxy: the client is the X-Real-Ip the test sends),
    with a store of 20 sessions, so that logins past the rate would evict someone."""
    env = app_env(request, request.param)
    started = [AppProcess(tmp_path / f"app{n}.log", "--log-level", "info", "--behind-proxy", "--max-sessions", "20",
                          *RATES, env=env)
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
both_stores_behind_a_proxy = pytest.mark.parametrize("proxied_apps", ["memory", "redis"], indirect=True)


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
    logs = stopped_logs(apps)
    refusals = sum(log.count("refused logins over --login-rate") for log in logs)
    assert refusals == len(apps) or refusals == 1, [log[-1500:] for log in logs]  # one line per process at most


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
    for log in stopped_logs(apps):
        assert log.count("refused sockets over --connect-rate") == 1, log[-1500:]


@both_stores
def test_a_chat_flood_is_cut_at_the_rate_and_the_sender_is_told_each_time(apps: list[AppProcess]) -> None:
    """Before: one session sent 1,440 messages of 500 characters a second to everyone (0.75
    MB/s to each reader). Now a session's messages past --chat-rate (5 per 10 s here) are
    not sent, and each refused one is answered with a refusal that says so: nothing is lost
    silently."""

    async def scenario() -> None:
        async with from_address(ATTACKER) as attacker, from_address(BYSTANDER) as bystander:
            flooder = await WireSocket.connect(attacker, apps[0].url, await log_in(attacker, apps[0].url, "flood"), origin=apps[0].url)
            reader = await WireSocket.connect(bystander, apps[-1].url, await log_in(bystander, apps[-1].url, "reader"), origin=apps[-1].url)
            answers = await asyncio.gather(*[flooder.call("chat", {"text": f"spam {n} " + "x" * 480}) for n in range(30)])
            assert [answer["ok"] for answer in answers] == [True] * 5 + [False] * 25
            assert {(answer["reason"], answer["message"]) for answer in answers[5:]} == {
                ("rate", "slow down: too many messages (at most 5 per 10 second): this message was not sent")}
            # The server is fine: it answers, and the reader got exactly the first five.
            assert (await flooder.call("whoami"))["username"] == "flood"
            # Someone on the flooder's process speaks last: its process publishes in order, so
            # what the reader hears before it is everything the flood got through. (The reader
            # speaking on its own process raced the flood's way through Redis: seen once.)
            closer = await WireSocket.connect(bystander, apps[0].url, await log_in(bystander, apps[0].url, "closer"), origin=apps[0].url)
            await closer.emit("chat", {"text": "and now me"})
            received: list[str] = []
            while not received or received[-1] != "and now me":
                received.append((await reader.next("chat"))["text"])
            assert [text.split(" ", 2)[:2] for text in received[:-1]] == [["spam", str(n)] for n in range(5)]
            for socket in (flooder, reader, closer):
                await socket.close()

    asyncio.run(scenario())
    log = stopped_logs(apps)[0]
    assert log.count("refused chat messages over --chat-rate") == 1, log[-1500:]


def test_a_rate_is_a_count_per_period_or_off() -> None:
    assert str(parse_rate("30/minute")) == "30 per 1 minute"
    assert parse_rate("off") is None
    with pytest.raises(ValueError, match="is not a rate like 30/minute"):
        parse_rate("fast")


def test_logins_and_connects_count_by_client_key_and_chat_by_session() -> None:
    """One function keys every per-address rate: admission.client_key (IPv4, or the IPv6 /64)."""
    limiter = RateLimiter(Rates(login=parse_rate("2/minute"), connect=parse_rate("2/minute"), chat=parse_rate("2/minute")))

    async def hits(kind: str, who: list[str]) -> list[bool]:
        return [await limiter.allows(kind, one) for one in who]  # type: ignore[arg-type]  # each kind by name

    async def scenario() -> None:
        assert await hits("login", ["2001:db8::1", "2001:db8::2:3", "2001:db8::ffff", "2001:db8:0:1::1"]) == [True, True, False, True]
        assert await hits("connect", ["192.0.2.7", "::ffff:192.0.2.7", "192.0.2.7", "192.0.2.8"]) == [True, True, False, True]
        assert await hits("chat", ["2001:db8::1", "2001:db8::2", "2001:db8::3"]) == [True, True, True]  # session ids, as they are

    asyncio.run(scenario())


def test_the_rate_flags_have_defaults_and_refuse_nonsense(server_process: Any) -> None:
    with pytest.raises(AppDidNotStart) as refused:
        server_process("--port", "0", "--login-rate", "lots")
    assert refused.value.status == 2
    assert "argument --login-rate: 'lots' is not a rate like 30/minute" in refused.value.tail[-1]


# --- A client is an IPv4 address or an IPv6 /64 (issue 21, item 4). Before, the rates counted
# each IPv6 address: behind the proxy, 100 logins from 100 addresses of one /64 were all
# accepted, 200 connects too, and one /64 made 9,999 logins in 9.3 s, evicting a person. ----

ATTACKER_64 = "2001:db8:1:2::/64"  # documentation prefixes (RFC 3849, RFC 5737)
OTHER_64_CLIENT = "2001:db8:1:3::1"


def addresses_of(network: str, count: int) -> list[str]:
    """`count` different addresses of `network`, spread over its host bits."""
    base = ipaddress.ip_network(network)
    return [str(base[(n + 1) * 0x1_0001_0001]) for n in range(count)]


async def login_from(http: aiohttp.ClientSession, base: str, username: str, client_ip: str) -> tuple[int, str]:
    """The login form, sent as a proxy would pass it on for `client_ip`: (status, cookie)."""
    proxy = {"X-Real-Ip": client_ip}
    async with http.get(base + "/login", headers=proxy) as page:
        token = (await page.text()).split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
        xsrf = page.cookies["_xsrf"].value
    async with http.post(base + "/login", data={"_xsrf": token, "username": username},
                         headers={**proxy, "Cookie": f"_xsrf={xsrf}"}, allow_redirects=False) as answer:
        await answer.read()
        session = answer.cookies["session"].value if answer.status == 303 else ""
        return answer.status, f'_xsrf={xsrf}; session="{session}"'


async def logged_in(http: aiohttp.ClientSession, base: str, cookie: str) -> bool:
    async with http.get(base + "/api/session", headers={"Cookie": cookie}) as answer:
        return answer.status == 200


@both_stores_behind_a_proxy
def test_logins_from_many_addresses_of_one_ipv6_64_share_its_rate_and_evict_nobody(proxied_apps: list[AppProcess]) -> None:
    """60 logins, each from another address of one /64 (X-Real-Ip), spread over the
    processes: 6 (--login-rate) are accepted, 54 answered 429, so a person logged in from
    another /64 keeps their session in a store of 20, and logs in again meanwhile; an
    IPv4-mapped address counts as its IPv4 address. (Before: all 60 accepted, the person evicted.)"""
    apps = proxied_apps

    async def scenario() -> None:
        async with from_address(ATTACKER) as http:
            status, person = await login_from(http, apps[-1].url, "person", OTHER_64_CLIENT)
            assert status == 303
            attack = [await login_from(http, apps[n % len(apps)].url, f"bot{n}", ip)
                      for n, ip in enumerate(addresses_of(ATTACKER_64, 60))]
            assert [status for status, _ in attack] == [303] * 6 + [429] * 54
            assert await logged_in(http, apps[0].url, person), "the person's session was evicted"
            assert (await login_from(http, apps[0].url, "person again", "2001:db8:1:3:ffff::9"))[0] == 303
            # ::ffff:203.0.113.9 is 203.0.113.9: one client, whichever way the proxy writes it.
            mixed = [await login_from(http, apps[n % len(apps)].url, f"v4 {n}", "::ffff:203.0.113.9" if n % 2 else "203.0.113.9")
                     for n in range(8)]
            assert [status for status, _ in mixed] == [303] * 6 + [429] * 2

    asyncio.run(scenario())
    logs = stopped_logs(apps)
    refusals = sum(log.count("refused logins over --login-rate") for log in logs)
    assert 1 <= refusals <= len(apps), [log[-1500:] for log in logs]  # one line per process at most


@both_stores_behind_a_proxy
def test_socket_connects_from_many_addresses_of_one_ipv6_64_share_its_rate(proxied_apps: list[AppProcess]) -> None:
    """Connects from 6 addresses of one /64 use its --connect-rate (6 a minute here): the
    next ones, from yet other addresses of it, are refused "slow down" on every process; a
    client of another /64 connects. (Before: 200 connects from 200 addresses all accepted.)"""
    apps = proxied_apps

    async def scenario() -> None:
        async with from_address(ATTACKER) as http:
            addresses = addresses_of(ATTACKER_64, 6 + len(apps))
            status, cookie = await login_from(http, apps[0].url, "ada", addresses[0])
            assert status == 303
            opened = []
            for n, ip in enumerate(addresses[:6]):
                base = apps[n % len(apps)].url
                opened.append(await WireSocket.connect(http, base, cookie, origin=base, headers={"X-Real-Ip": ip}))
            for app, ip in zip(apps, addresses[6:], strict=True):
                with pytest.raises(Refused, match="slow down: too many connections from your address"):
                    await WireSocket.connect(http, app.url, cookie, origin=app.url, headers={"X-Real-Ip": ip})
            status, other = await login_from(http, apps[-1].url, "grace", OTHER_64_CLIENT)
            person = await WireSocket.connect(http, apps[-1].url, other, origin=apps[-1].url, headers={"X-Real-Ip": OTHER_64_CLIENT})
            assert (await person.call("whoami"))["username"] == "grace"
            for opened_socket in [*opened, person]:
                await opened_socket.close()

    asyncio.run(scenario())
    for log in stopped_logs(apps):
        assert log.count("refused sockets over --connect-rate") == 1, log[-1500:]


def ipv6_loopback_unavailable() -> str | None:
    """Why a server cannot listen on ::1 here (no IPv6 loopback), or None."""
    if not socket.has_ipv6:
        return "Python was built without IPv6"
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError as error:
        return f"cannot bind [::1]: {error.strerror}"
    return None


def other_local_ipv6() -> str | None:
    """A global IPv6 address of this machine (Linux: /proc/net/if_inet6), outside ::/64, that
    can connect to ::1 as a second bare IPv6 client; None if there is none."""
    try:
        rows = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return None
    for row in rows:
        fields = row.split()
        if len(fields) == 6 and fields[3] == "00":  # scope: global
            return str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))
    return None


@pytest.fixture
def server_on_ipv6_loopback(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    if (reason := ipv6_loopback_unavailable()) is not None:
        pytest.skip(f"no IPv6 loopback to attack from: {reason}")
    env = app_env(request, request.param)
    server = ServerProcess("--address", "::1", "--port", "0", "--log-level", "info", *RATES, env=env)
    yield server
    server.close()


@pytest.mark.parametrize("server_on_ipv6_loopback", ["memory", "redis"], indirect=True)
def test_a_bare_ipv6_peer_is_cut_at_the_rate(server_on_ipv6_loopback: ServerProcess) -> None:
    """No proxy: the server listens on [::1] and its TCP peers are IPv6 addresses. Logins and
    connects from ::1 are cut at the rates (its key is ::/64); another global IPv6 address of
    this machine, if it has one, is another /64 and is served meanwhile."""
    server = server_on_ipv6_loopback
    base = server.url.rstrip("/")
    assert base.startswith("http://[::1]:"), server.first_line

    async def scenario() -> None:
        async with from_address("::1") as attacker:
            cookie = await log_in(attacker, base, "ada")  # the first of its 6 logins of the minute
            answers = [await login_status(attacker, base, f"bot{n}") for n in range(7)]
            assert [status for status, *_ in answers] == [303] * 5 + [429] * 2
            opened = [await WireSocket.connect(attacker, base, cookie, origin=base) for _ in range(6)]
            with pytest.raises(Refused, match="slow down: too many connections from your address"):
                await WireSocket.connect(attacker, base, cookie, origin=base)
            if (other := other_local_ipv6()) is not None:
                async with from_address(other) as bystander:
                    assert (await login_status(bystander, base, "person"))[0] == 303
            for opened_socket in opened:
                await opened_socket.close()

    asyncio.run(scenario())
    status, _, log = server.stop()
    assert status == 0 and "Traceback" not in log
    assert log.count("refused logins over --login-rate: the latest from ::1") == 1, log[-1500:]
    assert log.count("refused sockets over --connect-rate: the latest from ::1") == 1, log[-1500:]
