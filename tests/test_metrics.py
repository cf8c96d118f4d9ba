"""Prometheus metrics (--metrics-address, issue 23 item 2) scraped from a real server process,
in both stores: the values move with real logins, connects, refusals, chats and logouts; no
label names a person; the listener is its own (no Host check, not on the app's port), stops
with the server, and is not there at all without the flag."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.services import ROOT, AppProcess, free_port
from tests.support.app_env import app_env
from tests.support.forms import log_in, log_out
from tests.support.processes import socket_inodes_of
from tests.support.waiting import eventually
from tests.support.wire import Refused, WireSocket

pytestmark = pytest.mark.process  # every test here starts an app, redis-server or nginx

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int, host: str = "127.0.0.1", headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Host": host, **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return response.read().decode()


def samples(port: int) -> Samples:
    """Every sample of a scrape, parsed by prometheus-client's own parser, by name and labels."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(scrape(port)) for sample in family.samples}


def value(port: int, name: str, **labels: str) -> float:
    return samples(port).get((name, tuple(sorted(labels.items()))), float("nan"))


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on, read from /proc (its sockets' inodes)."""
    inodes = socket_inodes_of(pid)
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppProcess]:
    """One server with --metrics-address on a port of its own (its `metrics_port`)."""
    port = free_port()
    started = AppProcess(tmp_path / "app.log", "--log-level", "info", "--metrics-address", f"127.0.0.1:{port}",
                         env=app_env(request, request.param))
    started.metrics_port = port  # type: ignore[attr-defined]  # the fixture's note
    yield started
    started.stop()


both_stores = pytest.mark.parametrize("app", ["memory", "redis"], indirect=True)


@both_stores
def test_metrics_move_with_logins_connects_refusals_chats_and_logouts(app: AppProcess, request: pytest.FixtureRequest) -> None:
    port: int = app.metrics_port  # type: ignore[attr-defined]  # set by the fixture
    redis = request.node.callspec.params["app"] == "redis"

    async def scenario() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            # At rest: every series there from the start, at 0.
            assert value(port, "tornado_app_sockets_open") == 0
            assert value(port, "tornado_app_connects_refused_total", reason="not_authenticated") == 0
            assert value(port, "tornado_app_session_ends_total", reason="logout") == 0

            cookie = await log_in(http, app.url, "Ada Lovelace")
            other = await log_in(http, app.url, "Grace")
            await eventually(lambda: value(port, "tornado_app_sessions") == 2, what="the sampled session count reaches 2")

            ada = await WireSocket.connect(http, app.url, cookie, origin=app.url)
            tag = (await ada.next("welcome"))["tag"]
            assert (await ada.call("whoami"))["username"] == "Ada Lovelace"
            grace = await WireSocket.connect(http, app.url, other, origin=app.url)
            await eventually(lambda: value(port, "tornado_app_sockets_open") == 2, what="two sockets open")
            assert value(port, "tornado_app_people_online") == 2
            assert value(port, "tornado_app_connects_accepted_total") == 2
            await eventually(lambda: value(port, "tornado_app_presence_batch_changes_count") >= 1, what="a presence batch counted")

            with pytest.raises(Refused, match="not authenticated"):
                await WireSocket.connect(http, app.url, None, origin=app.url)
            assert value(port, "tornado_app_connects_refused_total", reason="not_authenticated") == 1
            assert value(port, "tornado_app_connects_accepted_total") == 2

            answer = await ada.call("chat", {"text": "hello, metrics"})
            assert answer["ok"] is True
            refused = await ada.call("chat", {"text": ""})
            assert refused["ok"] is False and refused["reason"] == "invalid"
            assert value(port, "tornado_app_chat_messages_accepted_total") == 1
            assert value(port, "tornado_app_chat_messages_refused_total", reason="invalid") == 1
            assert value(port, "tornado_app_event_handling_seconds_count", event="chat") == 2
            assert value(port, "tornado_app_event_handling_seconds_count", event="whoami") == 1
            assert value(port, "tornado_app_event_handling_seconds_count", event="connect") == 3

            # An event nobody handles: counted as "other", its name never a label, still unanswered.
            made_up = "made_up_event_" + tag
            await ada.emit(made_up, {"x": 1})
            await eventually(lambda: value(port, "tornado_app_event_handling_seconds_count", event="other") == 1,
                             what="the made-up event counted as other")
            with pytest.raises(asyncio.TimeoutError):  # unanswered, as without metrics
                await ada.call(made_up, timeout=1)
            assert (await ada.call("whoami"))["username"] == "Ada Lovelace"  # the socket is still fine

            assert await log_out(http, app.url, cookie) in (302, 303)
            await eventually(lambda: value(port, "tornado_app_session_ends_total", reason="logout") == 1, what="one logout counted")
            await eventually(lambda: value(port, "tornado_app_sockets_open") == 1, what="Ada's socket closed")
            assert value(port, "tornado_app_people_online") == 1
            await eventually(lambda: value(port, "tornado_app_sessions") == 1, what="the sampled session count back to 1")

            everything = samples(port)
            labels = {label_value for _, pairs in everything for _, label_value in pairs}
            for personal in ("Ada Lovelace", "Grace", tag, made_up, "127.0.0.1"):
                assert not any(personal in label for label in labels), (personal, sorted(labels))
            assert everything[("process_open_fds", ())] > 0
            assert value(port, "tornado_app_event_loop_lag_seconds") >= 0
            if redis:
                await eventually(lambda: value(port, "tornado_app_redis_up") == 1, what="Redis reachable")
                assert value(port, "tornado_app_redis_ping_seconds_count") >= 1
            else:
                assert not any(name.startswith("tornado_app_redis") for name, _ in everything)
            await grace.close()

    asyncio.run(scenario())
    assert "Traceback" not in app.log()


@pytest.mark.parametrize("app", ["redis"], indirect=True)
def test_redis_unreachable_shows_in_the_metrics(app: AppProcess, redis_server: object) -> None:
    """Redis stopped: redis_up falls to 0 within a sample or two, and the scrape still answers."""
    port: int = app.metrics_port  # type: ignore[attr-defined]  # set by the fixture

    async def scenario() -> None:
        await eventually(lambda: value(port, "tornado_app_redis_up") == 1, what="Redis reachable at first")
        redis_server.stop()  # type: ignore[attr-defined]  # a RedisServer
        await eventually(lambda: value(port, "tornado_app_redis_up") == 0, what="Redis unreachable")
        redis_server.start()  # type: ignore[attr-defined]  # a RedisServer
        await eventually(lambda: value(port, "tornado_app_redis_up") == 1, what="Redis reachable again")

    asyncio.run(scenario())


@pytest.mark.parametrize("app", ["memory"], indirect=True)
def test_the_metrics_listener_is_its_own_and_stops_with_the_server(app: AppProcess) -> None:
    port: int = app.metrics_port  # type: ignore[attr-defined]  # set by the fixture
    assert listening_ports(app.process.pid) == {app.port, port}
    # No Host check there (a scraper comes by address or any name) ...
    assert "tornado_app_sockets_open" in scrape(port, host="scraper.internal.example")
    # ... and nothing of it on the app's port, whose Host check stands.
    with pytest.raises(urllib.error.HTTPError) as not_there:
        urllib.request.urlopen(f"{app.url}/metrics", timeout=10)
    assert not_there.value.code == 404
    not_there.value.close()
    assert app.stop() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_without_the_flag_there_is_no_metrics_listener(tmp_path: Path) -> None:
    app = AppProcess(tmp_path / "app.log", "--log-level", "info")
    try:
        assert listening_ports(app.process.pid) == {app.port}
        assert "metrics" not in app.log()
    finally:
        app.stop()


@pytest.mark.parametrize("address, words", [
    ("9100", "is not HOST:PORT"),
    ("127.0.0.1:99999", "is not HOST:PORT"),
    ("::1:9100", "write an IPv6 address in brackets"),
])
def test_a_bad_metrics_address_is_refused_in_words(address: str, words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "tornado_app", "--port", "0", "--metrics-address", address],
                          cwd=ROOT, check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_taken_metrics_port_is_said_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tornado_app", "--port", "0", "--metrics-address", f"127.0.0.1:{port}"],
                              cwd=ROOT, check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr, done.stderr
