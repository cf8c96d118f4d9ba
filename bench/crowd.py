#!/usr/bin/env python3
"""A crowd: N people online, C of them coming and going each second. What does each one
receive, what does the server spend, and what does a wave of K sockets closing at once cost?

Per N (a fresh server each time, pinned to CPU 0; this process on CPU 1, as bench/bench.py):
N people each log in and hold one socket (the bare wire client of tests/support/wire.py),
reading everything. For `--seconds`, C people a second churn (one socket closes; a new person logs in
and connects, or the same person reconnects, in turn) while one more person asks `whoami`
every 20 ms and a newcomer connects once a second, from a process of their own (at thousands
of people this one is busier than the server). Then K = min(--wave, N) of the held sockets drop their TCP connections at once,
and the server's CPU is summed until it is idle again.

    .venv/bin/python bench/crowd.py                 # N = 100, 500, 1000, 2000, 5000; memory mode
    .venv/bin/python bench/crowd.py --redis         # the same in the Redis mode
    .venv/bin/python bench/crowd.py --people 100,500 --churn 20 --seconds 5

Bytes are the characters of the text frames received (the names here are ASCII), counted over
the window for every socket of the crowd (newcomers included) and divided by N and seconds.
"State to a newcomer" is the payload of the first presence-like event after `welcome`.
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
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench import Server
from deploy.services import RedisServer
from tests.support.forms import log_in
from tests.support.measure import (
    CLIENT_CPU,
    bounded,
    percentile,
    pin,
    raise_open_files_limit,
    rss_kib,
)
from tests.support.wire import WireSocket

EVENT_NAME = re.compile(r'42(?:/[^,]*,)?\d*\["([^"]+)"')
FIRST_EVENTS = 6  # events whose names and sizes each socket keeps (the newcomer's state is among them)


class CrowdSocket(WireSocket):
    """A wire socket that counts what it receives and decodes only acks (a held socket need
    not parse a presence list to have received it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0
        self.cookie = ""
        self.first_events: list[tuple[str, int]] = []

    def _dispatch(self, packet: str) -> None:
        self.received += len(packet)
        if packet.startswith("42") and len(self.first_events) < FIRST_EVENTS:
            match = EVENT_NAME.match(packet)
            if match:
                prefix = match.end() + 1  # the comma after the name
                self.first_events.append((match.group(1), len(packet[prefix:-1].encode())))
        if packet.startswith("43"):
            super()._dispatch(packet)

    def state_size(self) -> int | None:
        """The payload size of the first presence-like event after `welcome`, if it came."""
        names = [name for name, _ in self.first_events]
        if "welcome" not in names:
            return None
        for name, size in self.first_events[names.index("welcome") + 1:]:
            if "presence" in name:
                return size
        return None


@dataclass
class Config:
    churn: float = 10.0
    seconds: float = 10.0
    wave: int = 5000
    redis: bool = False
    pin: bool = True
    concurrency: int = 50


class Crowd:
    """One N: a fresh server, the crowd, the churn window, the wave."""

    def __init__(self, config: Config, server: Server, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.server = server
        self.http = http
        self.people = 0
        self.held: list[CrowdSocket] = []
        self.busy: set[int] = set()
        self.gone_bytes = 0
        self.connect_ms: list[float] = []
        self.state_sizes: list[int] = []

    async def person(self, cookie: str | None = None) -> CrowdSocket:
        if cookie is None:
            self.people += 1
            cookie = await log_in(self.http, self.server.url, f"crowd{self.people}")
        socket = await CrowdSocket.connect(self.http, self.server.url, cookie, origin=self.server.url)
        socket.cookie = cookie
        return socket

    async def replace(self, index: int, newcomer: bool) -> None:
        old = self.held[index]
        await old.close()
        self.gone_bytes += old.received
        cookie = old.cookie
        if newcomer:
            self.people += 1
            cookie = await log_in(self.http, self.server.url, f"crowd{self.people}")
        started = time.perf_counter()
        socket = await self.person(cookie)
        if newcomer:
            self.connect_ms.append((time.perf_counter() - started) * 1000)
        self.held[index] = socket
        self.busy.discard(index)
        if newcomer:
            for _ in range(100):  # up to 2 s for the state to arrive
                size = socket.state_size()
                if size is not None:
                    self.state_sizes.append(size)
                    break
                await asyncio.sleep(0.02)

    async def churn(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        next_at, count = loop.time(), 0
        while not stop.is_set():
            free = [index for index in random.sample(range(len(self.held)), min(8, len(self.held))) if index not in self.busy]
            if free:
                self.busy.add(free[0])
                task = asyncio.ensure_future(self.replace(free[0], newcomer=count % 2 == 0))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                count += 1
            next_at += 1 / self.config.churn
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        if tasks:
            await asyncio.gather(*tasks)

    async def probe(self, cookie: str) -> dict[str, list[float]]:
        """`whoami` latencies and newcomers' connect times, measured by a process of their
        own: this one, reading N sockets, is far busier than the server at thousands of
        people, and its own delays would be taken for the server's."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(ROOT / "bench" / "crowd.py"), "--probe", self.server.url, cookie, str(self.config.seconds),
            stdout=asyncio.subprocess.PIPE)
        out, _ = await process.communicate()
        return json.loads(out.decode().strip().splitlines()[-1])

    async def wave(self) -> tuple[int, float, float]:
        """K held sockets abort at once; the server's CPU seconds and wall seconds until it
        is idle again (two quarter-second samples in a row under 10 ms of CPU)."""
        count = min(self.config.wave, len(self.held))
        if count == 0:
            return 0, 0.0, 0.0
        await asyncio.sleep(1.0)  # the churn's last broadcasts settle
        before, started = self.server.cpu_seconds(), time.perf_counter()
        for socket in self.held[:count]:
            socket.abort()
        last, quiet = before, 0
        while quiet < 2 and time.perf_counter() - started < 300:
            await asyncio.sleep(0.25)
            now = self.server.cpu_seconds()
            quiet = quiet + 1 if now - last < 0.01 else 0
            last = now
        return count, last - before, time.perf_counter() - started - 0.5

    async def measure(self, n: int) -> dict[str, Any]:
        self.held = await bounded(n, self.config.concurrency, lambda _: self.person())
        await asyncio.sleep(1.0)
        self.people += 1
        prober_cookie = await log_in(self.http, self.server.url, f"crowd{self.people}")  # one more person
        for socket in self.held:
            socket.received = 0
        stop = asyncio.Event()
        cpu_before, started = self.server.cpu_seconds(), time.perf_counter()
        churning = asyncio.ensure_future(self.churn(stop))
        probing = asyncio.ensure_future(self.probe(prober_cookie))
        await asyncio.sleep(self.config.seconds)
        elapsed, cpu = time.perf_counter() - started, self.server.cpu_seconds() - cpu_before
        received = sum(socket.received for socket in self.held) + self.gone_bytes
        rss = rss_kib(self.server.process.pid)
        stop.set()
        await churning
        probed = await probing
        latencies, self.connect_ms = probed["whoami_ms"], [*self.connect_ms, *probed["connect_ms"]]
        wave_sockets, wave_cpu, wave_wall = await self.wave()
        await asyncio.gather(*(socket.close() for socket in self.held[wave_sockets:]))
        return {
            "people": n,
            "bytes_per_socket_per_s": round(received / n / elapsed, 1),
            "server_cpu_percent": round(cpu / elapsed * 100, 1),
            "whoami_p50_ms": round(statistics.median(latencies), 3) if latencies else None,
            "whoami_p99_ms": round(percentile(latencies, 0.99), 3) if latencies else None,
            "server_rss_mib": round(rss / 1024, 1),
            "newcomer_state_bytes": round(statistics.median(self.state_sizes)) if self.state_sizes else None,
            "newcomer_connect_p50_ms": round(statistics.median(self.connect_ms), 2) if self.connect_ms else None,
            "wave_sockets": wave_sockets,
            "wave_server_cpu_s": round(wave_cpu, 2),
            "wave_until_idle_s": round(wave_wall, 2),
        }


async def measure(n: int, config: Config, redis_url: str | None = None) -> dict[str, Any]:
    """One N against a fresh server (a fresh crowd: a wave leaves none)."""
    if redis_url is not None:
        os.environ["TORNADO_APP_REDIS_URL"] = redis_url  # never on a command line (see deploy/services.py)
        os.environ.setdefault("TORNADO_APP_COOKIE_SECRET", secrets.token_urlsafe(32))
    sizing = argparse.Namespace(users=n + int(config.churn * config.seconds) + 10)
    server = Server(sizing, [])
    if not config.pin:
        os.sched_setaffinity(server.process.pid, range(os.cpu_count() or 1))
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
            return await Crowd(config, server, http).measure(n)
    finally:
        server.stop()
        os.environ.pop("TORNADO_APP_REDIS_URL", None)


def run(people: list[int], config: Config) -> list[dict[str, Any]]:
    raise_open_files_limit()
    if config.pin:
        pin(0, CLIENT_CPU)
    rows = []
    for n in people:
        with tempfile.TemporaryDirectory(prefix="crowd-redis-") as workdir:
            redis = RedisServer(Path(workdir)) if config.redis else None  # a fresh one per N
            try:
                rows.append(asyncio.run(measure(n, config, redis.url if redis else None)))
            finally:
                if redis is not None:
                    redis.stop()
    return rows


LABELS = {
    "bytes_per_socket_per_s": "bytes received per held socket per second",
    "server_cpu_percent": "server CPU % (of one core)",
    "whoami_p50_ms": "whoami p50 (ms), one more person",
    "whoami_p99_ms": "whoami p99 (ms)",
    "server_rss_mib": "server RSS (MiB)",
    "newcomer_state_bytes": "state a newcomer receives (bytes)",
    "newcomer_connect_p50_ms": "newcomer connect p50 (ms)",
    "wave_sockets": "wave: sockets aborted at once (K)",
    "wave_server_cpu_s": "wave: server CPU until idle (s)",
    "wave_until_idle_s": "wave: wall time until idle (s)",
}


async def probe(url: str, cookie: str, seconds: float) -> None:
    """(Run as `crowd.py --probe URL COOKIE SECONDS`, by Crowd.probe.) Ask `whoami` every
    20 ms and connect a newcomer once a second, for `seconds`; print the times as JSON."""
    if hasattr(os, "sched_setaffinity"):
        pin(0, CLIENT_CPU)
    whoami_ms: list[float] = []
    connect_ms: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
        asker = await WireSocket.connect(http, url, cookie, origin=url)
        deadline = time.perf_counter() + seconds
        next_newcomer = time.perf_counter() + 0.5
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await asker.call("whoami", timeout=30)
            except TimeoutError:
                pass  # counted as the 30 s it waited
            whoami_ms.append((time.perf_counter() - started) * 1000)
            if time.perf_counter() >= next_newcomer:
                next_newcomer += 1.0
                newcomer_cookie = await log_in(http, url, f"newcomer{len(connect_ms)}-{secrets.token_hex(3)}")
                started = time.perf_counter()
                newcomer = await WireSocket.connect(http, url, newcomer_cookie, origin=url)
                connect_ms.append((time.perf_counter() - started) * 1000)
                await newcomer.close()
            await asyncio.sleep(0.02)
        await asker.close()
    print(json.dumps({"whoami_ms": whoami_ms, "connect_ms": connect_ms}))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--probe":
        asyncio.run(probe(sys.argv[2], sys.argv[3], float(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", default="100,500,1000,2000,5000", help="the N to measure, comma-separated (default: %(default)s)")
    parser.add_argument("--churn", type=float, default=10.0, help="people leaving and arriving per second (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window per N (default: %(default)s)")
    parser.add_argument("--wave", type=int, default=5000, help="sockets that drop at once after the window, at most N (default: %(default)s)")
    parser.add_argument("--redis", action="store_true", help="the server's Redis mode, on a redis-server started for each N")
    args = parser.parse_args()
    people = [int(n) for n in args.people.split(",") if n]
    config = Config(churn=args.churn, seconds=args.seconds, wave=args.wave, redis=args.redis)
    rows = run(people, config)
    print(f"mode: {'redis' if args.redis else 'memory'}; churn {args.churn:g}/s; {args.seconds:g} s per N")
    print(f"{'N':<46}" + "".join(f"{row['people']:>10}" for row in rows))
    for key, label in LABELS.items():
        print(f"{label:<46}" + "".join(f"{row[key]!s:>10}" for row in rows))
    print(json.dumps({"mode": "redis" if args.redis else "memory", "churn_per_s": args.churn, "seconds": args.seconds,
                      "python": platform.python_version(), "cpus": os.cpu_count(), "rows": rows}, sort_keys=True))


if __name__ == "__main__":
    main()
