#!/usr/bin/env python3
"""Pages coming back after a restart: N sockets on one process (Redis mode) reconnect at once,
each naming the history position it holds (resume), against the same with no position, as
pages reloaded the latest history before resume existed (issue 22's benchmark).

The scenario, per round (the server pinned to CPU 0, this process on CPU 1, as bench/bench.py):

1. A redis-server and one app process A on it, caps and rates lifted (every simulated person
   comes from 127.0.0.1). N people log in and hold one socket each; `--live` chats reach them
   live, so each page's position is the tail of its `history`, advanced by every contiguous
   `chat` it receives (as the page does); every page must reach the tail before the gap.
2. A is stopped (SIGTERM). A second process B on the same Redis takes `--missed` (M) chats
   from a poster, and stops; A starts again on the same port. Each page has missed exactly
   those M messages, which are in the Redis stream.
3. All N pages reconnect at once (`--concurrency` to bound them): with resume, each sends
   `auth = {"history": <its position>, "presence": <its presence version>}` and must get
   `history` with resume "caught_up" and exactly the M messages it missed, in order, no
   duplicates (the ids the poster was acked, at the positions after its own); reloading, each
   sends no `auth` and must get resume "none" and the latest --history (50) messages, the M
   missed last. Any page that is refused, cut off, late past `--timeout`, or sent anything
   else fails the run (exit status 1, with the first few wrong pages described).

Measured per mode: the time from the start of the reconnect until each page has its history
(p50, p99, max: the last one is when all have caught up), A's CPU seconds (from /proc) until
the last history and until A is idle again, the bytes of the `history` frames (the Socket.IO
packet as received: `42["history",{...}]`), and every byte the pages received meanwhile
(welcome, the presence state, ...). After a restart the presence part is the same in both
modes: presence versions count within one process's life, so each page gets the state.

    make bench-resume                                  # 2,000 pages, 20 missed, one round each
    .venv/bin/python bench/resume.py --sockets 500 --missed 50 --rounds 3
    .venv/bin/python bench/resume.py --help

The pages are a lean client written on asyncio's Protocol (one object per socket, no task and
no library WebSocket: it reads the frames, answers pings and parses only `history` and `chat`
in full), so that thousands reconnecting at once measure the server, not the client. The
posters use tests/support/wire.py. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.services import AppProcess, RedisServer, ServiceMissing
from tests.support.forms import http_session, log_in
from tests.support.measure import (
    CLIENT_CPU,
    SERVER_CPU,
    bounded,
    cpu_seconds,
    percentile,
    pin,
    raise_open_files_limit,
)
from tests.support.protocol import SOCKETIO_WEBSOCKET
from tests.support.wire import WireSocket
from tornado_app.settings import PRODUCTION

MODES = ("resume", "reload")
PRESENCE_VERSION = re.compile(rb'^42\["presence_(?:state|diff)",\{"version":(\d+)(?:,"epoch":"([A-Za-z0-9]+)")?')
TEXT = "a message of a usual length, as people type them in a chat: words, a question, a reply"


# --- one page: what it holds of the chat ----------------------------------------------------


@dataclass
class Arrival:
    """What one page received in one reconnect."""

    history: dict[str, Any] | None = None
    connected_seconds: float | None = None  # the TCP connection made, from the start of the reconnect
    history_seconds: float | None = None  # from the start of the reconnect
    history_bytes: int = 0
    received_bytes: int = 0  # every text frame, history included
    failure: str | None = None


@dataclass
class Page:
    """A person's page: their cookie, the chat position it holds with nothing missing before
    it (the tail of its `history`, advanced by contiguous `chat`s), and its presence version."""

    cookie: str
    epoch: str | None = None
    tail: int = 0
    ahead: set[tuple[str, int]] = field(default_factory=set)  # chats received past the tail
    presence: str | None = None
    link: Link | None = None
    arrival: Arrival = field(default_factory=Arrival)
    done: asyncio.Future[None] | None = None

    @property
    def position(self) -> str | None:
        return None if self.epoch is None else f"{self.epoch}:{self.tail}"

    def history(self, payload: dict[str, Any], seconds: float, size: int) -> None:
        self.arrival.history, self.arrival.history_seconds, self.arrival.history_bytes = payload, seconds, size
        parsed = parse_position(payload.get("position"))
        if parsed is None:
            self.fail(f"history without a position: {payload.get('position')!r}")
            return
        if parsed[0] != self.epoch:
            self.ahead.clear()
        self.epoch, self.tail = parsed
        self.advance()
        self.finish()

    def chat(self, message: dict[str, Any]) -> None:
        parsed = parse_position(message.get("position"))
        if parsed is not None:
            self.ahead.add(parsed)
            self.advance()

    def advance(self) -> None:
        while (self.epoch, self.tail + 1) in self.ahead:
            self.tail += 1
        self.ahead = {held for held in self.ahead if held[0] != self.epoch or held[1] > self.tail}

    def fail(self, why: str) -> None:
        if self.arrival.failure is None and self.arrival.history is None:
            self.arrival.failure = why
        self.finish()

    def finish(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (TcpExt
    ListenOverflows, Linux; 0 elsewhere): a process that accepts too slowly for a herd makes
    the clients' SYNs go unanswered, and they retry 1, 3, 7, 15 s later."""
    try:
        lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines() if line.startswith("TcpExt:")]
        return int(dict(zip(lines[0], lines[1], strict=True))["ListenOverflows"])
    except (OSError, KeyError, IndexError, ValueError):
        return 0


def parse_position(value: object) -> tuple[str, int] | None:
    if not isinstance(value, str) or ":" not in value:
        return None
    epoch, _, n = value.partition(":")
    return (epoch, int(n)) if n.isdigit() else None


# --- one socket: the wire, on asyncio's Protocol --------------------------------------------


class Link(asyncio.Protocol):
    """One Socket.IO connection over one WebSocket, for one page.

    It upgrades, answers `0` (open) with `40` and the auth, answers Engine.IO pings, parses
    `history` and `chat` for the page and reads only the version of presence packets; every
    text frame's bytes are counted. Server frames come unmasked; ours are masked with zeros
    (RFC 6455 allows any key), so they go as they are.
    """

    def __init__(self, page: Page, host: str, port: int, auth: dict[str, Any] | None, started: float) -> None:
        self.page = page
        self.auth = auth
        self.started = started
        self.request = "\r\n".join([
            f"GET {SOCKETIO_WEBSOCKET} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}", "Sec-WebSocket-Version: 13",
            f"Cookie: {page.cookie}", f"Origin: http://{host}:{port}", "", ""]).encode()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # create_connection's: a stream transport
        self.transport.write(self.request)
        self.page.arrival.connected_seconds = time.perf_counter() - self.started

    def connection_lost(self, exc: Exception | None) -> None:
        self.page.fail("the connection closed before its history")
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self, text: str) -> None:
        data = text.encode()
        length = len(data)
        if length < 126:
            head = bytes([0x81, 0x80 | length])
        elif length < 65536:
            head = bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
        else:
            head = bytes([0x81, 0x80 | 127]) + length.to_bytes(8, "big")
        assert self.transport is not None  # sent only once connected
        self.transport.write(head + b"\0\0\0\0" + data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        start = 0
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:end]).split(b" ", 2)
            if len(status) < 2 or status[1] != b"101":
                self.page.fail(f"the upgrade was answered {bytes(self.buffer[:end]).splitlines()[0]!r}")
                self.close()
                return
            self.upgraded, start = True, end + 4
        buffer, size = self.buffer, len(self.buffer)
        while size - start >= 2:
            first, second = buffer[start], buffer[start + 1]
            length, offset = second & 0x7F, start + 2
            if length == 126:
                if size - start < 4:
                    break
                length, offset = int.from_bytes(buffer[start + 2:start + 4], "big"), start + 4
            elif length == 127:
                if size - start < 10:
                    break
                length, offset = int.from_bytes(buffer[start + 2:start + 10], "big"), start + 10
            if second & 0x80 or size < offset + length:
                if second & 0x80:
                    self.page.fail("the server masked a frame")
                    self.close()
                    return
                break
            self.frame(first, bytes(buffer[offset:offset + length]))
            start = offset + length
        del buffer[:start]

    def frame(self, first: int, payload: bytes) -> None:
        opcode = first & 0x0F
        if opcode in (0x0, 0x1):
            self.fragments.append(payload)
            if first & 0x80:
                text, self.fragments = b"".join(self.fragments), []
                self.packet(text)
        elif opcode == 0x8:
            self.close()
        elif opcode == 0x9 and self.transport is not None:  # a WebSocket ping: the pong echoes it
            self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)

    def packet(self, text: bytes) -> None:
        self.page.arrival.received_bytes += len(text)
        if text == b"2":
            self.send("3")
        elif text.startswith(b"0{"):
            self.send("40" + ("" if self.auth is None else json.dumps(self.auth, separators=(",", ":"))))
        elif text.startswith(b'42["history",'):
            _, payload = json.loads(text[2:])
            self.page.history(payload, time.perf_counter() - self.started, len(text))
        elif text.startswith(b'42["chat",'):
            self.page.chat(json.loads(text[2:])[1])
        elif text.startswith(b"42[\"presence_"):
            match = PRESENCE_VERSION.match(text)
            if match is not None:
                epoch = match[2].decode() if match[2] else (self.page.presence or "").partition(":")[0]
                self.page.presence = f"{epoch}:{match[1].decode()}"
        elif text.startswith(b"44"):
            self.page.fail(f"refused: {text[2:].decode(errors='replace')}")
            self.close()
        elif text.startswith(b"41"):
            self.page.fail("told to disconnect")
            self.close()


# --- the scenario ------------------------------------------------------------------------------


@dataclass
class Config:
    sockets: int = 2000
    missed: int = 20
    live: int = 5
    rounds: int = 1
    concurrency: int = 0  # 0: all at once
    timeout: float = 120.0
    pin: bool = True  # the server to CPU 0 (this process is pinned by main)


class WrongHistory(Exception):
    """A page was not sent what it must have been: the server got it wrong."""


@dataclass
class Ledger:
    """Every message posted, by its n: what each page must be sent."""

    epoch: str | None = None
    ids: dict[int, str] = field(default_factory=dict)

    def record(self, acks: list[Any]) -> None:
        for ack in acks:
            if not (isinstance(ack, dict) and ack.get("ok") and isinstance(ack.get("message"), dict)):
                raise RuntimeError(f"a chat was not accepted: {ack!r}")
            epoch, n = parse_position(ack["message"].get("position")) or ("", 0)
            if self.epoch not in (None, epoch) or n in self.ids:
                raise RuntimeError(f"a chat was acked at {ack['message'].get('position')!r}, after {self.epoch}:{self.count}")
            self.epoch = epoch
            self.ids[n] = ack["message"]["id"]

    @property
    def count(self) -> int:
        return max(self.ids, default=0)


class Scenario:
    def __init__(self, config: Config, redis_url: str, workdir: Path, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.workdir = workdir
        self.http = http
        self.env = {"TORNADO_APP_REDIS_URL": redis_url, "TORNADO_APP_COOKIE_SECRET": secrets.token_urlsafe(32)}
        self.args = ["--log-level", "warning", "--max-sessions", str(max(10_000, config.sockets * 4)),
                     # every simulated person comes from 127.0.0.1: lift the per-address caps and rates
                     "--max-connections-per-ip", "1000000", "--max-sockets-per-ip", "1000000",
                     "--login-rate", "off", "--connect-rate", "off", "--chat-rate", "off",
                     # the restart measured is the stop at once; a drain's is bench/rolling.py's
                     "--drain-seconds", "0"]
        self.server = self.app("a")
        self.pages: list[Page] = []
        self.ledger = Ledger()
        self.poster = ""

    def app(self, name: str) -> AppProcess:
        app = AppProcess(self.workdir / f"{name}.log", *self.args, env=self.env)
        if self.config.pin:
            pin(app.process.pid, SERVER_CPU)
        return app

    def restart(self) -> None:
        self.server.start()
        if self.config.pin:
            pin(self.server.process.pid, SERVER_CPU)

    @property
    def url(self) -> str:
        return self.server.url

    async def post(self, url: str, count: int, what: str) -> None:
        """`count` chats from the poster through the process at `url`, each acked."""
        socket = await WireSocket.connect(self.http, url, self.poster, origin=url)
        try:
            acks = [await socket.call("chat", {"text": f"{what} {number}: {TEXT}", "id": secrets.token_hex(8)})
                    for number in range(count)]
        finally:
            await socket.close()
        self.ledger.record(acks)

    async def set_up(self) -> None:
        """N people logged in, a full history, each page connected and at the tail."""
        count = self.config.sockets
        self.poster = await log_in(self.http, self.url, "poster")
        await self.post(self.url, PRODUCTION.history, "before")
        started = time.perf_counter()
        cookies = await bounded(count, 20, lambda index: log_in(self.http, self.url, f"person{index}"))
        self.pages = [Page(cookie) for cookie in cookies]
        print(f"  {count} people logged in in {time.perf_counter() - started:.1f} s", flush=True)
        await self.reconnect("reload", concurrency=50)
        self.check("reload", 0, "first connect")
        await self.post(self.url, self.config.live, "live")
        await self.until_at_tail()

    async def until_at_tail(self) -> None:
        deadline = time.perf_counter() + self.config.timeout
        while any(page.position != f"{self.ledger.epoch}:{self.ledger.count}" for page in self.pages):
            if time.perf_counter() > deadline:
                behind = [page.position for page in self.pages if page.position != f"{self.ledger.epoch}:{self.ledger.count}"]
                raise WrongHistory(f"FAILED: {len(behind)} pages did not reach {self.ledger.epoch}:{self.ledger.count} "
                                 f"from the live chats (e.g. {behind[:5]})")
            await asyncio.sleep(0.1)

    async def reconnect(self, mode: str, concurrency: int = 0) -> tuple[float, float]:
        """Every page reconnects at once (at most `concurrency` in flight until their history,
        if given); the server's CPU seconds until the last history, and this process's."""
        loop = asyncio.get_running_loop()
        host, port = "127.0.0.1", self.server.port
        gate = asyncio.Semaphore(concurrency or len(self.pages))
        for page in self.pages:
            page.arrival, page.done = Arrival(), loop.create_future()

        async def one(page: Page) -> None:
            auth = None if mode == "reload" else {"history": page.position, **({"presence": page.presence} if page.presence else {})}
            async with gate:
                try:
                    _, page.link = await loop.create_connection(lambda: Link(page, host, port, auth, started), host, port)
                except OSError as error:
                    page.fail(f"could not connect: {error}")
                assert page.done is not None  # set for every page just above
                await page.done

        cpu_before, client_cpu_before = cpu_seconds(self.server.process.pid), time.process_time()
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(one(page) for page in self.pages)), self.config.timeout)
        except TimeoutError:
            for page in self.pages:
                page.fail(f"no history within {self.config.timeout:g} s")
        return cpu_seconds(self.server.process.pid) - cpu_before, time.process_time() - client_cpu_before

    def check(self, mode: str, held_before: int, what: str) -> None:
        """Every page got exactly what it must, or the run fails: how many did not, of which
        kinds, the first ones, and the end of the server's log."""
        wrong = []
        for index, page in enumerate(self.pages):
            problem = page.arrival.failure or self.wrong_history(page.arrival.history or {}, mode, held_before)
            if problem:
                wrong.append((index, problem))
        if wrong:
            kinds = Counter(problem[:70] for _, problem in wrong).most_common(5)
            log = self.server.log().splitlines()[-10:]
            raise WrongHistory("\n  ".join([
                (f"FAILED ({what}, {mode}): {len(wrong)} of {len(self.pages)} pages were not sent what they missed "
                 f"(each held {self.ledger.epoch}:{held_before}); most often:"),
                *(f"{count} x {kind}" for kind, count in kinds), "the first ones:",
                *(f"page {index}: {problem}" for index, problem in wrong[:10]), "the end of the server's log:", *log]))

    def wrong_history(self, history: dict[str, Any], mode: str, before: int) -> str | None:
        """What is wrong with one page's history, or None."""
        epoch, count = self.ledger.epoch, self.ledger.count
        if mode == "resume":
            expected_resume, first = "caught_up", before + 1
        else:
            expected_resume, first = "none", max(1, count - PRODUCTION.history + 1)
        expected = [(f"{epoch}:{n}", self.ledger.ids[n]) for n in range(first, count + 1)]
        messages = history.get("messages") or []
        got = [(message.get("position"), message.get("id")) for message in messages if isinstance(message, dict)]
        if history.get("resume") != expected_resume:
            return f"resume {history.get('resume')!r}, not {expected_resume!r}"
        if history.get("position") != f"{epoch}:{count}":
            return f"position {history.get('position')!r}, not {epoch}:{count}"
        if len({message_id for _, message_id in got}) != len(got):
            return f"duplicates among {len(got)} messages"
        if got != expected:
            return (f"{len(got)} messages {[position for position, _ in got][:4]}..., not the {len(expected)} "
                    f"from {epoch}:{first} to {epoch}:{count}")
        return None

    async def until_idle(self, started_cpu: float) -> float:
        """The server's CPU seconds since `started_cpu` once it is idle (two quarter-second
        samples in a row under 10 ms of CPU)."""
        last, quiet, deadline = cpu_seconds(self.server.process.pid), 0, time.perf_counter() + 120
        while quiet < 2 and time.perf_counter() < deadline:
            await asyncio.sleep(0.25)
            now = cpu_seconds(self.server.process.pid)
            quiet = quiet + 1 if now - last < 0.01 else 0
            last = now
        return last - started_cpu

    async def round(self, mode: str) -> dict[str, Any]:
        """Stop A, post M through B, start A, reconnect every page in `mode`, check, measure."""
        if any(page.position != f"{self.ledger.epoch}:{self.ledger.count}" for page in self.pages):
            raise WrongHistory("FAILED: a page is not at the tail before the gap")
        held_before = self.ledger.count
        self.server.stop()
        links = [page.link for page in self.pages if page.link is not None]
        await asyncio.wait_for(asyncio.gather(*(link.closed for link in links)), 30)
        other = self.app("b")
        try:
            await self.post(other.url, self.config.missed, f"missed ({mode})")
        finally:
            other.stop()
        self.restart()
        await asyncio.sleep(0.5)  # its start settles: the CPU measured is the reconnect's
        cpu_at_start, overflows = cpu_seconds(self.server.process.pid), listen_overflows()
        cpu, client_cpu = await self.reconnect(mode, self.config.concurrency)
        overflows = listen_overflows() - overflows
        idle_cpu = await self.until_idle(cpu_at_start)
        self.check(mode, held_before, "after the restart")
        times = [page.arrival.history_seconds * 1000 for page in self.pages]  # type: ignore[operator]
        connected = [page.arrival.connected_seconds * 1000 for page in self.pages]  # type: ignore[operator]
        history_bytes = [page.arrival.history_bytes for page in self.pages]
        received = [page.arrival.received_bytes for page in self.pages]
        replayed = [len(page.arrival.history["messages"]) for page in self.pages]  # type: ignore[index]
        return {
            "mode": mode,
            "caught_up_p50_ms": round(statistics.median(times), 1),
            "caught_up_p99_ms": round(percentile(times, 0.99), 1),
            "caught_up_max_ms": round(max(times), 1),
            "connected_p99_ms": round(percentile(connected, 0.99), 1),
            "listen_overflows": overflows,
            "server_cpu_until_caught_up_s": round(cpu, 3),
            "server_cpu_until_idle_s": round(idle_cpu, 3),
            "history_bytes_total": sum(history_bytes),
            "history_bytes_per_socket": round(statistics.mean(history_bytes)),
            "messages_per_socket": round(statistics.mean(replayed), 1),
            "received_bytes_per_socket": round(statistics.mean(received)),
            "client_cpu_until_caught_up_s": round(client_cpu, 3),
        }

    async def close(self) -> None:
        for page in self.pages:
            if page.link is not None:
                page.link.close()
        await asyncio.sleep(0.2)
        self.server.stop()


LABELS = {  # figure: (label, format)
    "caught_up_p50_ms": ("caught up: p50 (ms from the start)", ",.0f"),
    "caught_up_p99_ms": ("caught up: p99 (ms)", ",.0f"),
    "caught_up_max_ms": ("caught up: all (max, ms)", ",.0f"),
    "connected_p99_ms": ("TCP connection made: p99 (ms)", ",.0f"),
    "listen_overflows": ("listen queue overflows (kernel, any port)", ",.0f"),
    "server_cpu_until_caught_up_s": ("server CPU until all caught up (s)", ".2f"),
    "server_cpu_until_idle_s": ("server CPU until idle again (s)", ".2f"),
    "client_cpu_until_caught_up_s": ("this client's CPU until all caught up (s)", ".2f"),
    "messages_per_socket": ("messages in history, per socket", ",.0f"),
    "history_bytes_per_socket": ("history frame bytes, per socket", ",.0f"),
    "history_bytes_total": ("history frame bytes, all sockets", ",.0f"),
    "received_bytes_per_socket": ("all bytes received, per socket (until idle)", ",.0f"),
}


def summary(rounds: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """The median of each figure over the rounds of `mode`."""
    mine = [row for row in rounds if row["mode"] == mode]
    return {key: statistics.median(row[key] for row in mine) for key in LABELS}


def table(config: Config, rounds: list[dict[str, Any]]) -> str:
    resume, reload = summary(rounds, "resume"), summary(rounds, "reload")
    lines = [
        (f"{config.sockets} pages reconnect at once after a restart (Redis mode), each {config.missed} messages behind; "
         f"{config.rounds} round(s) per mode{', medians' if config.rounds > 1 else ''}"
         f"{f'; at most {config.concurrency} in flight' if config.concurrency else ''}"),
        f"{'':<46}{'resume':>14}{'reload (today)':>16}{'reload/resume':>15}",
    ]
    for key, (label, form) in LABELS.items():
        ratio = f"{reload[key] / resume[key]:.2f}x" if resume[key] else "-"
        lines.append(f"{label:<46}{resume[key]:>14{form}}{reload[key]:>16{form}}{ratio:>15}")
    return "\n".join(lines)


async def run(config: Config, redis_url: str, workdir: Path) -> list[dict[str, Any]]:
    """The rounds' figures (WrongHistory if any page was not sent what it must)."""
    async with http_session() as http:
        scenario = Scenario(config, redis_url, workdir, http)
        try:
            print(f"setting up {config.sockets} pages on {scenario.url} ...", flush=True)
            await scenario.set_up()
            rounds = []
            for number in range(config.rounds):
                for mode in MODES if number % 2 == 0 else reversed(MODES):
                    row = await scenario.round(mode)
                    print(f"  round {number + 1}, {mode}: all caught up in {row['caught_up_max_ms']:,} ms, "
                          f"server CPU {row['server_cpu_until_idle_s']} s", flush=True)
                    rounds.append(row)
            return rounds
        finally:
            await scenario.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=2000, help="pages (people, one socket each) (default: %(default)s)")
    parser.add_argument("--missed", type=int, default=20, help="messages posted while the process is down (default: %(default)s)")
    parser.add_argument("--live", type=int, default=5, help="messages the pages receive live before the gap (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each mode, interleaved; the medians are printed (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=0, help="reconnects in flight at once (default: 0, all at once)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for every page to have its history (default: %(default)s)")
    args = parser.parse_args()
    if args.sockets < 1 or args.rounds < 1 or args.missed < 0 or args.live < 0:
        parser.error("--sockets and --rounds take 1 or more, --missed and --live 0 or more")
    config = Config(sockets=args.sockets, missed=args.missed, live=args.live, rounds=args.rounds,
                    concurrency=args.concurrency, timeout=args.timeout)
    raise_open_files_limit()
    client_pinned = pin(0, CLIENT_CPU)
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as workdir:
        try:
            redis = RedisServer(Path(workdir))
        except ServiceMissing as missing:
            parser.exit(2, f"bench: {missing}\n")
        try:
            rounds = asyncio.run(run(config, redis.url, Path(workdir)))
        except WrongHistory as wrong:
            parser.exit(1, f"{wrong}\n")
        finally:
            redis.stop()
    print(table(config, rounds))
    print(json.dumps({"sockets": config.sockets, "missed": config.missed, "live": config.live, "history": PRODUCTION.history,
                      "concurrency": config.concurrency, "rounds": rounds, "cpus": os.cpu_count(),
                      "python": platform.python_version(), "client_pinned_cpu": CLIENT_CPU if client_pinned else None},
                     sort_keys=True))


if __name__ == "__main__":
    main()
