"""One session asking for the presence state from many sockets while many people are online
(issue 21, item 6), with another person's `whoami` timed meanwhile: for test_presence_asks.py
and bench/presence_asks.py.

The crowd logs in from 127.0.0.1, the attacker from 127.0.0.2 and the bystander from
127.0.0.3 (Linux answers on all of 127/8), so that each is its own client to the server.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from .forms import log_in
from .measure import bounded, cpu_seconds, percentile
from .wire import WireSocket

CROWD, ATTACKER, BYSTANDER = "127.0.0.1", "127.0.0.2", "127.0.0.3"
SERVER_FLAGS = ("--login-rate", "off", "--connect-rate", "off", "--max-connections-per-ip", "2000",
                "--max-sockets-per-ip", "2000")  # a crowd of hundreds from one test address


def from_address(address: str) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, local_addr=(address, 0))
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


class CountingSocket(WireSocket):
    """A WireSocket that counts the bytes of every frame it receives."""

    received = 0

    def _dispatch(self, packet: str) -> None:
        self.received += len(packet.encode())
        super()._dispatch(packet)


async def state_flood(base: str, server_pid: int, people: int = 500, sockets: int = 200, seconds: float = 8.0,
                      every: float = 1.0) -> dict[str, Any]:
    """`people` online (a long name each, so that the state is ~75 bytes a person), then one
    session with `sockets` sockets, each asking `presence_state` once every `every` seconds
    for `seconds`, while a bystander asks `whoami` every 20 ms. What it cost the server."""
    async with from_address(CROWD) as crowd_http, from_address(ATTACKER) as attacker_http, \
            from_address(BYSTANDER) as bystander_http:

        names = [f"person {n:04d} of the crowd, online" for n in range(people)]

        async def one_person(n: int) -> WireSocket:
            cookie = await log_in(crowd_http, base, names[n])
            return await WireSocket.connect(crowd_http, base, cookie, origin=base, timeout=30)

        crowd = await bounded(people, 20, one_person)
        attacker_cookie = await log_in(attacker_http, base, "asker")
        attackers = await bounded(sockets, 20, lambda _: CountingSocket.connect(attacker_http, base, attacker_cookie,
                                                                               origin=base, timeout=30))
        bystander = await WireSocket.connect(bystander_http, base, await log_in(bystander_http, base, "bystander"), origin=base)
        await bystander.sees_online([*names, "asker", "bystander"], timeout=30)  # the crowd's joins are all out
        received_before = sum(socket.received for socket in attackers)
        answers: list[Any] = []
        latencies: list[float] = []
        cpu_before, started = cpu_seconds(server_pid), time.monotonic()
        deadline = started + seconds

        async def ask(index: int, socket: CountingSocket) -> None:
            await asyncio.sleep(every * index / len(attackers))  # spread over the interval
            while time.monotonic() < deadline:
                asked = time.monotonic()
                answers.append(await socket.call("presence_state", timeout=30))
                await asyncio.sleep(max(0.0, every - (time.monotonic() - asked)))

        async def whoami() -> None:
            while time.monotonic() < deadline:
                asked = time.monotonic()
                assert (await bystander.call("whoami", timeout=30))["username"] == "bystander"
                latencies.append(time.monotonic() - asked)
                await asyncio.sleep(0.02)

        await asyncio.gather(whoami(), *(ask(index, socket) for index, socket in enumerate(attackers)))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(server_pid) - cpu_before
        received = sum(socket.received for socket in attackers) - received_before
        states = [answer for answer in answers if isinstance(answer, dict) and "people" in answer]
        for socket in [*crowd, *attackers, bystander]:
            await socket.close()
    return {
        "people_online": len(states[0]["people"]) if states else None,
        "asks": len(answers),
        "states_sent": len(states),
        "refusals": [answer for answer in answers if not (isinstance(answer, dict) and "people" in answer)],
        "attack_seconds": round(elapsed, 2),
        "bytes_to_the_asker_per_s": round(received / elapsed),
        "bytes_per_ask": round(received / max(1, len(answers))),
        "server_cpu_percent": round(100 * cpu / elapsed, 1),
        "server_cpu_us_per_ask": round(1e6 * cpu / max(1, len(answers))),
        "whoami_p50_ms": round(1000 * percentile(latencies, 0.5), 1),
        "whoami_p99_ms": round(1000 * percentile(latencies, 0.99), 1),
    }
