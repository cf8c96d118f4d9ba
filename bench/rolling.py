#!/usr/bin/env python3
"""A deploy that logs nobody out: `make cluster` with N sockets over its processes, a rolling
restart, and what the people on those sockets live through (issue 23's benchmark).

The scenario, per mode (each mode its own `make cluster`, with its own Redis):

1. deploy/cluster.py runs as a child process (`--processes`, 2), with `--drain-seconds S` for
   its apps where the cluster takes it: `drained` is S = `--drain-seconds` (default 10, the
   app's default), `at once` is S = 0 (the stop of the release before: every socket of a
   process closed within a second). N people (`--sockets`, 2,000) log in through its nginx,
   each from an address of their own (127.1.x.y: Linux answers the whole of 127/8 on the
   loopback), so that no per-address limit of nginx or of the apps counts them as one client
   and nginx spreads them over the processes; each holds one socket (Socket.IO over a
   WebSocket, through nginx) and follows the chat.
2. A rolling restart: `kill -USR1` to the cluster, which drains, restarts and waits for one
   process at a time (`rolling restart done in X s`). Where this checkout's cluster has no
   rolling restart yet, the bench does it the old way: SIGTERM to each app in turn, the
   cluster starting it again, the next once it is back.
3. Every socket whose connection ends comes back as a page does: the socket.io client's
   reconnect delay (1 s, doubled per failed attempt up to 5 s, each +-75 % at random), naming
   the chat position it holds (issue 22's resume). Meanwhile a poster (one more person,
   through nginx) sends a chat every `--chat-interval` s; the ones acked are the ones that
   must reach everybody.
4. Once the cluster says it is done and every socket is back, each person must have been
   welcomed again as the same person (never refused "not authenticated", never told its
   session `ended` for another reason than "shutdown") and must hold every acked chat (live,
   or from the catch-up after its reconnect). Anything else is counted and printed, and the
   run exits with status 1.

Measured per round, from the USR1 (t = 0):
- per socket, the time it was away (its connection closed -> welcomed again: p50, p99, max),
  and the time from the start of its process's restart to its welcome (p50, p99);
- the total: until the last socket is back after the last process's restart;
- peak successful reconnects per second and peak connect attempts per second (client-side,
  1 s buckets from t = 0), refusals and failed attempts by kind;
- peak CPU of the app processes: /proc/PID/stat of each (its pid changes as it restarts) every
  0.25 s, the highest 1 s average, per process and summed over them;
- people logged out and acked messages lost (both must be 0).

    make bench-rolling                                        # 2,000 sockets, 2 processes, 10 s drain
    .venv/bin/python bench/rolling.py --sockets 500 --drain-seconds 3 --rounds 3
    .venv/bin/python bench/rolling.py --help

The sockets are bench/resume.py's lean client on asyncio's Protocol, so that thousands measure
the server. Nothing is pinned: the cluster's processes share both cores, as in production.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.resume import Link, Page
from tests.support.cluster import MakeCluster
from tests.support.forms import log_in
from tests.support.measure import bounded, cpu_seconds, percentile, raise_open_files_limit
from tests.support.wire import Refused, WireSocket

CLUSTER_SOURCE = (ROOT / "deploy" / "cluster.py").read_text()
# What this checkout's `make cluster` can do (the bench runs against older ones too).
CLUSTER_ROLLS = "kill -USR1" in CLUSTER_SOURCE
CLUSTER_DRAINS = "--drain-seconds" in CLUSTER_SOURCE
DEFAULT_DRAIN_SECONDS = 10.0

# The page's reconnect delay, as web/static/js/connection.js sets socket.io-client's: 1 s
# (reconnectionDelay), doubled per failed attempt up to 5 s (reconnectionDelayMax), each
# +-75 % at random (randomizationFactor).
RECONNECT_FIRST, RECONNECT_MAX, RECONNECT_JITTER = 1.0, 5.0, 0.75

CONNECT_TIMEOUT = 20.0  # socket.io-client's `timeout`: a connection not open by then is dropped and tried again
LOGGED_OUT_REFUSALS = ("not authenticated", "session ended")  # tornado_app/sockets.py's words
TEXT = "said during the rolling restart"
SAMPLE_SECONDS = 0.25  # how often the apps' CPU is read
POSTER_ADDRESS = "127.254.0.1"


def address_of(index: int) -> str:
    """Person `index`'s own loopback address: 127.1.0.1, 127.1.0.2, ... (never 127.0.0.1,
    where the pages of the tests come from). 62,500 per second octet."""
    return f"127.{1 + index // 62_500}.{index // 250 % 250}.{index % 250 + 1}"


def reconnect_delay(attempt: int) -> float:
    """socket.io-client's Backoff: 1 s doubled per attempt, at most 5 s, +-75 % at random."""
    delay = min(RECONNECT_FIRST * 2 ** attempt, RECONNECT_MAX)
    return delay * (1 + RECONNECT_JITTER * random.uniform(-1, 1))


# --- a person: one socket that comes back as a page does ----------------------------------


class Clock:
    """The times of one round, on time.perf_counter(): when it started, and what happened."""

    def __init__(self) -> None:
        self.zero = time.perf_counter()
        self.attempts: list[float] = []  # every connect attempt
        self.backs: list[float] = []  # every welcome after a connection was lost
        self.failures: Counter[str] = Counter()  # attempts that did not end in a welcome, by kind

    def now(self) -> float:
        return time.perf_counter() - self.zero


class PersonLink(Link):
    """bench/resume.py's Link, plus what a page does with `welcome` and `ended`, and its
    person told when it closes."""

    page: Person

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.failure: str | None = None  # why this attempt failed, once said
        self.welcomed = False

    def packet(self, text: bytes) -> None:
        if text.startswith(b'42["welcome",'):
            self.page.welcomed(json.loads(text[2:])[1], self)
        elif text.startswith(b'42["ended",'):
            self.page.ended(json.loads(text[2:])[1])
        else:
            super().packet(text)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.page.lost(self)


@dataclass
class Person(Page):
    """One person's page (bench/resume.py's Page: the chat position it holds), with its own
    address, kept connected: a lost connection is followed by reconnects until a welcome."""

    name: str = ""
    address: str = "127.0.0.1"
    url: tuple[str, int] = ("127.0.0.1", 0)
    clock: Clock = field(default_factory=Clock)
    link: PersonLink | None = None  # Page's, its own kind
    ids: set[str | None] = field(default_factory=set)  # every chat message it holds
    texts: set[str | None] = field(default_factory=set)  # and their texts
    lost_at: float | None = None  # when its last welcomed connection ended (the round's clock)
    attempt: int = 0  # failed attempts since it was lost
    away: list[float] = field(default_factory=list)  # seconds away, one per return
    returned: list[float] = field(default_factory=list)  # when it was welcomed again (the round's clock)
    logged_out: str | None = None  # why, if it ever was
    stopped: bool = False
    retry: asyncio.TimerHandle | None = None

    # Page's hooks, called by the Link

    def history(self, payload: dict[str, Any], seconds: float, size: int) -> None:
        messages = [message for message in payload.get("messages") or [] if isinstance(message, dict)]
        self.ids.update(message.get("id") for message in messages)
        self.texts.update(message.get("text") for message in messages)
        super().history(payload, seconds, size)

    def chat(self, message: dict[str, Any]) -> None:
        self.ids.add(message.get("id"))
        self.texts.add(message.get("text"))
        super().chat(message)

    def fail(self, why: str) -> None:
        """The Link's word for an attempt that went wrong (it closes the link next): an
        upgrade not answered 101, a refused connect (`44`), a Socket.IO disconnect (`41`)."""
        link = self.link
        if link is None or link.failure is not None:
            return
        if why.startswith("refused: "):
            try:
                why = "refused: " + str(json.loads(why[len("refused: "):]).get("message"))
            except ValueError:
                pass
            if why.removeprefix("refused: ") in LOGGED_OUT_REFUSALS:
                self.logged_out = self.logged_out or why
        elif why == "told to disconnect":
            # Socket.IO's disconnect is final: a page does not reconnect after it.
            self.logged_out = self.logged_out or "told to disconnect (41)"
        link.failure = re.sub(r"\d+", "N", why)[:70]
        self.clock.failures[link.failure] += 1

    def welcomed(self, welcome: dict[str, Any], link: PersonLink) -> None:
        if link is not self.link:
            return
        if welcome.get("username") != self.name:
            self.logged_out = self.logged_out or f"welcomed as {welcome.get('username')!r}"
        link.welcomed, self.attempt = True, 0
        if self.lost_at is not None:
            now = self.clock.now()
            self.away.append(now - self.lost_at)
            self.returned.append(now)
            self.clock.backs.append(now)
            self.lost_at = None

    def ended(self, ended: dict[str, Any]) -> None:
        reason = ended.get("reason")
        if reason != "shutdown":
            self.logged_out = self.logged_out or f"ended: {reason!r}"
        elif self.lost_at is None:
            self.lost_at = self.clock.now()  # told first: the connection closes next

    # the connection

    def lost(self, link: PersonLink) -> None:
        """Its link closed: a page reconnects after its delay (unless the bench is over)."""
        if link is not self.link:
            return
        if link.welcomed:
            if self.lost_at is None:
                self.lost_at = self.clock.now()
        elif link.failure is None:
            link.failure = "closed before the welcome"
            self.clock.failures[link.failure] += 1
        if self.stopped or self.logged_out:
            return
        delay = reconnect_delay(self.attempt)
        self.attempt += 1
        self.retry = asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(self.connect()))

    async def connect(self) -> None:
        """One attempt, as a page's: the cookie, and the position it holds for the catch-up."""
        self.retry = None
        if self.stopped:
            return
        loop = asyncio.get_running_loop()
        self.clock.attempts.append(self.clock.now())
        auth = {"history": self.position} if self.position else None
        if auth and self.presence:
            auth["presence"] = self.presence
        host, port = self.url
        link = PersonLink(self, host, port, auth, time.perf_counter())
        self.link = link
        loop.call_later(CONNECT_TIMEOUT, self.give_up, link)
        try:
            await asyncio.wait_for(loop.create_connection(lambda: link, host, port, local_addr=(self.address, 0)), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as error:
            link.failure = f"could not connect: {getattr(error, 'strerror', None) or error or 'timed out'}"
            self.clock.failures[link.failure] += 1
            link.connection_lost(None)

    def give_up(self, link: PersonLink) -> None:
        """An attempt not welcomed within CONNECT_TIMEOUT is closed, and the page tries again."""
        if link is self.link and not link.welcomed and not link.closed.done() and link.failure is None:
            link.failure = f"no welcome within {CONNECT_TIMEOUT:g} s"
            self.clock.failures[link.failure] += 1
            link.close()

    def close(self) -> None:
        self.stopped = True
        if self.retry is not None:
            self.retry.cancel()
        if self.link is not None:
            self.link.close()

    @property
    def connected(self) -> bool:
        """Welcomed on its current link, which is open."""
        return self.link is not None and self.link.welcomed and not self.link.closed.done()

    @property
    def back(self) -> bool:
        return self.connected and self.lost_at is None


# --- the cluster and what it runs --------------------------------------------------------------


class TimedCluster(MakeCluster):
    """MakeCluster with the time each line arrived (perf_counter), so that a socket's return
    can be measured from the start of its process's restart."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.line_times: list[float] = []
        super().__init__(*args, env=env)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.line_times.append(time.perf_counter())
            self.lines.append(line.rstrip("\n"))

    def app_pids(self) -> dict[int, int]:
        """The app processes running now, by number: the cluster's children on appN.sock."""
        found: dict[int, int] = {}
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return found
        for pid in children:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"tornado_app" in command:
                match = re.search(rb"app(\d+)\.sock", b" ".join(command))
                if match:
                    found[int(match[1])] = int(pid)
        return found


class CpuSampler:
    """Each app process's CPU seconds every 0.25 s, summed over the pids it had (a restarted
    process is one more pid under the same number)."""

    def __init__(self, cluster: TimedCluster) -> None:
        self.cluster = cluster
        self.samples: list[tuple[float, dict[int, float]]] = []
        self.done: dict[int, float] = {}  # seconds of the pids that ended, per app
        self.last: dict[int, tuple[int, float]] = {}  # app -> (pid, its seconds at the last sample)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    def sample(self) -> None:
        now = {}
        for number, pid in self.cluster.app_pids().items():
            previous = self.last.get(number)
            if previous is not None and previous[0] != pid:
                self.done[number] = self.done.get(number, 0.0) + previous[1]
            try:
                seconds = cpu_seconds(pid)
            except (OSError, IndexError):
                continue
            self.last[number] = (pid, seconds)
        for number, (_, seconds) in self.last.items():
            now[number] = self.done.get(number, 0.0) + seconds
        self.samples.append((time.perf_counter(), now))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    def peaks(self, since: float) -> tuple[dict[int, float], float]:
        """The highest 1 s average CPU (cores) per app and summed, over the samples since `since`."""
        samples = [(at, values) for at, values in self.samples if at >= since]
        per_app: dict[int, float] = {}
        summed = 0.0
        for index, (start, before) in enumerate(samples):
            later = next(((at, values) for at, values in samples[index + 1:] if at - start >= 0.95), None)
            if later is None:
                break
            span = later[0] - start
            total = 0.0
            for number, value in later[1].items():
                used = (value - before.get(number, value)) / span
                per_app[number] = max(per_app.get(number, 0.0), used)
                total += used
            summed = max(summed, total)
        return per_app, summed


@dataclass
class Config:
    sockets: int = 2000
    processes: int = 2
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    rounds: int = 1
    chat_interval: float = 1.0
    timeout: float = 180.0
    concurrency: int = 50  # logins and first connects in flight


class Failed(Exception):
    """Someone was logged out or missed an acked message, or the cluster did not restart."""


@dataclass
class Poster:
    """One more person, who chats through nginx during the restart; every acked chat is one
    that everyone must hold."""

    cookie: str
    url: str
    http: aiohttp.ClientSession
    acked: dict[str, float] = field(default_factory=dict)  # id -> when acked
    unacked: int = 0
    socket: WireSocket | None = None

    async def chat(self, text: str) -> None:
        """One chat, on a socket opened again if the last one was closed; not acked is counted."""
        try:
            if self.socket is None or self.socket.closed.is_set():
                self.socket = await WireSocket.connect(self.http, self.url, self.cookie, origin=self.url, timeout=5)
            ack = await self.socket.call("chat", {"text": text, "id": secrets.token_hex(8)}, timeout=5)
        except (Refused, ConnectionError, TimeoutError, aiohttp.ClientError, OSError, TypeError):
            # (aiohttp's WSMessageTypeError, a TypeError: the connection closed in the handshake)
            self.unacked += 1
            return
        if isinstance(ack, dict) and ack.get("ok") and isinstance(ack.get("message"), dict):
            self.acked[ack["message"]["id"]] = time.perf_counter()
        else:
            self.unacked += 1

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()


class Crowd:
    """N people logged in through the cluster's nginx, each with one socket kept connected."""

    def __init__(self, url: str, count: int, prefix: str = "person", first_address: int = 0) -> None:
        self.url = url
        host, port = url.removeprefix("http://").split(":")
        self.people = [Person(cookie="", name=f"{prefix}{index}", address=address_of(first_address + index),
                              url=(host, int(port)), clock=Clock()) for index in range(count)]

    async def log_in(self, concurrency: int) -> None:
        """Each person logs in through the form from their own address."""

        async def one(index: int) -> None:
            person = self.people[index]
            person.cookie = await log_in_from(self.url, person.address, person.name)

        await bounded(len(self.people), concurrency, one)

    async def connect(self, concurrency: int, within: float) -> None:
        """Every person's first socket, at most `concurrency` at once, each welcomed."""
        gate = asyncio.Semaphore(concurrency)

        async def one(person: Person) -> None:
            async with gate:
                await person.connect()
                await wait_for(lambda: person.connected or person.logged_out is not None, within, f"{person.name} connected")

        await asyncio.gather(*(one(person) for person in self.people))
        wrong = [f"{person.name}: {person.logged_out}" for person in self.people if person.logged_out]
        if wrong:
            raise Failed(f"refused at the first connect: {wrong[:5]}")

    def start_round(self) -> Clock:
        clock = Clock()
        for person in self.people:
            person.clock, person.away, person.returned = clock, [], []
        return clock

    def everyone_back(self) -> bool:
        return all(person.back or person.logged_out for person in self.people)

    def describe(self) -> str:
        """Who is not back, in a few words."""
        away = [person for person in self.people if not (person.back or person.logged_out)]
        states = Counter("connected, not back" if person.connected else
                         "waiting to retry" if person.retry is not None else
                         (person.link.failure or "connecting") if person.link is not None else "never connected"
                         for person in away)
        return (f"{len(away)} of {len(self.people)} not back ({dict(states.most_common(5))}); "
                f"failed attempts: {dict(self.people[0].clock.failures.most_common(5))}")

    def missing(self, acked: set[str]) -> dict[str, int]:
        """Per person who lacks some acked chat, how many."""
        return {person.name: len(acked - person.ids) for person in self.people if not acked <= person.ids}

    def close(self) -> None:
        for person in self.people:
            person.close()


async def log_in_from(url: str, address: str, name: str) -> str:
    """Log in as `name` through the form, from `address`: the Cookie header."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
        return await log_in(http, url, name)


async def wait_for(condition: Callable[[], bool], within: float, what: str) -> float:
    """Wait until `condition()` holds (checked every 0.05 s); Failed after `within` s."""
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > within:
            raise Failed(f"not within {within:g} s: {what}")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


def drain_flags(drain_seconds: float | None) -> list[str]:
    return [] if drain_seconds is None or not CLUSTER_DRAINS else ["--drain-seconds", f"{drain_seconds:g}"]


async def rolling_restart(cluster: TimedCluster, processes: int, within: float) -> tuple[float, list[tuple[float, int]]]:
    """Restart every app process, one at a time; returns the cluster's own total (s) and when
    each app's restart started (perf_counter, app number).

    With a cluster that has the rolling restart: USR1, and its lines. Otherwise the old way:
    SIGTERM to each app in turn, the next once the cluster says it is back."""
    started = time.perf_counter()
    if CLUSTER_ROLLS:
        os.kill(cluster.process.pid, signal.SIGUSR1)
        done = await cluster.next_line(r"rolling restart done in (\d+(?:\.\d+)?) s", within)
        starts = [(at, int(match[1])) for at, line in zip(cluster.line_times, cluster.lines, strict=False)  # a reader thread appends to both
                  if at >= started and (match := re.match(r"rolling restart: app (\d+) draining", line))]
        return float(done[1]), starts
    starts = []
    for number in range(1, processes + 1):
        pid = cluster.app_pids()[number]
        starts.append((time.perf_counter(), number))
        os.kill(pid, signal.SIGTERM)
        await cluster.next_line(rf"app {number} back \(pid \d+\)", within)
    return time.perf_counter() - started, starts


def per_second(times: list[float]) -> list[int]:
    """How many events in each 1 s bucket, from the round's start to the last event."""
    counts = Counter(int(at // 1) for at in times)
    return [counts.get(second, 0) for second in range(max(counts, default=-1) + 1)]


def bucket_peak(times: list[float]) -> int:
    """The most events in one 1 s bucket (times in seconds from the round's start)."""
    return max(Counter(int(at // 1) for at in times).values(), default=0)


async def one_round(cluster: TimedCluster, crowd: Crowd, poster: Poster, sampler: CpuSampler, config: Config,
                    drain_seconds: float | None) -> dict[str, Any]:
    """A rolling restart with chats during it; every person back and holding every acked chat."""
    clock = crowd.start_round()
    acked_before = set(poster.acked)
    stop_chatting = asyncio.Event()

    async def chat_meanwhile() -> None:
        number = 0
        while not stop_chatting.is_set():
            number += 1
            await poster.chat(f"{TEXT} ({number})")
            try:
                await asyncio.wait_for(stop_chatting.wait(), config.chat_interval)
            except TimeoutError:
                pass

    chatting = asyncio.ensure_future(chat_meanwhile())
    try:
        total_by_cluster, starts = await rolling_restart(cluster, config.processes, config.timeout)
        try:
            await wait_for(crowd.everyone_back, config.timeout, "every socket back after the rolling restart")
        except Failed as failed:
            raise Failed(f"{failed}: {crowd.describe()}; the cluster said {cluster.lines[-6:]}") from None
    finally:
        stop_chatting.set()
        await chatting
    everyone_back = max((person.returned[-1] for person in crowd.people if person.returned), default=clock.now())
    acked = set(poster.acked)
    try:
        await wait_for(lambda: not crowd.missing(acked), 30, "every acked chat held by every socket")
    except Failed:
        pass  # counted below
    missing = crowd.missing(acked)
    logged_out = {person.name: person.logged_out for person in crowd.people if person.logged_out}
    away = [seconds for person in crowd.people for seconds in person.away]
    since_restart = []
    start_times = sorted(at - clock.zero for at, _ in starts)
    for person in crowd.people:
        for returned, seconds in zip(person.returned, person.away, strict=True):
            lost = returned - seconds
            began = max((start for start in start_times if start <= lost + 0.5), default=0.0)
            since_restart.append(returned - began)
    per_app, summed = sampler.peaks(clock.zero)
    return {
        "drain_seconds": drain_seconds,
        "reconnects": len(clock.backs),
        "sockets_back": sum(1 for person in crowd.people if person.returned),
        "away_p50_s": round(statistics.median(away), 2) if away else 0.0,
        "away_p99_s": round(percentile(away, 0.99), 2) if away else 0.0,
        "away_max_s": round(max(away), 2) if away else 0.0,
        "since_restart_p50_s": round(statistics.median(since_restart), 2) if since_restart else 0.0,
        "since_restart_p99_s": round(percentile(since_restart, 0.99), 2) if since_restart else 0.0,
        "all_back_s": round(everyone_back, 2),
        "restart_total_s": round(total_by_cluster, 2),
        "peak_reconnects_per_s": bucket_peak(clock.backs),
        "peak_attempts_per_s": bucket_peak(clock.attempts),
        "reconnects_by_second": per_second(clock.backs),
        "restart_lines": [f"{at - clock.zero:.1f} s: {line}" for at, line in zip(cluster.line_times, cluster.lines, strict=False)
                          if at >= clock.zero],
        "failed_attempts": sum(clock.failures.values()),
        "failures": dict(clock.failures.most_common(6)),
        "peak_cpu_per_app": {str(number): round(value, 2) for number, value in sorted(per_app.items())},
        "peak_cpu_max_app": round(max(per_app.values(), default=0.0), 2),
        "peak_cpu_summed": round(summed, 2),
        "chats_acked": len(acked - acked_before),
        "chats_not_acked": poster.unacked,
        "logged_out": len(logged_out),
        "logged_out_examples": dict(list(logged_out.items())[:5]),
        "messages_lost": len({message for person in crowd.people for message in acked - person.ids}),
        "sockets_missing_messages": len(missing),
    }


async def run_mode(config: Config, drain_seconds: float | None, workdir: Path) -> list[dict[str, Any]]:
    """One cluster with `drain_seconds` for its apps, its rounds of rolling restarts."""
    cluster = TimedCluster("--processes", str(config.processes), "--port", "0", *drain_flags(drain_seconds))
    crowd: Crowd | None = None
    poster: Poster | None = None
    sampler = CpuSampler(cluster)
    try:
        if not cluster.serving:
            raise Failed(f"make cluster did not start: {cluster.first_line!r} {cluster.stderr()[-2000:]}")
        url = cluster.url
        drain = "stop at once" if drain_seconds is None else f"--drain-seconds {drain_seconds:g}"
        print(f"  {url}: {config.processes} processes, {drain}; "
              f"{config.sockets} people log in ...", flush=True)
        started = time.perf_counter()
        crowd = Crowd(url, config.sockets)
        await crowd.log_in(config.concurrency)
        await crowd.connect(config.concurrency, config.timeout)
        print(f"  logged in and connected in {time.perf_counter() - started:.1f} s", flush=True)
        cookie = await log_in_from(url, POSTER_ADDRESS, "poster")
        connector = aiohttp.TCPConnector(local_addr=(POSTER_ADDRESS, 0), limit=0)
        poster = Poster(cookie, url, aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()))
        await poster.chat("before the rolling restart")
        await wait_for(lambda: not crowd.missing(set(poster.acked)), 30, "the first chat reached everyone")
        sampler.start()
        rows = []
        for number in range(config.rounds):
            await asyncio.sleep(2)  # settled: the CPU peak is the restart's
            row = await one_round(cluster, crowd, poster, sampler, config, drain_seconds)
            rows.append(row)
            print(f"  round {number + 1}: every socket back {row['all_back_s']} s after the start "
                  f"(cluster: done in {row['restart_total_s']} s), peak {row['peak_reconnects_per_s']} reconnects/s, "
                  f"{row['logged_out']} logged out, {row['messages_lost']} messages lost", flush=True)
        return rows
    finally:
        await sampler.stop()
        if crowd is not None:
            crowd.close()
        if poster is not None:
            await poster.close()
            await poster.http.close()
        cluster.close()


LABELS = {  # figure: (label, format)
    "away_p50_s": ("a socket away (closed -> welcomed): p50 (s)", ".2f"),
    "away_p99_s": ("a socket away: p99 (s)", ".2f"),
    "away_max_s": ("a socket away: max (s)", ".2f"),
    "since_restart_p50_s": ("its process's restart -> welcomed: p50 (s)", ".2f"),
    "since_restart_p99_s": ("its process's restart -> welcomed: p99 (s)", ".2f"),
    "all_back_s": ("every socket back, from USR1 (s)", ".1f"),
    "restart_total_s": ("rolling restart, as the cluster says (s)", ".1f"),
    "reconnects": ("reconnects (welcomed again)", ",.0f"),
    "peak_reconnects_per_s": ("peak reconnects per second", ",.0f"),
    "peak_attempts_per_s": ("peak connect attempts per second", ",.0f"),
    "failed_attempts": ("failed connect attempts (retried)", ",.0f"),
    "peak_cpu_max_app": ("peak CPU of one app (cores, 1 s avg)", ".2f"),
    "peak_cpu_summed": ("peak CPU of the apps, summed (cores)", ".2f"),
    "chats_acked": ("chats acked during the restart", ",.0f"),
    "logged_out": ("people logged out", ",.0f"),
    "messages_lost": ("acked messages lost", ",.0f"),
}


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {key: statistics.median(row[key] for row in rows) for key in LABELS}


def table(config: Config, modes: dict[str, list[dict[str, Any]]]) -> str:
    names = list(modes)
    medians = {name: summary(rows) for name, rows in modes.items()}
    lines = [
        (f"{config.sockets} sockets over {config.processes} processes (make cluster), a rolling restart; "
         f"{config.rounds} round(s) per mode{', medians' if config.rounds > 1 else ''}"),
        f"{'':<46}" + "".join(f"{name:>18}" for name in names),
    ]
    for key, (label, form) in LABELS.items():
        lines.append(f"{label:<46}" + "".join(f"{medians[name][key]:>18{form}}" for name in names))
    return "\n".join(lines)


def failures_of(modes: dict[str, list[dict[str, Any]]]) -> list[str]:
    """What went wrong for people: anyone logged out or any acked message lost."""
    wrong = []
    for name, rows in modes.items():
        for number, row in enumerate(rows, 1):
            if row["logged_out"] or row["messages_lost"]:
                wrong.append(f"{name}, round {number}: {row['logged_out']} logged out {row['logged_out_examples']}, "
                             f"{row['messages_lost']} acked messages lost (missing on {row['sockets_missing_messages']} sockets)")
    return wrong


async def run(config: Config, workdir: Path) -> dict[str, list[dict[str, Any]]]:
    modes: dict[str, list[dict[str, Any]]] = {}
    plan: list[tuple[str, float | None]] = [("at once (0 s)", 0.0), (f"drained ({config.drain_seconds:g} s)", config.drain_seconds)]
    if not CLUSTER_DRAINS:
        print("  (this checkout's make cluster has no --drain-seconds: its apps stop at once; one mode only)", flush=True)
        plan = [("at once (today)", None)]
    for name, drain_seconds in plan:
        print(f"{name}:", flush=True)
        modes[name] = await run_mode(config, drain_seconds, workdir)
    return modes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=2000, help="people, one socket each (default: %(default)s)")
    parser.add_argument("--processes", type=int, default=2, help="app processes in the cluster (default: %(default)s)")
    parser.add_argument("--drain-seconds", type=float, default=DEFAULT_DRAIN_SECONDS,
                        help="the drained mode's --drain-seconds, against 0 (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=1, help="rolling restarts per mode; medians are printed (default: %(default)s)")
    parser.add_argument("--chat-interval", type=float, default=1.0, help="seconds between the poster's chats (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds for every socket to be back (default: %(default)s)")
    args = parser.parse_args()
    if args.sockets < 1 or args.rounds < 1 or args.processes < 2 or args.drain_seconds <= 0:
        parser.error("--sockets and --rounds take 1 or more, --processes 2 or more, --drain-seconds more than 0")
    config = Config(sockets=args.sockets, processes=args.processes, drain_seconds=args.drain_seconds, rounds=args.rounds,
                    chat_interval=args.chat_interval, timeout=args.timeout)
    raise_open_files_limit()  # the cluster's processes inherit it
    with tempfile.TemporaryDirectory(prefix="bench-rolling-") as workdir:
        try:
            modes = asyncio.run(run(config, Path(workdir)))
        except Failed as failed:
            parser.exit(1, f"FAILED: {failed}\n")
    print(table(config, modes))
    print(json.dumps({"sockets": config.sockets, "processes": config.processes, "rounds": config.rounds,
                      "modes": modes, "cpus": os.cpu_count(), "python": platform.python_version(),
                      "cluster_rolls": CLUSTER_ROLLS, "cluster_drains": CLUSTER_DRAINS}, sort_keys=True))
    wrong = failures_of(modes)
    if wrong:
        parser.exit(1, "FAILED: " + "\n  ".join(wrong) + "\n")


if __name__ == "__main__":
    main()
