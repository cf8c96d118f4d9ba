"""Staying up under load: thousands of sockets held, thousands of cycles with nothing left
behind, and a flood of logins against a small store.

These are the `heavy` tests (`make test-heavy`, run by CI after `make test`). Every loop is
bounded in count and time and targets only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Iterator

import pytest
from engineio.async_socket import AsyncSocket
from tornado.web import RequestHandler

from tests.support.constants import TEST_SECRET
from tests.support.forms import http_session, log_in, log_out
from tests.support.hostile import ATTACKS, ServerUnderAttack, attack
from tests.support.matching import found
from tests.support.measure import bounded, raise_open_files_limit, rss_kib
from tests.support.processes import ServerProcess
from tests.support.waiting import GENEROUS_SECONDS, eventually
from tests.support.wire import WireSocket
from tornado_app.app import TornadoApp, make_app
from tornado_app.backend import Backend
from tornado_app.sessions import MemorySessionStore, Session
from tornado_app.settings import Settings

# This module's fixtures that start processes: a test using one is marked `process`
# (tests/support/process_marker.py).
PROCESS_FIXTURES = {"busy_server"}

pytestmark = pytest.mark.heavy

HELD_SOCKETS = 10_000  # past the 1,024 open files a process starts with under systemd
CYCLES = 5000
FLOOD_LOGINS = 50_000
FLOOD_STORE = 1000
IN_FLIGHT = 20  # logins the flood keeps in flight at once


@pytest.fixture
def busy_server() -> Iterator[ServerProcess]:
    """The plain server in its own process, allowed enough open files for the crowd."""
    raise_open_files_limit(HELD_SOCKETS + 500)  # the child inherits the limit; each holds its own side
    # The crowd all comes from 127.0.0.1: the per-address caps and rates are lifted (they are
    # attacked on their own in test_server.py, patches/test_engineio_server.py and test_ratelimit.py).
    server = ServerProcess("--port", "0", "--log-level", "warning", "--max-sessions", str(FLOOD_STORE),
                           "--max-connections-per-ip", "100000", "--max-sockets-per-ip", "100000",
                           "--login-rate", "off", "--connect-rate", "off", "--chat-rate", "off")
    assert server.url
    yield server
    server.close()


def test_10000_sockets_are_held_each_receives_a_broadcast_and_http_still_answers(busy_server: ServerProcess) -> None:
    """10,000 sockets in one process (its open-files limit raised at start): each gets a
    broadcast, HTTP keeps answering, and an idle socket costs the server under 38 KiB (31.5
    measured: its queues hold no empty deque, and what only its handshake needed is let go of
    once it is connected; 42 before)."""
    base = busy_server.url.rstrip("/")

    async def scenario() -> None:
        async with http_session() as http:
            cookies = await bounded(100, 10, lambda i: log_in(http, base, f"crowd{i}"))
            rss_before = rss_kib(busy_server.process.pid)
            started = time.monotonic()
            sockets = await bounded(HELD_SOCKETS, 50, lambda i: WireSocket.connect(http, base, cookies[i % 100], origin=base))
            connect_seconds = time.monotonic() - started
            await asyncio.sleep(1)  # the presence batches of the arrivals are out
            per_socket_kib = (rss_kib(busy_server.process.pid) - rss_before) / HELD_SOCKETS

            # HTTP keeps answering while they are open and a broadcast is under way.
            await sockets[0].emit("chat", {"text": "to all of them"})
            async with http.get(base + "/api/session", headers={"Cookie": cookies[1]}) as api:
                assert api.status == 200 and (await api.json())["username"] == "crowd1"
            for index, socket in enumerate(sockets):
                try:
                    while (await socket.next("chat", timeout=30))["text"] != "to all of them":
                        pass
                except TimeoutError:
                    raise AssertionError(f"held socket {index} had no broadcast after 30 s (closed: "
                                         f"{socket.closed.is_set()}, {socket.close_reason!r}; pongs: {socket.pongs})") from None
            assert all(not socket.closed.is_set() for socket in sockets), "a held socket was dropped"
            await asyncio.gather(*(socket.close() for socket in sockets))
            print(f"{HELD_SOCKETS} sockets connected in {connect_seconds:.1f} s, {per_socket_kib:.1f} KiB each")
            assert per_socket_kib < 38, f"{per_socket_kib:.1f} KiB per idle socket (it was about 31.5)"

    asyncio.run(asyncio.wait_for(scenario(), 180))
    # The server may still be working through the 10,000 sockets that just closed (seconds on
    # a busy 2-core machine): this test asks for a clean stop, not a quick one.
    status, _, log = busy_server.stop(timeout=2 * GENEROUS_SECONDS)
    assert status == 0 and "Traceback" not in log


def test_a_flood_of_50000_logins_keeps_the_store_at_its_bound(busy_server: ServerProcess) -> None:
    base = busy_server.url.rstrip("/")
    pid = busy_server.process.pid

    async def scenario() -> None:
        async with http_session() as http:
            async with http.get(base + "/login") as page:
                xsrf_cookie = page.cookies["_xsrf"].value
                token = found(r'name="_xsrf" value="([^"]+)"', await page.text()).group(1)

            async def login(number: int) -> str:
                async with http.post(
                    base + "/login", data={"_xsrf": token, "username": f"flood{number}"},
                    headers={"Cookie": f"_xsrf={xsrf_cookie}"}, allow_redirects=False,
                ) as response:
                    assert response.status == 303
                    return response.cookies["session"].value

            async def works(session_cookie: str) -> bool:
                async with http.get(base + "/api/session", headers={"Cookie": f'session="{session_cookie}"'}) as api:
                    return api.status == 200

            await bounded(2 * FLOOD_STORE, IN_FLIGHT, login)  # fill the store, warm the allocator
            rss_full = rss_kib(pid)
            started = time.monotonic()
            cookies = await bounded(FLOOD_LOGINS, IN_FLIGHT, login)
            elapsed = time.monotonic() - started
            rss_after = rss_kib(pid)

            # With 20 logins in flight, the order in which sessions were made is known to within
            # 20 places: a login near the store's edge may have finished after a later one (seen
            # once with one core kept busy). Only the logins clear of that edge are certain.
            newest = await bounded(FLOOD_STORE - IN_FLIGHT, IN_FLIGHT, lambda i: works(cookies[-1 - i]))
            evicted = await bounded(200, IN_FLIGHT, lambda i: works(cookies[-FLOOD_STORE - IN_FLIGHT - 1 - i]))
            assert all(newest), "the newest users must still be logged in"
            assert not any(evicted), "the store holds more than its bound"
            socket = await WireSocket.connect(http, base, f'session="{cookies[-1]}"', origin=base)
            assert await socket.call("whoami") == {"username": f"flood{FLOOD_LOGINS - 1}", "logged_in_at": pytest.approx(time.time(), abs=120)}
            await socket.close()
            assert rss_after - rss_full < 8 * 1024, f"memory grew {rss_after - rss_full} KiB over the flood"
            print(f"{FLOOD_LOGINS} logins in {elapsed:.1f} s; RSS {rss_full} -> {rss_after} KiB")

    asyncio.run(asyncio.wait_for(scenario(), 240))


@pytest.fixture
def app(clock) -> TornadoApp:
    """A store far larger than the cycles, so nothing is evicted: what remains was leaked.

    engineio's default ping interval (25 s): a closed socket's pending ping used to keep it
    alive that long; now it must be freed at once (patches/engineio_server.py).
    """
    settings = Settings.lifted(session_ttl=3600, max_sessions=100_000)  # 5000 connects and logins from one address
    return make_app(TEST_SECRET, settings=settings, backend=Backend.in_memory(settings, clock=clock))


def live_objects() -> dict[str, int]:
    """The server's per-connection objects still alive in this process."""
    alive = {"request handlers": 0, "engineio sockets": 0, "sessions": 0}
    for thing in gc.get_objects():
        if isinstance(thing, RequestHandler):
            alive["request handlers"] += 1
        elif isinstance(thing, AsyncSocket):
            alive["engineio sockets"] += 1
        elif isinstance(thing, Session):
            alive["sessions"] += 1
    return alive


def indexes(app: TornadoApp) -> dict[str, int]:
    sio = app.sockets.sio
    assert isinstance(app.backend.store, MemorySessionStore)
    return {
        "sessions in the store": len(app.backend.store._sessions),  # noqa: SLF001 (what a leak would grow)
        "sockets in the registry": len(app.sockets.registry),
        "engineio sockets": len(sio.eio.sockets),
        "socketio environs": len(sio.environ),
        "rooms": sum(len(rooms) for rooms in sio.manager.rooms.values()),
    }


@pytest.mark.gen_test(timeout=240)
async def test_5000_connects_and_5000_logins_leave_nothing_behind(app: TornadoApp, http_server, base_url: str) -> None:
    async with http_session() as http:
        async def login_logout(number: int) -> None:
            cookie = await log_in(http, base_url, f"cycle{number}")
            assert await log_out(http, base_url, cookie) == 303

        async def connect_disconnect(number: int) -> None:
            socket = await WireSocket.connect(http, base_url, cookies[number % len(cookies)], origin=base_url)
            await socket.close()

        cookies = [await log_in(http, base_url, f"user{number}") for number in range(20)]
        await bounded(1500, 20, connect_disconnect)  # warm-up: caches, pools, allocator arenas
        await bounded(1000, 20, login_logout)
        await asyncio.sleep(0.5)
        gc.collect()
        rss_before = rss_kib(os.getpid())

        await bounded(CYCLES, 20, connect_disconnect)
        await bounded(CYCLES, 20, login_logout)

        def freed() -> bool:
            """at most the one engineio socket its service task holds is alive"""
            gc.collect()
            return live_objects()["engineio sockets"] <= 1

        # Well under a ping interval (25 s): nothing may wait for a ping timer.
        await eventually(freed, within=10)
        rss_after = rss_kib(os.getpid())

    assert indexes(app) == {"sessions in the store": 20, "sockets in the registry": 0, "engineio sockets": 0, "socketio environs": 0, "rooms": 0}
    assert app.sockets.registry.is_empty()
    alive = live_objects()
    assert alive["sessions"] == 20, alive
    # engineio's service task keeps the last socket it checked in a local variable until its
    # next round: one, never more.
    assert alive["engineio sockets"] <= 1, alive
    assert alive["request handlers"] <= 25, alive  # at most one per open keep-alive connection
    # This process holds the client too; 10,000 cycles may not grow it by more than 8 MiB
    # (a leak of 1 KiB a cycle would be 10 MiB).
    assert rss_after - rss_before < 8 * 1024, f"RSS grew {rss_after - rss_before} KiB"


# The hostile mix: every attack of bench/hostile.py at once against one server, for 30 s.
HOSTILE_SECONDS = 30
HOSTILE_MIX_RSS_GROWTH_MIB = 48  # stated in docs/security.md (measured: about +27 MiB)
# A person still gets through under every attack at once. (Measured 53-78 ms on 2026-11-26's
# VM; 170-275 ms on 2026-12-02's, for the code of both days alike in one sitting, and 640 ms
# once in a CI run where the whole suite took twice its usual time: the bound leaves the
# margin of a shared, noisy 2-core machine.)
PERSON_P99_MS = 1000


@pytest.mark.process
def test_a_hostile_mix_for_30_s_keeps_memory_bounded_a_person_served_and_ends_idle(tmp_path) -> None:
    """A frame flood, 50 slow readers under a chat of up to 500 short messages/s,
    20 giant frames at a time and oversized polling POSTs, all at once and without pause:
    memory stays within docs/security.md's bound, a person's login, connect and chat stay under
    1 s at the 99th percentile, and the server is idle once the attackers have left."""
    raise_open_files_limit(4096)
    server = ServerUnderAttack(tmp_path / "server.log")
    try:
        result = asyncio.run(attack(server, list(ATTACKS), HOSTILE_SECONDS))
    finally:
        status = server.stop()
    log = (tmp_path / "server.log").read_text()
    print(result)
    assert status == 0
    assert not result.get("attacker_errors"), result["attacker_errors"]
    growth = result["rss_peak_mib"] - result["rss_before_mib"]
    assert growth < HOSTILE_MIX_RSS_GROWTH_MIB, f"RSS grew {growth:.1f} MiB: {result}"
    assert result["user_failure_count"] == 0, result["user_failures"]
    assert result["user_rounds"] >= HOSTILE_SECONDS  # about one login-connect-chat every 0.25 s
    for step in ("login", "connect", "chat"):
        assert result[f"{step}_p99_ms"] < PERSON_P99_MS, result
    assert result["cpu_after_leaving_percent"] < 5, result
    assert "Traceback" not in log and " ERROR " not in log and " WARNING " not in log
