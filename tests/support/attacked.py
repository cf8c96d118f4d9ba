"""A server process under attack, watched: its memory and CPU, and whether a person is still
served meanwhile (the attack tests of test_transport.py, test_server.py and
patches/test_engineio_server.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from .forms import http_session, log_in
from .measure import cpu_seconds, rss_kib
from .processes import ServerProcess
from .wire import WireSocket


class AttackedServer:
    """The plain server in its own process (so that its memory is its own), its RSS and CPU."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.url = server.url.rstrip("/")
        self.pid = server.process.pid

    def rss_mib(self) -> float:
        return rss_kib(self.pid) / 1024

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    async def peak_rss_while(self, attack: Awaitable[Any]) -> tuple[float, Any]:
        """The highest RSS seen (every 0.1 s) while `attack` runs, and its result."""
        job = asyncio.ensure_future(attack)
        peak = self.rss_mib()
        while not job.done():
            await asyncio.wait([job], timeout=0.1)
            peak = max(peak, self.rss_mib())
        return peak, job.result()

    async def becomes_idle(self, below_percent: float = 10, window: float = 1.0, within: float = 15.0) -> list[float]:
        """Wait until the server's CPU over one `window` is under `below_percent`; returns the
        busy percentages seen. Fails if it is still busy after `within` seconds (the defect
        this guards against kept a core busy for 20 s; a shared machine can add a few
        percent of noise to any one window, so one quiet window is what counts)."""
        seen: list[float] = []
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            await asyncio.sleep(window)
            seen.append(100 * (self.cpu_seconds() - before) / window)
            if seen[-1] < below_percent:
                return seen
        raise AssertionError(f"the server was still busy {within:g} s after the attack left: {[round(p) for p in seen]} %")


async def still_serves_a_person(base: str) -> None:
    """A person logs in, connects and gets an answer, as if nothing were happening."""
    async with http_session() as http:
        cookie = await log_in(http, base, "bystander")
        socket = await WireSocket.connect(http, base, cookie, origin=base)
        assert (await socket.call("whoami", timeout=5))["username"] == "bystander"
        await socket.close()
