"""The hostile mix: attackers and one ordinary person against one server process, and what
it costs the server. `bench/hostile.py` prints it; tests/test_load.py asserts on it.

The server runs pinned to CPU 0 (the attackers to CPU 1, by the caller); every attack
targets only that server on 127.0.0.1 (attacks.py).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .attacked import AttackedServer
from .attacks import flood_frames, giant_frame, oversized_polling_post, slow_reader
from .forms import log_in
from .measure import SERVER_CPU, percentile, pin
from .processes import ServerProcess
from .wire import WireSocket

ATTACKS = ("flood", "post", "giant", "slow")
SLOW_READERS = 50
CHAT_RATE = 500  # messages per second from the chatting socket while the slow readers sit
GIANT_SOCKETS = 20


class ServerUnderAttack(AttackedServer):
    """`python -m tornado_app` on a free port, pinned to CPU 0, its log in `log_path` (a
    temporary file without one)."""

    def __init__(self, log_path: Path | None = None) -> None:
        # The attackers and the person all come from 127.0.0.1 here: the per-client rates would
        # refuse the person with them. This measures what holds without them (memory, CPU);
        # the rates are attacked on their own in tests/test_ratelimit.py. (The mix stays under
        # the per-address caps of 200 connections and sockets.)
        server = ServerProcess("--port", "0", "--log-level", "info", "--login-rate", "off", "--connect-rate", "off",
                               "--chat-rate", "off", log_path=log_path)
        pin(server.process.pid, SERVER_CPU)
        super().__init__(server)

    def log(self) -> str:
        return self.server.log()

    def stop(self) -> int:
        status, _, _ = self.server.stop(timeout=10)
        self.server.close()
        return status


@dataclass
class NormalUser:
    """Logs in, connects and chats once every `pause` seconds, timing each step (ms)."""

    base: str
    pause: float = 0.2
    login_ms: list[float] = field(default_factory=list)
    connect_ms: list[float] = field(default_factory=list)
    chat_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    async def run(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        turn = 0
        while not stop.is_set():
            turn += 1
            try:
                started = time.perf_counter()
                cookie = await log_in(http, self.base, f"normal{turn}")
                logged_in = time.perf_counter()
                socket = await WireSocket.connect(http, self.base, cookie, origin=self.base, timeout=5)
                connected = time.perf_counter()
                text = f"hello {turn}"
                await socket.emit("chat", {"text": text})
                while (await socket.next("chat", timeout=5))["text"] != text:
                    pass
                chatted = time.perf_counter()
                await socket.close()
            except Exception as error:  # noqa: BLE001 (any failure is a result to report)
                self.failures.append(f"{type(error).__name__}: {error}")
            else:
                self.login_ms.append(1000 * (logged_in - started))
                self.connect_ms.append(1000 * (connected - logged_in))
                self.chat_ms.append(1000 * (chatted - connected))
            await asyncio.sleep(self.pause)


async def repeat(stop: asyncio.Event, attack: Callable[[], Awaitable[Any]]) -> int:
    """Run one attacker again and again until told to stop; returns how many rounds."""
    rounds = 0
    while not stop.is_set():
        try:
            await attack()
        except (TimeoutError, ConnectionError, aiohttp.ClientError):
            pass
        rounds += 1
    return rounds


async def chatter(http: aiohttp.ClientSession, base: str, stop: asyncio.Event) -> int:
    """One authenticated socket sending CHAT_RATE messages a second (everyone receives them)."""
    socket = await WireSocket.connect(http, base, await log_in(http, base, "chatter"), origin=base)
    sent = 0
    started = time.monotonic()
    while not stop.is_set():
        await socket.emit("chat", {"text": f"message {sent}"})
        sent += 1
        await asyncio.sleep(max(0.0, started + sent / CHAT_RATE - time.monotonic()))
    await socket.close()
    return sent


async def attack(server: ServerUnderAttack, attacks: list[str], seconds: float) -> dict[str, Any]:
    """Run `attacks` for `seconds` while a person logs in, connects and chats; then what it
    cost: the server's memory before, at its peak and after, its CPU once the attackers left,
    and the person's timings and failures."""
    base = server.url
    stop = asyncio.Event()
    rss = [server.rss_mib()]
    result: dict[str, Any] = {"attacks": attacks, "seconds": seconds, "rss_before_mib": round(rss[0], 1)}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
        user = NormalUser(base)
        jobs: dict[str, asyncio.Future[Any]] = {"user": asyncio.ensure_future(user.run(http, stop))}
        if "flood" in attacks:
            jobs["flood_frames"] = asyncio.ensure_future(flood_frames(base, seconds))
        if "post" in attacks:
            jobs["post"] = asyncio.ensure_future(repeat(stop, lambda: oversized_polling_post(http, base)))
        if "giant" in attacks:
            jobs["giant"] = asyncio.ensure_future(repeat(stop, lambda: asyncio.gather(*(giant_frame(base) for _ in range(GIANT_SOCKETS)))))  # noqa: RUF006 (kept in `jobs`; ruff misreads the comprehension inside)
        if "slow" in attacks:
            cookies = [await log_in(http, base, f"slow{i}") for i in range(SLOW_READERS)]
            for index, cookie in enumerate(cookies):
                jobs[f"slow{index}"] = asyncio.ensure_future(slow_reader(base, cookie, seconds + 1))
            jobs["chatter"] = asyncio.ensure_future(chatter(http, base, stop))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            rss.append(server.rss_mib())
        stop.set()
        outcomes = await asyncio.gather(*jobs.values(), return_exceptions=True)
        for name, outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                result.setdefault("attacker_errors", []).append(f"{name}: {type(outcome).__name__}: {outcome}")
            elif name == "flood_frames":
                result["flood_frames_per_s"] = round(outcome / seconds)
            elif name in ("post", "giant", "chatter"):
                result[f"{name}_rounds"] = outcome
    left = time.monotonic()
    await asyncio.sleep(1.0)
    cpu_at = server.cpu_seconds()
    await asyncio.sleep(3.0)
    result.update(
        rss_peak_mib=round(max(rss), 1),
        rss_after_mib=round(server.rss_mib(), 1),
        cpu_after_leaving_percent=round(100 * (server.cpu_seconds() - cpu_at) / 3.0, 1),
        seconds_measured_after_leaving=round(time.monotonic() - left, 1),
        user_rounds=len(user.login_ms),
        user_failures=user.failures[:5],
        user_failure_count=len(user.failures),
    )
    for step, values in (("login", user.login_ms), ("connect", user.connect_ms), ("chat", user.chat_ms)):
        result[f"{step}_p50_ms"] = round(statistics.median(values), 2) if values else None
        result[f"{step}_p99_ms"] = round(percentile(values, 0.99), 2) if values else None
    return result
