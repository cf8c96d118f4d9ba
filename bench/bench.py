#!/usr/bin/env python3
"""Benchmark the plain server: connect rate and latency, refusals, whoami round trip,
fan-out, memory per idle socket and logout-to-disconnect time, and the server CPU each
operation costs (per connect, per refused connect, per whoami, per chat fanned out: read from
/proc around the operations only, so it holds when the client is the slower side).

The server runs in its own process pinned to CPU 0, once with its fast path on and once off
(--no-fast-path, see tornado_app/patches/engineio_server.py); this process drives it from CPU 1 with the bare
wire client in tests/support/wire.py (python-socketio's AsyncClient would make the client the
bottleneck). It prints the two runs side by side, then one JSON line.

    make bench                     # this with its defaults, then with --redis, then bench/crowd.py
    .venv/bin/python bench/bench.py --redis   # the same against the Redis mode, plus the
                                               # cross-process figures (a second process)
    .venv/bin/python bench/bench.py --paths on               # the fast path only (default: on,off)
    .venv/bin/python bench/bench.py --metrics                # with --metrics-address (its cost)
    .venv/bin/python bench/bench.py --help
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.app_process import StartedApp
from deploy.services import RedisServer, ServiceMissing
from tests.support.forms import log_in, logout_token, post_logout
from tests.support.measure import (
    CLIENT_CPU,
    SERVER_CPU,
    bounded,
    cpu_seconds,
    percentile,
    pin,
    raise_open_files_limit,
    rss_kib,
)
from tests.support.wire import Refused, WireSocket


class Server:
    """`python -m tornado_app` on a free port (deploy/app_process.py: once it is ready, or
    AppDidNotStart with the end of its log), pinned to its own CPU."""

    def __init__(self, args: argparse.Namespace, extra_args: list[str]) -> None:
        self.app = StartedApp("--port", "0", "--log-level", "warning",
                              "--max-sessions", str(max(10_000, args.users * 4)),
                              # every simulated user comes from 127.0.0.1: lift the per-address caps and rates
                              "--max-connections-per-ip", "1000000", "--max-sockets-per-ip", "1000000",
                              "--login-rate", "off", "--connect-rate", "off", "--chat-rate", "off",
                              "--drain-seconds", "0",  # stopped at the end, its sockets at once: a drain is not measured here
                              *extra_args)
        self.process = self.app.process
        self.url = self.app.url
        self.pinned = pin(self.process.pid, SERVER_CPU)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.app.stop()
        self.app.close()


class Bench:
    def __init__(self, args: argparse.Namespace, server: Server, http: aiohttp.ClientSession, server_args: list[str]) -> None:
        self.args = args
        self.server = server
        self.server_args = server_args
        self.http = http
        self.cookies: list[str] = []
        self.results: dict[str, Any] = {}

    async def connect(self, cookie: str | None) -> WireSocket:
        return await WireSocket.connect(self.http, self.server.url, cookie, origin=self.server.url)  # as a browser on the page sends it

    async def log_in_users(self) -> None:
        self.cookies = await bounded(self.args.users, 10, lambda i: log_in(self.http, self.server.url, f"user{i}"))

    def cookie(self, index: int) -> str:
        return self.cookies[index % len(self.cookies)]

    async def phase_rss(self) -> None:
        count = self.args.rss_sockets
        for index in range(20):  # warm-up
            await (await self.connect(self.cookie(index))).close()
        await asyncio.sleep(0.5)
        before = rss_kib(self.server.process.pid)
        sockets = await bounded(count, 50, lambda i: self.connect(self.cookie(i)))
        await asyncio.sleep(1.0)
        after = rss_kib(self.server.process.pid)
        self.results["rss_kb_per_socket"] = round((after - before) / count, 2)
        self.results["rss_kb_idle"] = before
        await asyncio.gather(*(socket.close() for socket in sockets))

    async def phase_connect_serial(self) -> None:
        latencies = []
        for index in range(self.args.serial_connects):
            started = time.perf_counter()
            socket = await self.connect(self.cookie(index))
            latencies.append((time.perf_counter() - started) * 1000)
            await socket.close()
        self.results["connect_unloaded_p50_ms"] = round(statistics.median(latencies), 2)

    async def phase_connect(self) -> None:
        latencies: list[float] = []

        async def connect_welcome_disconnect(index: int) -> None:
            started = time.perf_counter()
            socket = await self.connect(self.cookie(index))
            latencies.append((time.perf_counter() - started) * 1000)
            await socket.close()

        cpu_before, started = self.server.cpu_seconds(), time.perf_counter()
        await bounded(self.args.connects, self.args.concurrency, connect_welcome_disconnect)
        elapsed = time.perf_counter() - started
        self.results["connect_per_s"] = round(self.args.connects / elapsed, 1)
        self.results["connect_p50_ms"] = round(statistics.median(latencies), 2)
        self.results["connect_p99_ms"] = round(percentile(latencies, 0.99), 2)
        server_cpu = self.server.cpu_seconds() - cpu_before
        self.results["connect_server_cpu_util"] = round(server_cpu / elapsed, 2)
        self.results["connect_server_cpu_ms"] = round(server_cpu / self.args.connects * 1000, 3)

    async def phase_reject(self) -> None:
        forged = 'session="2|1:0|10:1700000000|7:session|44:Zm9yZ2VkZm9yZ2VkZm9yZ2VkZm9yZ2VkZm9yZ2VkZm9yZ2VkZm8=|' + "0" * 64 + '"'
        tampered = self.cookies[0][:-3] + ("0" if self.cookies[0][-3] != "0" else "1") + self.cookies[0][-2:]
        kinds = [None, forged, tampered]
        wrongly_accepted = 0

        async def attempt(index: int) -> None:
            nonlocal wrongly_accepted
            try:
                socket = await self.connect(kinds[index % len(kinds)])
            except Refused:
                return
            wrongly_accepted += 1
            await socket.close()

        cpu_before, started = self.server.cpu_seconds(), time.perf_counter()
        await bounded(self.args.rejects, self.args.concurrency, attempt)
        self.results["reject_per_s"] = round(self.args.rejects / (time.perf_counter() - started), 1)
        self.results["reject_server_cpu_ms"] = round((self.server.cpu_seconds() - cpu_before) / self.args.rejects * 1000, 3)
        self.results["reject_wrongly_accepted"] = wrongly_accepted

    async def phase_rtt(self) -> None:
        socket = await self.connect(self.cookie(0))
        for _ in range(200):
            await socket.call("whoami")
        latencies = []
        cpu_before = self.server.cpu_seconds()  # the timed round trips only: no connect, no warm-up
        for _ in range(self.args.rtt):
            started = time.perf_counter()
            await socket.call("whoami")
            latencies.append((time.perf_counter() - started) * 1000)
        self.results["rtt_server_cpu_ms"] = round((self.server.cpu_seconds() - cpu_before) / self.args.rtt * 1000, 4)
        await socket.close()
        self.results["rtt_p50_ms"] = round(statistics.median(latencies), 3)
        self.results["rtt_p99_ms"] = round(percentile(latencies, 0.99), 3)

    async def phase_fanout(self) -> None:
        clients = await bounded(self.args.fanout_clients, 50, lambda i: self.connect(self.cookie(i)))
        sender = clients[0]
        times = []
        cpu_before = self.server.cpu_seconds()  # the chats only: the clients are connected already
        for number in range(self.args.fanout_msgs):
            text = f"fan-out {number}"
            started = time.perf_counter()
            await sender.emit("chat", {"text": text})
            for client in clients:
                while (await client.next("chat"))["text"] != text:
                    pass
            times.append((time.perf_counter() - started) * 1000)
        self.results["fanout_server_cpu_ms"] = round((self.server.cpu_seconds() - cpu_before) / self.args.fanout_msgs * 1000, 3)
        self.results["fanout_clients"] = len(clients)
        self.results["fanout_ms"] = round(statistics.median(times), 2)
        await asyncio.gather(*(client.close() for client in clients))

    async def phase_logout(self) -> None:
        times = []
        for trial in range(self.args.logout_trials):
            cookie = await log_in(self.http, self.server.url, f"leaver{trial}")
            socket = await self.connect(cookie)
            token = await logout_token(self.http, self.server.url, cookie)  # the page is open already
            started = time.perf_counter()
            status = await post_logout(self.http, self.server.url, cookie, token)
            await asyncio.wait_for(socket.closed.wait(), 5)
            times.append((time.perf_counter() - started) * 1000)
            assert status == 303
            try:
                await (await self.connect(cookie)).close()
                self.results["logout_reconnect_refused"] = False
            except Refused:
                self.results.setdefault("logout_reconnect_refused", True)
        self.results["logout_disconnect_ms"] = round(statistics.median(times), 2)


    async def phase_cross(self) -> None:
        """With --redis: a second process B on the same Redis. A chat sent on A until it
        arrives on B, and a logout on A until B has closed that session's socket."""
        if "--redis-url" not in self.server_args:
            return
        other = Server(self.args, self.server_args)
        try:
            listener = await WireSocket.connect(self.http, other.url, self.cookie(1), origin=other.url)
            sender = await self.connect(self.cookie(0))
            chat_times = []
            for number in range(200):
                text = f"across {number}"
                started = time.perf_counter()
                await sender.emit("chat", {"text": text})
                while (await listener.next("chat"))["text"] != text:
                    pass
                chat_times.append((time.perf_counter() - started) * 1000)
            logout_times = []
            for trial in range(self.args.logout_trials):
                cookie = await log_in(self.http, self.server.url, f"crosser{trial}")
                on_other = await WireSocket.connect(self.http, other.url, cookie, origin=other.url)
                token = await logout_token(self.http, self.server.url, cookie)
                started = time.perf_counter()
                assert await post_logout(self.http, self.server.url, cookie, token) == 303
                await asyncio.wait_for(on_other.closed.wait(), 5)
                logout_times.append((time.perf_counter() - started) * 1000)
            self.results["cross_chat_p50_ms"] = round(statistics.median(chat_times), 3)
            self.results["cross_logout_disconnect_ms"] = round(statistics.median(logout_times), 2)
            await sender.close()
            await listener.close()
        finally:
            other.stop()


PHASES = ["rss", "connect_serial", "connect", "reject", "rtt", "fanout", "logout", "cross"]
LABELS = {
    "connect_per_s": "authenticated connects per second",
    "connect_p50_ms": "connect latency p50 under load (ms)",
    "connect_p99_ms": "connect latency p99 under load (ms)",
    "connect_server_cpu_ms": "server CPU per connect (ms)",
    "connect_unloaded_p50_ms": "one-at-a-time connect p50 (ms)",
    "reject_per_s": "refused connects per second",
    "reject_wrongly_accepted": "refused connects wrongly accepted",
    "reject_server_cpu_ms": "server CPU per refused connect (ms)",
    "rtt_p50_ms": "whoami round trip p50 (ms)",
    "rtt_p99_ms": "whoami round trip p99 (ms)",
    "rtt_server_cpu_ms": "server CPU per whoami round trip (ms)",
    "fanout_ms": "fan-out of one chat to K clients (ms)",
    "fanout_server_cpu_ms": "server CPU per chat fanned out to K clients (ms)",
    "rss_kb_per_socket": "server memory per idle socket (KiB)",
    "logout_disconnect_ms": "logout (POST) to disconnect p50 (ms)",
    "cross_chat_p50_ms": "chat on A until it arrives on B, p50 (ms)",
    "cross_logout_disconnect_ms": "logout (POST) on A until the socket on B is gone, p50 (ms)",
}


async def run(args: argparse.Namespace, server_args: list[str]) -> dict[str, Any]:
    raise_open_files_limit()
    client_pinned = pin(0, CLIENT_CPU)
    server = Server(args, server_args)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    try:
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
            bench = Bench(args, server, http, server_args)
            await bench.log_in_users()
            for phase in args.phases:
                started = time.perf_counter()
                await getattr(bench, f"phase_{phase}")()
                bench.results.setdefault("phase_seconds", {})[phase] = round(time.perf_counter() - started, 2)
    finally:
        server.stop()
    bench.results["mode"] = "redis" if "--redis-url" in server_args else "memory"
    bench.results["fast_path"] = "--no-fast-path" not in server_args
    bench.results["machine"] = {
        "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "server_pinned_cpu": SERVER_CPU if server.pinned else None, "client_pinned_cpu": CLIENT_CPU if client_pinned else None,
    }
    bench.results["sizes"] = {name: getattr(args, name) for name in ("connects", "concurrency", "rejects", "rtt", "fanout_clients", "fanout_msgs", "rss_sockets", "logout_trials", "serial_connects", "users")}
    return bench.results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connects", type=int, default=2000, help="authenticated connects in the rate phase (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=50, help="connects in flight at once (default: %(default)s)")
    parser.add_argument("--rejects", type=int, default=1500, help="connects with no, forged or tampered cookie (default: %(default)s)")
    parser.add_argument("--rtt", type=int, default=5000, help="sequential whoami round trips (default: %(default)s)")
    parser.add_argument("--fanout-clients", type=int, default=500, help="clients receiving each chat (default: %(default)s)")
    parser.add_argument("--fanout-msgs", type=int, default=20, help="chats sent in the fan-out phase (default: %(default)s)")
    parser.add_argument("--rss-sockets", type=int, default=1000, help="idle sockets for the memory phase (default: %(default)s)")
    parser.add_argument("--logout-trials", type=int, default=20, help="logouts timed (default: %(default)s)")
    parser.add_argument("--serial-connects", type=int, default=100, help="one-at-a-time connects timed (default: %(default)s)")
    parser.add_argument("--users", type=int, default=50, help="distinct logged-in users the sockets belong to (default: %(default)s)")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of: " + ", ".join(PHASES))
    parser.add_argument("--paths", default="on,off", help="the server's fast path in each run, side by side: on, off or on,off (default: %(default)s; off is the server's --no-fast-path, see tornado_app/patches/engineio_server.py)")
    parser.add_argument("--metrics", action="store_true", help="serve with --metrics-address on a free loopback port (what the instrumentation costs)")
    parser.add_argument("--redis", action="store_true", help="run the server in its Redis mode on a redis-server started for the run (and measure across two processes)")
    args = parser.parse_args()
    args.phases = [phase for phase in args.phases.split(",") if phase]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    paths = [path for path in args.paths.split(",") if path]
    if not paths or set(paths) - {"on", "off"}:
        parser.error("--paths takes on, off or on,off")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as workdir:
        redis = None
        if args.redis:
            try:
                redis = RedisServer(Path(workdir))
            except ServiceMissing as missing:
                parser.exit(2, f"bench: {missing}\n")
        try:
            for path in paths:
                server_args = [] if redis is None else ["--redis-url", redis.url, "--cookie-secret", secrets.token_urlsafe(32)]
                if path == "off":
                    server_args.append("--no-fast-path")
                if args.metrics:
                    server_args += ["--metrics-address", "127.0.0.1:0"]
                runs.append(asyncio.run(run(args, server_args)))
        finally:
            if redis is not None:
                redis.stop()
    print(f"mode: {runs[0]['mode']}")
    print(f"{'':<56}" + "".join(f"{'fast path ' + ('on' if run['fast_path'] else 'off'):>16}" for run in runs))
    for key, label in LABELS.items():
        if any(key in run for run in runs):
            print(f"{label:<56}" + "".join(f"{run.get(key, 'n/a')!s:>16}" for run in runs))
    print(json.dumps(runs if len(runs) > 1 else runs[0], sort_keys=True))


if __name__ == "__main__":
    main()
