"""Issue 23: a rolling restart of `make cluster` (kill -USR1) logs nobody out, loses no
message, and its drain spreads the reconnects.

Real make cluster (deploy/cluster.py as a child process: its own redis-server, two app
processes, nginx), a few hundred wire sockets (bench/rolling.py's people: each its own
session and its own loopback address, coming back as a page does after its connection ends)
and two people in Chromium chatting through it while every process is drained and restarted
in turn. Skipped with the reason where redis-server, nginx or Chromium is missing; failed
instead under REQUIRE_E2E=1.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bench.rolling import Crowd, TimedCluster, bucket_peak, per_second
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browser_missing, log_in_page
from tests.support.e2e import e2e_unavailable
from tests.support.make_cluster import started_make_cluster
from tests.support.waiting import eventually

SOCKETS = 300
DRAIN_SECONDS = 6.0
# The drain ends a process's sockets evenly over DRAIN_SECONDS, and each comes back after the
# page's reconnect delay (0.25 to 1.75 s): the second process drained holds every socket (those
# of the first came to it), so about SOCKETS / DRAIN_SECONDS reconnects a second at most (50;
# 53 measured). The bound allows half as much again for a loaded 2-core machine bunching them.
# Stopping at once (--drain-seconds 0) brings them all back within about 2 s, as fast as the
# other process takes them: 131 and 136 a second measured, over the bound (checked by hand).
PEAK_BOUND = 1.5 * SOCKETS / DRAIN_SECONDS


async def opened(page: Any) -> int:
    """How many times the page's socket has opened (its handshake log says each)."""
    return await page.locator("#handshake-log li", has_text="connect: Socket.IO session open").count()


async def stored_texts(page: Any) -> list[str]:
    """The texts of the stored messages the page shows (acked by a server, or received)."""
    return await page.locator("#chat-messages li.message .message-text").all_text_contents()


async def outbox(page: Any) -> list[tuple[str, str]]:
    """The page's own messages still on their way: (text, state)."""
    items = page.locator("#chat-outbox li.message")
    return [(await items.nth(index).locator(".message-text").text_content(), await items.nth(index).get_attribute("data-state"))
            for index in range(await items.count())]


async def say(page: Any, text: str) -> None:
    """Type a message and press Enter (it is shown at once, sending or waiting)."""
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")


def told_then_closed(log: list[str]) -> list[float]:
    """From a page's handshake log (lines `+105 ms...`, `+9.76 s...`): for each time it was
    told the server is stopping, the seconds until its connection was lost."""
    times = []
    told = None
    for line in log:
        match = re.match(r"\+([\d.]+) (ms|s)(.*)", line)
        if match is None:
            continue
        at = float(match[1]) / (1000 if match[2] == "ms" else 1)
        if match[3].startswith("server: stopping"):
            told = at
        elif match[3].startswith("disconnected") and told is not None:
            times.append(round(at - told, 2))
            told = None
    return times


class Handshakes:
    """When each page began a new Engine.IO session (time.perf_counter): its handshake, the
    /socket.io/ request with no sid, seen as the browser sends it."""

    def __init__(self, pages: dict[str, Any]) -> None:
        self.times: dict[str, list[float]] = {name: [] for name in pages}
        for name, page in pages.items():
            page.on("request", lambda request, name=name: self.seen(name, request.url))

    def seen(self, name: str, url: str) -> None:
        if "/socket.io/" in url and "sid=" not in url:
            self.times[name].append(time.perf_counter())


class OutOfNginx:
    """When nginx's configuration (written by make cluster before each reload) stopped
    marking each app `down`, watched every 20 ms: the app is out of nginx until then (and a
    little longer, until the reload serves)."""

    def __init__(self, cluster: TimedCluster) -> None:
        self.config = Path(cluster.workdir, "nginx.conf")
        self.seen: list[tuple[float, set[int]]] = []
        self.task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            down = {int(number) for number in re.findall(r"server unix:\S*?app(\d+)\.sock[^;]* down;", self.config.read_text())}
            self.seen.append((time.perf_counter(), down))
            await asyncio.sleep(0.02)

    def put_back(self, number: int, after: float) -> float:
        """The first time after `after` that app `number` was no longer marked down."""
        return next(at for at, down in self.seen if at > after and number not in down)

    async def stop(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass


def windows_away(cluster: TimedCluster, nginx: OutOfNginx, since: float) -> list[tuple[int, float, float]]:
    """(app, from, to): while each app was out of nginx, from its `draining` line (printed once
    nginx's reload without it serves) until its configuration marked it up again: a handshake
    sent meanwhile went to another process."""
    windows = []
    for at, line in zip(cluster.line_times, cluster.lines, strict=False):  # a reader thread appends to both
        draining = re.match(r"rolling restart: app (\d+) draining", line)
        if at >= since and draining:
            windows.append((int(draining[1]), at, nginx.put_back(int(draining[1]), at)))
    return windows


@pytest.mark.e2e
def test_a_rolling_restart_logs_nobody_out_loses_no_message_and_spreads_the_reconnects() -> None:
    """300 wire sockets (300 people) and two pages in Chromium (ada and grace) on make cluster
    with --drain-seconds 6; kill -USR1 for a rolling restart while ada chats:

    - every wire socket is welcomed again as the same person, none refused or told its session
      ended; both pages connected again as the same person, no login form;
    - each page reconnected while the process it was on was out of nginx (to the other one),
      and a chat from ada after the restart reaches grace;
    - each message ada sent during the restart is stored (acked) or shown not sent with Retry,
      never lost: every stored one is in both pages' logs and held by every wire socket, and
      after Retry every one is in grace's log once;
    - the peak of successful reconnects in any second stays under 1.5 x sockets / drain.

    Without the drain (`deploy/cluster.py --drain-seconds 0`, the stop of the release before),
    the same restart peaked at 136 reconnects a second, over the bound of 75: checked by hand
    with DRAIN_SECONDS = 0 (bench/rolling.py prints both side by side)."""
    missing = browser_missing()
    if missing:
        e2e_unavailable(missing)
    from playwright.async_api import async_playwright

    cluster = started_make_cluster("--drain-seconds", f"{DRAIN_SECONDS:g}", kind=TimedCluster)
    try:
        url = cluster.url

        async def scenario() -> None:
            crowd = Crowd(url, SOCKETS)
            try:
                await rolling_restart_with(crowd)
            finally:
                crowd.close()
                await asyncio.sleep(0.5)  # their connections closed while the loop runs

        async def rolling_restart_with(crowd: Crowd) -> None:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
                # The pages first: a drain ends the oldest sockets first (tornado_app/drain.py),
                # so theirs go early in their process's drain and come back while it is still
                # out of nginx: to the other process. (A socket ended in the last batch can come
                # back once its own process is back: the wire crowd has those.)
                ada, grace = await log_in_page(browser, url, "ada"), await log_in_page(browser, url, "grace")
                await crowd.log_in(concurrency=30)
                await crowd.connect(concurrency=50, within=60)
                await say(ada, "before the restart")
                await grace.wait_for_selector("#chat-messages li:has-text('before the restart')")
                handshakes = Handshakes({"ada": ada, "grace": grace})
                nginx = OutOfNginx(cluster)
                clock = crowd.start_round()
                started = time.perf_counter()
                os.kill(cluster.process.pid, signal.SIGUSR1)
                sent: list[str] = []
                while not any(line.startswith("rolling restart done") for line in cluster.lines):
                    assert time.perf_counter() - started < 90, f"the rolling restart is not done: {cluster.lines}"
                    sent.append(f"during the restart {len(sent) + 1}")
                    await say(ada, sent[-1])
                    await asyncio.sleep(0.7)
                done = await cluster.next_line(r"rolling restart done in (\d+(?:\.\d+)?) s", 5)
                await eventually(crowd.everyone_back, 60, f"every wire socket back: {crowd.describe()}")
                for page in (ada, grace):
                    await page.wait_for_selector("#socket-state[data-state=connected]")

                # Nobody logged out: every wire socket welcomed again as itself, both pages too.
                logged_out = {person.name: person.logged_out for person in crowd.people if person.logged_out}
                assert not logged_out, f"{len(logged_out)} people logged out: {list(logged_out.items())[:5]}"
                assert all(person.returned for person in crowd.people), "a socket was never drained"
                for name, page in (("ada", ada), ("grace", grace)):
                    assert await page.text_content("#current-user") == name
                    assert await page.locator("#login-form").count() == 0 and "/login" not in page.url

                # What each page's log says of the drain, and when each process was out of nginx.
                logs = {name: await page.locator("#handshake-log li").all_text_contents() for name, page in (("ada", ada), ("grace", grace))}
                await nginx.stop()
                windows = windows_away(cluster, nginx, started)
                assert sorted(number for number, _, _ in windows) == [1, 2], cluster.lines

                # Chatting goes on, and no message is lost.
                await say(ada, "after the restart")
                await grace.wait_for_selector("#chat-messages li:has-text('after the restart')")

                async def settled() -> bool:
                    """ada's outbox holds only messages shown not sent (with Retry), if any."""
                    return all(state == "failed" for _, state in await outbox(ada))

                await eventually(settled, 30, "ada's messages sent or shown not sent")
                stored_by_ada, unsent = set(await stored_texts(ada)), dict(await outbox(ada))
                assert set(sent) <= stored_by_ada | set(unsent), f"shown nowhere: {set(sent) - stored_by_ada - set(unsent)}"
                for text in unsent:
                    assert await ada.locator("#chat-outbox li.message", has_text=text).locator("button", has_text="Retry").is_visible()
                acked = [text for text in sent if text in stored_by_ada]
                assert acked, f"none of ada's {len(sent)} messages during the restart was sent"

                async def grace_has_them() -> bool:
                    return set(acked) <= set(await stored_texts(grace))

                await eventually(grace_has_them, 30, f"grace's log holds every acked message: {acked}")

                # Nothing typed is lost: Retry sends the rest (the same ids: none posted twice).
                for text in unsent:
                    await ada.locator("#chat-outbox li.message", has_text=text).locator("button", has_text="Retry").click()

                async def grace_has_all() -> bool:
                    texts = await stored_texts(grace)
                    return set(sent) <= set(texts) and all(texts.count(text) == 1 for text in sent)

                await eventually(grace_has_all, 30, "grace's log holds every message ada sent, once each")
                await browser.close()

            # Every wire socket holds every message ada sent (acked), live or caught up.
            async def every_socket_has_them() -> bool:
                return all(set(acked) <= person.texts for person in crowd.people)

            await eventually(every_socket_has_them, 30, "every wire socket holds every acked message: "
                             f"{sum(1 for person in crowd.people if not set(acked) <= person.texts)} do not")
            peak = bucket_peak(clock.backs)
            print(f"rolling restart of {SOCKETS} sockets, --drain-seconds {DRAIN_SECONDS:g}: done in {done[1]} s; "
                  f"{len(clock.backs)} reconnects, peak {peak}/s (bound {PEAK_BOUND:g}); ada sent {len(sent)}, "
                  f"{len(acked)} acked; reconnects by second: {per_second(clock.backs)}")
            assert peak <= PEAK_BOUND, f"{peak} reconnects in one second, over {PEAK_BOUND:g}"

            # Each page told `shutdown` lost its connection right after, and came back while its
            # process was out of nginx: to the other process.
            closed_after = {name: told_then_closed(log) for name, log in logs.items()}
            assert all(told and max(told) < 2 for told in closed_after.values()), (
                f"pages told 'shutdown' lost their connection this many s later: {closed_after}")
            for name, times in handshakes.times.items():
                assert any(begin <= at <= end for at in times for _, begin, end in windows), (
                    f"{name}'s page began its handshakes at {[round(at - started, 1) for at in times]} s, not while "
                    f"a process was away: {[(n, round(b - started, 1), round(e - started, 1)) for n, b, e in windows]}; "
                    f"its log: {logs[name][-12:]}")

        asyncio.run(scenario())
        assert cluster.process.poll() is None  # the cluster never stopped
        assert "Traceback" not in cluster.stderr()
    finally:
        cluster.close()
