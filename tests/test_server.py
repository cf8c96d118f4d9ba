"""Binding and serving: the periodic expiry sweep, and a shutdown that closes every socket."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tornado.httpclient

from tests.support.attacked import AttackedServer, still_serves_a_person
from tests.support.attacks import close_all, closed_by_the_server, idle_connections, unfinished_body
from tests.support.clock import FakeClock
from tests.support.constants import TEST_SECRET
from tests.support.measure import bounded, raise_open_files_limit
from tests.support.processes import ServerProcess
from tests.support.socketio_client import SocketClient
from tests.support.waiting import eventually
from tests.support.web_user import WebUser
from tornado_app.app import make_app
from tornado_app.backend import Backend
from tornado_app.server import CannotBind, bind, serve, sweep_interval
from tornado_app.settings import Settings

# This module's fixtures that start processes: a test using one is marked `process`
# (tests/support/process_marker.py).
PROCESS_FIXTURES = {"limited_server"}

def test_sweep_interval_keeps_expiry_timely_but_not_busy() -> None:
    assert sweep_interval(1) == 1.0
    assert sweep_interval(60) == 15.0
    assert sweep_interval(1800) == 30.0


def test_bind_picks_a_free_port_and_reports_its_url() -> None:
    bound = bind("127.0.0.1", 0)
    try:
        assert bound.port > 0
        assert bound.url == f"http://127.0.0.1:{bound.port}/"
    finally:
        bound.close()


# Tornado's bind_sockets leaves the socket it failed to bind for the garbage collector.
leaks_a_socket_in_tornado = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@leaks_a_socket_in_tornado
def test_bind_to_a_taken_port_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CannotBind, match=f"port {port} on 127.0.0.1 is already in use"):
            bind("127.0.0.1", port)


@leaks_a_socket_in_tornado
def test_bind_to_an_address_we_do_not_have_is_a_clear_error() -> None:
    with pytest.raises(CannotBind, match=r"cannot listen on 192\.0\.2\.1:0"):
        bind("192.0.2.1", 0)  # TEST-NET-1: never one of this machine's addresses


@pytest.mark.gen_test(timeout=60)
async def test_serve_sweeps_expired_sessions_and_shutdown_closes_sockets(clock: FakeClock) -> None:
    settings = Settings(session_ttl=1)
    app = make_app(TEST_SECRET, settings=settings, backend=Backend.in_memory(settings, clock=clock))
    bound = bind("127.0.0.1", 0)
    stop = asyncio.Event()
    serving = asyncio.ensure_future(serve(app, bound, stop))
    http_client = tornado.httpclient.AsyncHTTPClient()
    base_url = bound.url.rstrip("/")

    idle_user = WebUser(http_client, base_url)
    await idle_user.login("idle")
    idle_socket = SocketClient(idle_user.cookie_header)
    await idle_socket.sio.connect(base_url, transports=["websocket"])
    clock.advance(5)
    await idle_socket.next("disconnect")  # the periodic sweep found it
    assert await app.backend.store.count() == 0

    user = WebUser(http_client, base_url)
    await user.login("ada")
    live_socket = SocketClient(user.cookie_header)
    await live_socket.sio.connect(base_url, transports=["websocket"])
    stop.set()
    await asyncio.wait_for(serving, 3)
    assert await live_socket.next("ended") == {"reason": "shutdown"}  # said, then closed
    await live_socket.next("disconnect")
    with socket.socket() as probe:  # the port is free again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", bound.port))
    for client in (idle_socket, live_socket):
        await client.close()
    http_client.close()


@pytest.mark.gen_test(timeout=60)
async def test_half_open_requests_are_dropped_after_the_header_and_body_timeouts(caplog: pytest.LogCaptureFixture) -> None:
    """Tornado's defaults wait an hour for a request's headers and body; ours wait seconds
    (0.5 s here), so connections that trickle or stall do not pile up. Bodies that miss it
    are said in one line per 10 s (Tornado's own timeout logged one per connection)."""
    app = make_app(TEST_SECRET, settings=Settings(header_timeout=0.5, body_timeout=0.5))
    bound = bind("127.0.0.1", 0)
    stop = asyncio.Event()
    serving = asyncio.ensure_future(serve(app, bound, stop))

    async def held_for(first_bytes: bytes) -> float:
        """Seconds until the server closes a connection that sent only `first_bytes`."""
        reader, writer = await asyncio.open_connection("127.0.0.1", bound.port)
        started = time.monotonic()
        writer.write(first_bytes)
        await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return time.monotonic() - started

    headers_begun = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    body_begun = b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nusername=a"
    caplog.set_level("INFO")
    for first_bytes in (headers_begun, body_begun):
        assert 0.4 < await held_for(first_bytes) < 2
    for held in await asyncio.gather(*(held_for(body_begun) for _ in range(5))):
        assert 0.4 < held < 2
    stop.set()
    await asyncio.wait_for(serving, 3)
    slow = [record.getMessage() for record in caplog.records if "body" in record.getMessage()]
    assert slow == ["closed connections whose request body did not arrive within 0.5 s: the latest from 127.0.0.1"], slow


# --- Attacks on a real server process (issue 14, items 3 and 4): what one client address can
# hold, request bodies, and the open-files limit. The attacker comes from 127.0.0.2, the
# bystander from 127.0.0.1: two client addresses on one machine. -------------------------

LIMITED_SERVER = ("import resource, runpy, sys; "
                  "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); "
                  "sys.argv = ['tornado_app', *sys.argv[3:]]; runpy.run_module('tornado_app', run_name='__main__', alter_sys=True)")


@pytest.fixture
def limited_server() -> Iterator[Callable[..., AttackedServer]]:
    started: list[ServerProcess] = []

    def start(soft: int, hard: int, *args: str) -> AttackedServer:
        # `python -m tornado_app` started with the open-files limit (soft, hard), as systemd
        # starts a service (1024 soft).
        server = ServerProcess("--port", "0", *args, program=(sys.executable, "-c", LIMITED_SERVER, str(soft), str(hard)))
        started.append(server)
        return AttackedServer(server)

    yield start
    for server in started:
        server.close()


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_unfinished_request_bodies_larger_than_their_route_takes_hold_no_memory(server_process: Any) -> None:
    """300 connections announce a 1 MiB POST (to /login and to the polling endpoint) and send
    256 KiB of it: each is answered 413 from its headers and nothing is buffered, the server
    logs one line, and a person logs in meanwhile. (Before: 1,000 of them took RSS from 50 to
    1,135 MiB in 2 s, and 357 MiB stayed after they left.)"""
    raise_open_files_limit(4096)
    attacked = AttackedServer(server_process("--port", "0", "--max-connections-per-ip", "1000"))

    async def scenario() -> None:
        await still_serves_a_person(attacked.url)  # warm up: templates, first login, first socket
        before = attacked.rss_mib()
        paths = ["/login", "/socket.io/?EIO=4&transport=polling&sid=x"]
        attack = asyncio.gather(*(unfinished_body(attacked.url, paths[i % 2], 1024 * 1024, 256 * 1024) for i in range(300)))
        peak, answers = await attacked.peak_rss_while(asyncio.gather(attack, still_serves_a_person(attacked.url)))
        statuses = [status for status, _ in answers[0]]
        assert statuses == [b"HTTP/1.1 413 Payload Too Large\r\n"] * 300
        assert peak - before < 16, f"RSS grew {peak - before:.1f} MiB"
        for _, writer in answers[0]:
            writer.transport.abort()

    asyncio.run(scenario())
    status, _, log = attacked.server.stop()
    assert status == 0 and "Traceback" not in log and "WARNING" not in log
    assert log.count("refused request bodies over their route's size") == 1, log[-2000:]


def test_a_login_form_is_capped_at_4_kib_and_a_polling_post_at_one_packet(server_process: Any) -> None:
    """Within 64 KiB a POST to /login is still refused (413) beyond 4 KiB: a form is a few
    hundred bytes; the polling endpoint takes a packet (64 KiB)."""
    attacked = AttackedServer(server_process("--port", "0"))

    async def scenario() -> None:
        status, writer = await unfinished_body(attacked.url, "/login", 5000, 0, source="127.0.0.1")
        writer.close()
        assert status == b"HTTP/1.1 413 Payload Too Large\r\n"
        status, writer = await unfinished_body(attacked.url, "/socket.io/?EIO=4&transport=polling&sid=x", 65536, 0, source="127.0.0.1")
        writer.close()
        assert status == b"", "a polling POST of one packet should be read, not refused"
        await still_serves_a_person(attacked.url)

    asyncio.run(scenario())


POLLING_POST = "/socket.io/?EIO=4&transport=polling&sid=x"


async def stalled_bodies(base: str, sources: list[str], count: int, announced: int = 65_000,
                         proxied_for: list[str] | None = None) -> list[tuple[bytes, asyncio.StreamWriter]]:
    """`count` connections, taking the `sources` in turn (or, through a proxy, the client
    addresses `proxied_for` in its X-Real-Ip), each sending all but the last byte of a polling
    POST of `announced` bytes and then stalling: (status line within 3 s, writer)."""

    def one(n: int) -> Any:
        headers = {"X-Real-Ip": proxied_for[n % len(proxied_for)]} if proxied_for else None
        return unfinished_body(base, POLLING_POST, announced, announced - 1, source=sources[n % len(sources)], headers=headers)

    return await bounded(count, 100, one)


def test_route_sized_bodies_from_several_addresses_are_bounded_server_wide_and_their_memory_given_back(server_process: Any) -> None:
    """Issue 21, item 13: 1,000 connections from 5 addresses each send 64,999 bytes of a
    65,000-byte polling POST (under the route's cap) and stall. Each address may have a
    sixteenth of --max-body-kib-in-flight (16 MiB) being received, 1 MiB: its first 16
    bodies are read, the rest answered 429 from their headers; a person is served meanwhile;
    RSS grows a little and is given back once they leave. (Before: 53 -> 144 MiB, and
    142 MiB still held after they closed.)"""
    raise_open_files_limit(4096)
    attacked = AttackedServer(server_process("--port", "0"))
    sources = [f"127.0.0.{n}" for n in range(2, 7)]

    async def scenario() -> None:
        await still_serves_a_person(attacked.url)  # warm up: templates, first login, first socket
        before = attacked.rss_mib()
        peak, (answers, _) = await attacked.peak_rss_while(
            asyncio.gather(stalled_bodies(attacked.url, sources, 1000), still_serves_a_person(attacked.url)))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [b""] * 80 + [b"HTTP/1.1 429 Too Many Requests\r\n"] * 920  # 16 per address are being read
        await still_serves_a_person(attacked.url)  # while the 80 still hold their places
        assert peak - before < 24, f"RSS grew {peak - before:.1f} MiB (before the budget: 91 MiB)"
        for _, writer in answers:
            writer.transport.abort()
        left_at = attacked.rss_mib()
        await eventually(lambda: attacked.rss_mib() - before < 8,
                         what=f"RSS back near {before:.0f} MiB after the attackers left (it was {left_at:.0f} as they left)")

    asyncio.run(scenario())
    status, _, log = attacked.server.stop()
    assert status == 0 and "Traceback" not in log and "WARNING" not in log
    assert log.count("refused request bodies over a client's share of --max-body-kib-in-flight (16384 KiB)") == 1, log[-2000:]


def test_past_the_servers_budget_new_bodies_are_refused_503_until_those_in_flight_end(server_process: Any) -> None:
    """With --max-body-kib-in-flight 512 (an address's share is then one 64 KiB packet), 12
    addresses each start 3 nearly whole polling POSTs of one packet and stall: 8 bodies (512 KiB) are being
    read, the other bodies of those 8 addresses get 429, every body of the 4 others 503, and
    so does a person's login form; once the attackers leave, the person logs in."""
    attacked = AttackedServer(server_process("--port", "0", "--max-body-kib-in-flight", "512"))
    sources = [f"127.0.0.{n}" for n in range(10, 22)]

    async def scenario() -> None:
        answers = await stalled_bodies(attacked.url, sources, 36, announced=65536)  # 8 fill it exactly
        statuses = sorted(status for status, _ in answers)
        assert statuses == ([b""] * 8 + [b"HTTP/1.1 429 Too Many Requests\r\n"] * 16
                            + [b"HTTP/1.1 503 Service Unavailable\r\n"] * 12), statuses
        status, writer = await unfinished_body(attacked.url, "/login", 100, 100, source="127.0.0.1")
        writer.close()
        assert status == b"HTTP/1.1 503 Service Unavailable\r\n"
        for _, writer in answers:
            writer.transport.abort()
        await eventually(still_serves_a_person_now(attacked.url), what="the person is served once the attackers left")

    asyncio.run(scenario())
    status, _, log = attacked.server.stop()
    assert status == 0 and "Traceback" not in log
    assert log.count("refused request bodies over --max-body-kib-in-flight (512 KiB): answered 503") == 1, log[-2000:]
    assert log.count("refused request bodies over a client's share of --max-body-kib-in-flight (512 KiB)") == 1, log[-2000:]


def test_behind_a_proxy_the_clients_of_one_ipv6_64_share_one_share_of_the_bodies(server_process: Any) -> None:
    """Behind --behind-proxy the budget counts the client in X-Real-Ip by its client key: 40
    stalled bodies from 40 addresses of one /64 get one share (1 MiB: 16 are read, 24 get
    429), and a client of another /64 is read meanwhile."""
    attacked = AttackedServer(server_process("--port", "0", "--behind-proxy"))
    one_64 = [f"2001:db8:5:6::{n:x}:1" for n in range(1, 41)]

    async def scenario() -> None:
        answers = await stalled_bodies(attacked.url, ["127.0.0.1"], 40, proxied_for=one_64)
        statuses = sorted(status for status, _ in answers)
        assert statuses == [b""] * 16 + [b"HTTP/1.1 429 Too Many Requests\r\n"] * 24
        [(status, writer)] = await stalled_bodies(attacked.url, ["127.0.0.1"], 1, proxied_for=["2001:db8:5:7::1"])
        assert status == b"", "a client of another /64 is read"
        for _, held in [*answers, (status, writer)]:
            held.transport.abort()

    asyncio.run(scenario())
    status, _, log = attacked.server.stop()
    assert status == 0 and "Traceback" not in log
    assert log.count("refused request bodies over a client's share of --max-body-kib-in-flight (16384 KiB): "
                     "answered 429, the latest from 2001:db8:5:6:") == 1, log[-2000:]


def still_serves_a_person_now(base: str) -> Callable[[], Any]:
    """A condition for `eventually`: a person logs in and connects right now."""

    async def served() -> bool:
        try:
            await still_serves_a_person(base)
        except (AssertionError, RuntimeError):
            return False
        return True

    return served


def test_one_address_holds_at_most_max_connections_per_ip_and_the_rest_are_closed_at_once(server_process: Any) -> None:
    """An address opening 150 connections against --max-connections-per-ip 50 keeps 50; the
    other 100 are closed as they are accepted, with one log line; another address is served."""
    raise_open_files_limit(4096)
    attacked = AttackedServer(server_process("--port", "0", "--max-connections-per-ip", "50"))

    async def scenario() -> None:
        connections = await idle_connections(attacked.url, 150)
        try:
            assert len(connections) == 150
            assert await closed_by_the_server(connections, within=2) == 100
            await still_serves_a_person(attacked.url)
        finally:
            close_all(connections)
        # Their places are given back: the address may connect again.
        await eventually(lambda: open_files(attacked.pid) < 50, what="the server closed the attacker's connections")
        again = await idle_connections(attacked.url, 50)
        try:
            assert await closed_by_the_server(again, within=1) == 0
        finally:
            close_all(again)

    asyncio.run(scenario())
    status, _, log = attacked.server.stop()
    assert status == 0 and "Traceback" not in log
    assert log.count("refused connections over --max-connections-per-ip (50)") == 1, log[-2000:]


@pytest.mark.heavy  # over 10 s: it waits out a timeout or a process; run by make test-heavy and CI
def test_behind_a_proxy_the_cap_counts_the_address_in_its_headers(server_process: Any) -> None:
    """Behind a proxy every connection comes from the proxy: the cap counts the client named
    in X-Forwarded-For; its fourth connection at a cap of 3 is answered 429, others are served."""
    attacked = AttackedServer(server_process("--port", "0", "--behind-proxy", "--max-connections-per-ip", "3"))

    async def scenario() -> None:
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        held = [await unfinished_body(attacked.url, "/login", 100, 10, source="127.0.0.1", headers=forwarded) for _ in range(3)]
        assert [status for status, _ in held] == [b""] * 3  # waiting for the rest of their bodies
        status, writer = await unfinished_body(attacked.url, "/login", 100, 10, source="127.0.0.1", headers=forwarded)
        writer.close()
        assert status == b"HTTP/1.1 429 Too Many Requests\r\n"
        await still_serves_a_person(attacked.url)  # from 127.0.0.1 itself, no header
        for _, writer in held:
            writer.close()

    asyncio.run(scenario())
    _status, _, log = attacked.server.stop()
    assert "Traceback" not in log
    assert log.count("refused connections over --max-connections-per-ip (3): answered 429, the latest for 203.0.113.7") == 1


def test_started_at_1024_open_files_the_server_raises_its_limit_and_holds_thousands_of_connections(limited_server: Any) -> None:
    """Started as systemd starts a service (1024 open files, hard limit 4096): 1,500 idle
    connections are all held, and a person still logs in and chats. (Before: at ~1,011
    sockets nobody else could load the login page, the server spun a core, and its log
    grew 148 MB in 20 s.)"""
    raise_open_files_limit(4096)
    attacked = limited_server(1024, 4096, "--max-connections-per-ip", "2000")

    async def scenario() -> None:
        connections = await idle_connections(attacked.url, 1500)
        try:
            assert len(connections) == 1500
            await eventually(lambda: open_files(attacked.pid) > 1500, what="the server holds every connection")
            assert await closed_by_the_server(connections, within=0.5) == 0
            await still_serves_a_person(attacked.url)
        finally:
            close_all(connections)

    asyncio.run(scenario())
    status, _, log = attacked.server.stop()
    assert status == 0 and "Traceback" not in log and "open files" not in log.lower()


@pytest.mark.heavy  # over 10 s: it waits out a timeout or a process; run by make test-heavy and CI
def test_out_of_file_descriptors_the_server_pauses_accepting_without_spinning_and_recovers(limited_server: Any) -> None:
    """With a hard limit of 256 that it cannot raise, 400 connections from one address (cap
    lifted) exhaust it: the server pauses accepting, logs it once (not a traceback per
    attempt), stays nearly idle, and serves a person as soon as they leave."""
    raise_open_files_limit(4096)
    attacked = limited_server(256, 256, "--max-connections-per-ip", "1000")

    async def scenario() -> None:
        connections = await idle_connections(attacked.url, 400)
        try:
            await eventually(lambda: "paused accepting connections" in attacked.server.log(), what="the pause is logged")
            busy = await attacked.becomes_idle(below_percent=20, window=2.0, within=10)
            assert busy[-1] < 20
        finally:
            close_all(connections)
        await eventually(lambda: open_files(attacked.pid) < 100, what="the attacker's connections are closed")
        await still_serves_a_person(attacked.url)

    asyncio.run(scenario())
    status, _, log = attacked.server.stop()
    assert status == 0 and "Traceback" not in log
    # One line per 10 s at most while it lasts (before: a traceback per attempt, 90,000 in 10 s).
    assert 1 <= log.count("paused accepting connections: out of file descriptors") <= 2, log[-3000:]
    assert "the open-files limit is 256" in log  # said once at start
