"""Drain on SIGTERM (issue 23, item 4), attacked on real `python -m tornado_app` processes.

Before: SIGTERM closed every socket within about a second, so all of a process's pages came
back to the others in the same second (a reconnect storm), and nothing told a balancer to
stop sending it new pages first. Now SIGTERM turns /readyz to 503 "draining" at once,
refuses new pages, logins and Engine.IO handshakes (503 with Retry-After) while its
listener stays open for the probes and the sockets still open, ends those sockets in small
batches spread over --drain-seconds (each told `ended` "shutdown" first), then exits 0.
SIGINT, and a second signal during a drain, still stop at once; --drain-seconds 0 is
today's stop. The batching's arithmetic is checked on its own below.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from deploy.services import AppProcess
from tests.support.app_env import app_env
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, Person, browser_missing, wait_for_socket
from tests.support.constants import OUTPUT_DIR
from tests.support.e2e import e2e_unavailable
from tests.support.forms import http_session, log_in
from tests.support.waiting import GENEROUS_SECONDS, eventually
from tests.support.wire import Refused, WireSocket
from tornado_app.drain import BATCH_INTERVAL_SECONDS, Batch, StopSignals, drain_schedule
from tornado_app.settings import PRODUCTION

# This module's fixtures that start processes: a test using one is marked `process`
# (tests/support/process_marker.py).
PROCESS_FIXTURES = {"start_app"}

FOREIGN_HOST = "10.0.0.7"  # a probe comes by address, whatever the app's names


# ---- the arithmetic: when each batch goes and how many it ends ----


@pytest.mark.parametrize(("sockets", "seconds"), [(1, 10), (3, 10), (60, 3), (61, 3), (10_000, 10), (7, 0.3), (2_000, 2.6)])
def test_the_schedule_ends_every_socket_evenly_over_the_window(sockets: int, seconds: float) -> None:
    batches = drain_schedule(sockets, seconds)
    sizes = [before.left_open - after.left_open for before, after in pairwise([Batch(0.0, sockets), *batches])]
    assert sum(sizes) == sockets and batches[-1] == Batch(seconds, 0)
    assert len(batches) == min(sockets, max(1, int(seconds / BATCH_INTERVAL_SECONDS + 1e-9)))
    assert max(sizes) - min(sizes) <= 1  # evenly: no batch more than one socket larger than another
    gaps = {round(after.at - before.at, 9) for before, after in pairwise([Batch(0.0, sockets), *batches])}
    assert len(gaps) == 1 and gaps.pop() >= BATCH_INTERVAL_SECONDS - 1e-9  # evenly spaced, the first one step in


def test_the_schedule_of_nothing_is_empty_and_a_zero_window_is_one_batch_at_once() -> None:
    assert drain_schedule(0, 10) == []
    assert drain_schedule(500, 0) == [Batch(0.0, 0)]
    assert len(drain_schedule(10_000, 10)) == 40  # one batch every 0.25 s, 250 sockets each


@pytest.mark.gen_test
async def test_sigterm_drains_and_a_second_signal_or_sigint_finishes_at_once() -> None:
    term = StopSignals(10)
    term.terminate()
    assert term.stop.is_set() and not term.at_once.is_set()
    term.terminate()
    assert term.at_once.is_set()
    interrupted = StopSignals(10)
    interrupted.terminate()
    interrupted.interrupt()
    assert interrupted.at_once.is_set()
    ctrl_c = StopSignals(10)
    ctrl_c.interrupt()
    assert ctrl_c.stop.is_set() and ctrl_c.at_once.is_set()
    no_drain = StopSignals(0)
    no_drain.terminate()
    assert no_drain.stop.is_set() and no_drain.at_once.is_set()


def test_the_default_window_is_ten_seconds_unless_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    from tornado_app.cli import DRAIN_SECONDS_ENV, build_parser

    monkeypatch.delenv(DRAIN_SECONDS_ENV, raising=False)
    assert build_parser().parse_args([]).drain_seconds == PRODUCTION.drain_seconds == 10
    monkeypatch.setenv(DRAIN_SECONDS_ENV, "2.5")
    assert build_parser().parse_args([]).drain_seconds == 2.5
    assert build_parser().parse_args(["--drain-seconds", "0"]).drain_seconds == 0
    for bad in ("-1", "nan", "inf", "soon"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--drain-seconds", bad])


# ---- real processes ----


@pytest.fixture
def start_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A factory of app processes at --log-level info, in the store the test is parametrized
    with ("memory", or the test Redis shared by all of them); killed after the test."""
    started: list[AppProcess] = []

    def start(*args: str, store: str = "memory") -> AppProcess:
        app = AppProcess(tmp_path / f"app{len(started)}.log", "--log-level", "info", *args, env=app_env(request, store))
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop(signal.SIGKILL)
        assert "Traceback" not in app.log(), app.log()[-3000:]


both_stores = pytest.mark.parametrize("store", ["memory", "redis"])


async def status_of(http: aiohttp.ClientSession, app: AppProcess, path: str, method: str = "GET",
                    host: str | None = None, headers: dict[str, str] | None = None, **kwargs: Any) -> tuple[int, str | None, str]:
    """(status, Retry-After, body) of one request."""
    headers = {**(headers or {}), **({"Host": host} if host else {})}
    async with http.request(method, app.url + path, headers=headers, allow_redirects=False, **kwargs) as answer:
        return answer.status, answer.headers.get("Retry-After"), await answer.text()


async def connect(http: aiohttp.ClientSession, app: AppProcess, cookie: str, **auth: Any) -> WireSocket:
    return await WireSocket.connect(http, app.url, cookie, origin=app.url, auth=auth or None)


def exit_status(app: AppProcess, within: float) -> int:
    """The process's exit status once it exits; fails if it does not within `within` s."""
    try:
        return app.process.wait(within)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the process did not exit within {within} s") from None


@both_stores
def test_while_draining_readiness_is_503_new_work_is_refused_and_open_sockets_still_work(start_app, store: str) -> None:
    """During the drain: /readyz 503 "draining" by address (the whole drain), /healthz 200; a
    new page, a login, a WebSocket or polling handshake: 503 "draining" with Retry-After; the
    socket already open still answers until its batch, then is told "shutdown" and closed;
    the process exits 0, its log saying the drain in two lines."""
    drain_seconds = 6.0
    app = start_app("--drain-seconds", str(drain_seconds), store=store)

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, app.url, "ada")
            socket = await connect(http, app, cookie)
            assert (await socket.call("whoami"))["username"] == "ada"
            login_page = await status_of(http, app, "/login")
            assert login_page[0] == 200
            xsrf = login_page[2].split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
            app.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await eventually(lambda: _is_draining(http, app), what="/readyz says draining")
            refused = {
                "/healthz": await status_of(http, app, "/healthz", host=FOREIGN_HOST),
                "GET /": await status_of(http, app, "/", headers={"Cookie": cookie}),
                "GET /login": await status_of(http, app, "/login"),
                "POST /login": await status_of(http, app, "/login", "POST", data={"_xsrf": xsrf, "username": "bob"},
                                               headers={"Cookie": f"_xsrf={xsrf}"}),
                "polling handshake": await status_of(http, app, "/socket.io/?EIO=4&transport=polling",
                                                     headers={"Origin": app.url}),
            }
            assert refused["/healthz"][0] == 200
            for what in ("GET /", "GET /login", "POST /login", "polling handshake"):
                assert refused[what][:2] == (503, "5"), (what, refused[what])
            assert refused["polling handshake"][2] == "draining\n"
            assert "stopping for a restart" in refused["GET /"][2]
            with pytest.raises(Refused) as handshake:
                await connect(http, app, cookie)
            assert handshake.value.status == 503
            # The open socket still works, and readiness stays 503, until its batch (the last).
            while not socket.closed.is_set() and time.monotonic() - signalled < drain_seconds - 1.5:
                assert (await socket.call("whoami"))["username"] == "ada"
                assert (await status_of(http, app, "/readyz", host=FOREIGN_HOST))[::2] == (503, "draining\n")
                await asyncio.sleep(0.2)
            assert not socket.closed.is_set(), "a drain of one socket over 6 s ends it at its end, not at once"
            assert await socket.next("ended", timeout=GENEROUS_SECONDS) == {"reason": "shutdown"}
            await asyncio.wait_for(socket.closed.wait(), GENEROUS_SECONDS)
            assert socket.close_reason == "transport close"  # not a Socket.IO disconnect: the page reconnects
            assert time.monotonic() - signalled >= drain_seconds - 1.0

    asyncio.run(scenario())
    assert exit_status(app, GENEROUS_SECONDS) == 0
    log = app.log()
    assert f"draining 1 sockets over {drain_seconds:g} s" in log and "drained: 1 sockets ended in" in log
    assert "Traceback" not in log


async def _is_draining(http: aiohttp.ClientSession, app: AppProcess) -> bool:
    status, retry_after, body = await status_of(http, app, "/readyz", host=FOREIGN_HOST)
    return (status, retry_after, body) == (503, "5", "draining\n")


CROWD = ("--login-rate", "off", "--connect-rate", "off")  # one test address holds every socket


async def ended_at(socket: WireSocket, clock_start: float) -> float:
    """When the socket was closed, in seconds since `clock_start`; it must have been told
    "shutdown" first."""
    await asyncio.wait_for(socket.closed.wait(), 2 * GENEROUS_SECONDS)
    closed = time.monotonic() - clock_start
    assert await socket.next("ended", timeout=1) == {"reason": "shutdown"}
    assert socket.close_reason == "transport close"
    return closed


@both_stores
def test_sixty_sockets_are_ended_over_the_window_not_at_once(start_app, store: str) -> None:
    """60 sockets, --drain-seconds 3: their ends spread over the window (one batch every
    0.25 s, 5 sockets each). Before: all in the same tenth of a second. The bounds leave room
    for a loaded machine: an even spread puts 10 in any 0.5 s; at most 30 may be."""
    sockets_count, drain_seconds = 60, 3.0
    app = start_app("--drain-seconds", str(drain_seconds), *CROWD, store=store)

    async def scenario() -> list[float]:
        async with http_session() as http:
            cookie = await log_in(http, app.url, "crowd")
            sockets = [await connect(http, app, cookie) for _ in range(sockets_count)]
            signalled = time.monotonic()
            app.process.send_signal(signal.SIGTERM)
            return sorted(await asyncio.gather(*(ended_at(socket, signalled) for socket in sockets)))

    ends = asyncio.run(scenario())
    assert exit_status(app, GENEROUS_SECONDS) == 0
    busiest = max(sum(1 for end in ends if start <= end < start + 0.5) for start in ends)
    print(f"ends from {ends[0]:.2f} s to {ends[-1]:.2f} s after SIGTERM; at most {busiest} in any 0.5 s")
    assert ends[-1] - ends[0] >= 1.5, ends
    assert busiest <= sockets_count // 2, ends
    assert ends[0] >= 0.1, "the first batch goes one step after the start, not at it"
    assert f"draining {sockets_count} sockets over 3 s" in app.log()


def test_in_redis_mode_drained_pages_reconnect_to_the_other_process_with_their_session(start_app) -> None:
    """Two processes on one Redis, no nginx: the drained process's sockets, each with its own
    person, are ended over the window (8 over 2 s: one every 0.25 s) and come back on the
    other process's port with their session (welcomed as the same person, and caught up
    from the chat position they held), and the drained one exits 0."""
    drained = start_app("--drain-seconds", "2", *CROWD, store="redis")
    other = start_app(*CROWD, store="redis")

    async def scenario() -> None:
        async with http_session() as http:
            cookies = [await log_in(http, drained.url, f"person {n}") for n in range(8)]
            sockets = [await connect(http, drained, cookie) for cookie in cookies]
            positions = [(await socket.next("history"))["position"] for socket in sockets]
            signalled = time.monotonic()
            drained.process.send_signal(signal.SIGTERM)

            async def come_back(socket: WireSocket, cookie: str, name: str, position: str | None) -> float:
                ended = await ended_at(socket, signalled)
                back = await connect(http, other, cookie, history=position)
                assert (await back.next("welcome"))["username"] == name
                assert (await back.next("history"))["resume"] == ("caught_up" if position else "none")
                assert (await back.call("whoami"))["username"] == name
                await back.close()
                return ended

            ends = await asyncio.gather(*(come_back(socket, cookie, f"person {n}", position)
                                          for n, (socket, cookie, position) in enumerate(zip(sockets, cookies, positions, strict=True))))
            assert max(ends) - min(ends) >= 1.0, ends

    asyncio.run(scenario())
    assert exit_status(drained, GENEROUS_SECONDS) == 0


def test_in_memory_mode_the_drained_process_exits_0_and_a_page_coming_back_is_told_its_session_is_gone(start_app) -> None:
    """One process in memory: the drain ends its sockets and it exits 0; started again, it
    knows nothing of the session (memory is gone), and says so as it does today."""
    app = start_app("--drain-seconds", "1")

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, app.url, "ada")
            socket = await connect(http, app, cookie)
            signalled = time.monotonic()
            app.process.send_signal(signal.SIGTERM)
            assert await ended_at(socket, signalled) >= 0.5  # one socket over 1 s: at its end
            assert exit_status(app, GENEROUS_SECONDS) == 0
            app.start()
            with pytest.raises(Refused) as refused:
                await connect(http, app, cookie)
            assert str(refused.value) == "not authenticated"

    asyncio.run(scenario())


@pytest.mark.parametrize("how", ["--drain-seconds 0", "SIGINT", "SIGTERM twice", "SIGTERM then SIGINT"])
def test_no_drain_ctrl_c_and_a_second_signal_stop_at_once(start_app, how: str) -> None:
    """--drain-seconds 0 is today's stop; Ctrl-C (SIGINT) stops at once even with a minute of
    drain; so does a second signal during a drain. At once: every socket ends within a few
    seconds (today: about one; the bound is generous for a loaded machine), not over 60 s."""
    app = start_app("--drain-seconds", "0" if how == "--drain-seconds 0" else "60", *CROWD)
    at_once_seconds = 8.0

    async def scenario() -> list[float]:
        async with http_session() as http:
            cookie = await log_in(http, app.url, "ada")
            sockets = [await connect(http, app, cookie) for _ in range(20)]
            signalled = time.monotonic()
            if how == "SIGINT":
                app.process.send_signal(signal.SIGINT)
            else:
                app.process.send_signal(signal.SIGTERM)
                if how != "--drain-seconds 0":
                    await eventually(lambda: _is_draining(http, app), what="the drain began")
                    await asyncio.sleep(0.5)
                    assert not any(socket.closed.is_set() for socket in sockets), "20 sockets over 60 s: none in the first 0.5 s"
                    app.process.send_signal(signal.SIGINT if how.endswith("SIGINT") else signal.SIGTERM)
            return await asyncio.gather(*(ended_at(socket, signalled) for socket in sockets))

    ends = asyncio.run(scenario())
    assert exit_status(app, at_once_seconds) == 0
    print(f"{how}: every socket ended within {max(ends):.2f} s")
    assert max(ends) < at_once_seconds


@pytest.mark.e2e
def test_a_page_in_chromium_is_told_of_the_drain_and_reconnects_by_itself_to_the_other_process(
        redis_url: str, tmp_path: Path, nginx_workdir: Path) -> None:
    """Two processes on one Redis behind nginx (make cluster's layout): the page's process is
    drained over 3 s (the page's socket, its only one, at the end). The page says the server is stopping and that it reconnects, then does so by
    itself, to the other process (the drained one refuses handshakes, then exits 0), still
    logged in, and chats. Its log says no session ended."""
    missing = browser_missing()
    if missing:
        e2e_unavailable(missing)
    from playwright.sync_api import expect, sync_playwright

    from deploy.services import Nginx, ServiceMissing, free_port

    port = free_port()
    env = {"TORNADO_APP_COOKIE_SECRET": "a-secret-shared-by-every-process", "TORNADO_APP_REDIS_URL": redis_url}
    apps = [AppProcess(tmp_path / f"app{number}.log", "--log-level", "info", "--drain-seconds", "3", "--behind-proxy",
                       "--allowed-host", f"127.0.0.1:{port}", "--process-label", f"app{number}", env=env) for number in (1, 2)]
    try:
        try:
            proxy = Nginx(nginx_workdir, [app.port for app in apps], port=port)
        except ServiceMissing as missing:
            e2e_unavailable(str(missing))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
                person = Person(browser, proxy.url + "/")
                page = person.log_in("Ada")
                wait_for_socket(page, "connected")
                # The process that serves the page's socket, as its welcome names it (nginx hashes
                # the session cookie: not necessarily the one the login went to).
                expect(page.locator("#socket-process-label")).to_have_text(re.compile(r"^app[12]$"))
                pages_app = apps[int(page.text_content("#socket-process-label")[-1]) - 1]
                # Every help text the page shows from now on, however briefly.
                page.evaluate("""() => {
                    window.helpsShown = [];
                    const help = document.getElementById("socket-help-text");
                    new MutationObserver(() => help.textContent && window.helpsShown.push(help.textContent))
                        .observe(help, {childList: true, characterData: true, subtree: true});
                }""")
                signalled = time.monotonic()
                pages_app.process.send_signal(signal.SIGTERM)
                page.wait_for_selector("#handshake-log li:has-text('server: stopping; this page reconnects')", timeout=20_000)
                told_after = time.monotonic() - signalled
                assert told_after >= 2.0, f"its only socket goes with the drain's last batch, at 3 s, not at once ({told_after:.2f} s)"
                page.wait_for_function("window.helpsShown.length > 0", timeout=20_000)
                assert page.evaluate("window.helpsShown")[0] == (
                    "The server is stopping. This page reconnects by itself, to another server of this site or to this one when it is back.")
                page.wait_for_selector("#handshake-log li:has-text('connect: Socket.IO session open') >> nth=1", timeout=20_000)
                wait_for_socket(page, "connected")
                assert pages_app.process.wait(GENEROUS_SECONDS) == 0  # drained, then exited; the page is on the other
                expect(page.locator("#current-user")).to_have_text("Ada")
                page.fill("#chat-input", "still here after the drain")
                page.press("#chat-input", "Enter")
                page.wait_for_selector("#chat-messages li.is-me:has-text('still here after the drain')")
                log = page.text_content("#handshake-log")
                assert "session ended" not in log and "io server disconnect" not in log
                assert person.console_errors == [] or all("503" in error for error in person.console_errors), person.console_errors
                page.screenshot(path=OUTPUT_DIR / "drain-reconnected.png")
                browser.close()
        finally:
            proxy.stop()
    finally:
        for app in apps:
            app.stop(signal.SIGKILL)


def test_the_draining_gauge_is_1_during_the_drain_and_0_before(start_app) -> None:
    """`tornado_app_draining` (--metrics-address) says what /readyz says, for a dashboard."""
    from prometheus_client.parser import text_string_to_metric_families

    from deploy.services import free_port

    metrics_port = free_port()
    app = start_app("--drain-seconds", "4", "--metrics-address", f"127.0.0.1:{metrics_port}")

    async def draining(http: aiohttp.ClientSession) -> float:
        async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as answer:
            text = await answer.text()
        return next(sample.value for family in text_string_to_metric_families(text)
                    for sample in family.samples if sample.name == "tornado_app_draining")

    async def scenario() -> None:
        async with http_session() as http:
            socket = await connect(http, app, await log_in(http, app.url, "ada"))
            assert await draining(http) == 0
            app.process.send_signal(signal.SIGTERM)
            await eventually(lambda: _is_draining(http, app), what="the drain began")
            assert await draining(http) == 1
            assert not socket.closed.is_set()

    asyncio.run(scenario())
    assert exit_status(app, GENEROUS_SECONDS) == 0


@both_stores
def test_a_long_polling_socket_keeps_working_during_the_drain_until_its_batch(start_app, store: str) -> None:
    """A socket on long-polling (no WebSocket: a proxy that strips upgrades) makes a request
    per packet, each with its sid: those still reach the draining process, so it works until
    its batch, then its pending poll carries `ended` "shutdown" and the close."""
    from tests.support.socketio_client import SocketClient

    app = start_app("--drain-seconds", "3", store=store)

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, app.url, "ada")
        client = SocketClient(cookie)
        try:
            await client.sio.connect(app.url, headers={"Origin": app.url}, transports=["polling"], wait_timeout=10)
            assert (await client.sio.call("whoami", timeout=10))["username"] == "ada"
            signalled = time.monotonic()
            app.process.send_signal(signal.SIGTERM)
            answered = 0
            while time.monotonic() - signalled < 2.0:
                assert (await client.sio.call("whoami", timeout=10))["username"] == "ada"
                answered += 1
                await asyncio.sleep(0.2)
            assert answered >= 3
            assert await client.next("ended", timeout=GENEROUS_SECONDS) == {"reason": "shutdown"}
            await client.next("disconnect", timeout=GENEROUS_SECONDS)
            assert time.monotonic() - signalled >= 2.0
        finally:
            await client.close()

    asyncio.run(scenario())
    assert exit_status(app, GENEROUS_SECONDS) == 0
