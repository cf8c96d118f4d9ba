#!/usr/bin/env python3
"""What noticing a dead link fast costs: N idle authenticated sockets on one server process,
for `--seconds` at each ping setting (Socket.IO's 25 + 20 s, then ours from
tornado_app/settings.py), and what the server spends to keep them.

Per setting, a fresh server (`python -m tornado_app --ping-interval I --ping-timeout T`) pinned
to CPU 0, this process on CPU 1 (as bench/bench.py). `--people` people log in, and N sockets
are opened across their sessions (idle cost is per socket: pings are Engine.IO's, not a
person's). The sockets only answer pings. Then, over the window: the server's CPU seconds per
minute (/proc/<pid>/stat) and that as a share of one core, its RSS at the end, the pings it
sent per second, and how many sockets it dropped (0, or the client could not keep up).

    .venv/bin/python bench/idle.py                       # 10,000 sockets, 60 s per setting
    .venv/bin/python bench/idle.py --sockets 2000 --seconds 20 --settings 25/20,8/5,4/2

The client is a bare asyncio Protocol per socket (no reader task, no library), answering
`2` with `3`: 10,000 of them cost this process a few MiB and little CPU, so the server is
what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import struct
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench import Server
from tests.support.forms import log_in
from tests.support.measure import CLIENT_CPU, bounded, pin, raise_open_files_limit, rss_kib
from tests.support.protocol import SOCKETIO_WEBSOCKET
from tornado_app.settings import PRODUCTION

SOCKETIO_DEFAULT = (25, 20)  # Socket.IO's (and python-engineio's) own ping interval and timeout
PONG = struct.pack("!BB", 0x81, 0x80 | 1) + b"\0\0\0\0" + b"3"  # masked with zeros
CONNECT = struct.pack("!BB", 0x81, 0x80 | 2) + b"\0\0\0\0" + b"40"


class IdleSocket(asyncio.Protocol):
    """One WebSocket to /socket.io/ that connects to Socket.IO and then only answers pings."""

    transport: asyncio.Transport  # from connection_made, before anything else is called

    def __init__(self, host: str, cookie: str, origin: str) -> None:
        self.request = "\r\n".join([
            f"GET {SOCKETIO_WEBSOCKET} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}", "Sec-WebSocket-Version: 13",
            f"Cookie: {cookie}", f"Origin: {origin}", "", "",
        ]).encode()
        self.buffer = bytearray()
        self.upgraded = False
        self.connected = asyncio.get_running_loop().create_future()  # True once Socket.IO said `40`
        self.closed = False
        self.pings = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.connected.done():
            self.connected.set_result(False)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.buffer.startswith(b"HTTP/1.1 101"):
                self.transport.close()
                return
            del self.buffer[:end + 4]
            self.upgraded = True
        while (frame := self._next_frame()) is not None:
            opcode, payload = frame
            if opcode == 0x8:
                self.transport.close()
            elif payload == b"2":
                self.pings += 1
                self.transport.write(PONG)
            elif payload.startswith(b"0{"):  # Engine.IO's open: connect to Socket.IO
                self.transport.write(CONNECT)
            elif payload.startswith(b"40") and not self.connected.done():
                self.connected.set_result(True)
            elif payload.startswith(b"44") and not self.connected.done():
                self.connected.set_result(False)

    def _next_frame(self) -> tuple[int, bytes] | None:
        """The next whole (unmasked, unfragmented: what the server sends) frame, if buffered."""
        if len(self.buffer) < 2:
            return None
        opcode, length, start = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
        if length == 126:
            if len(self.buffer) < 4:
                return None
            length, start = struct.unpack_from("!H", self.buffer, 2)[0], 4
        elif length == 127:
            if len(self.buffer) < 10:
                return None
            length, start = struct.unpack_from("!Q", self.buffer, 2)[0], 10
        if len(self.buffer) < start + length:
            return None
        payload = bytes(self.buffer[start:start + length])
        del self.buffer[:start + length]
        return opcode, payload


async def open_idle(url: str, cookie: str) -> IdleSocket:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    host, port = parts.hostname, parts.port
    assert host is not None and port is not None  # the server's URL: http://127.0.0.1:N/
    _, socket = await loop.create_connection(lambda: IdleSocket(parts.netloc, cookie, url), host, port)
    if not await asyncio.wait_for(socket.connected, 30):
        raise RuntimeError("the server refused an idle socket")
    return socket


async def measure(setting: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    interval, timeout = setting
    sizing = argparse.Namespace(users=args.people)
    server = Server(sizing, ["--ping-interval", str(interval), "--ping-timeout", str(timeout)])
    if not args.pin:
        os.sched_setaffinity(server.process.pid, range(os.cpu_count() or 1))
    try:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
            cookies = await bounded(args.people, 20, lambda i: log_in(http, server.url, f"idle{i}"))
        rss_before = rss_kib(server.process.pid)
        # Spread over one ping interval, as sockets opened at random times are: all at once,
        # their pings would come in one burst per interval, and a window would hold a whole
        # number of bursts, not of intervals.
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def paced(index: int) -> IdleSocket:
            await asyncio.sleep(max(0.0, start + index * interval / args.sockets - loop.time()))
            return await open_idle(server.url, cookies[index % len(cookies)])

        sockets = await bounded(args.sockets, 50, paced)
        await asyncio.sleep(interval + 5)  # the joins' presence news settle; every socket has been pinged
        pings_before = sum(socket.pings for socket in sockets)
        dropped_before = sum(socket.closed for socket in sockets)
        cpu_before, started = server.cpu_seconds(), time.perf_counter()
        await asyncio.sleep(args.seconds)
        elapsed, cpu = time.perf_counter() - started, server.cpu_seconds() - cpu_before
        pings = sum(socket.pings for socket in sockets) - pings_before
        rss = rss_kib(server.process.pid)
        dropped = sum(socket.closed for socket in sockets) - dropped_before
        for socket in sockets:
            socket.transport.abort()
        return {
            "setting": f"{interval}/{timeout}",
            "sockets": args.sockets,
            "dead_link_noticed_within_s": interval + timeout,
            "server_cpu_s_per_min": round(cpu / elapsed * 60, 2),
            "server_core_percent": round(cpu / elapsed * 100, 2),
            "server_rss_mib": round(rss / 1024, 1),
            "rss_kib_per_socket": round((rss - rss_before) / args.sockets, 2),
            "pings_per_s": round(pings / elapsed, 1),
            "dropped_while_connecting": dropped_before,
            "dropped_sockets": dropped,
        }
    finally:
        server.stop()


LABELS = {
    "sockets": "idle sockets",
    "dead_link_noticed_within_s": "a dead link shown within (s)",
    "server_cpu_s_per_min": "server CPU seconds per minute",
    "server_core_percent": "server CPU (% of one core)",
    "server_rss_mib": "server RSS at the end (MiB)",
    "rss_kib_per_socket": "server RSS per socket (KiB)",
    "pings_per_s": "pings per second (each answered)",
    "dropped_while_connecting": "sockets dropped before the window",
    "dropped_sockets": "sockets dropped in the window",
}


def parse_setting(text: str) -> tuple[int, int]:
    interval, timeout = text.split("/")
    return int(interval), int(timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=10_000, help="idle sockets held on the server (default: %(default)s)")
    parser.add_argument("--people", type=int, default=1000, help="sessions the sockets are spread over (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window per setting (default: %(default)s)")
    parser.add_argument("--settings", default=f"{SOCKETIO_DEFAULT[0]}/{SOCKETIO_DEFAULT[1]},{PRODUCTION.ping_interval}/{PRODUCTION.ping_timeout}",
                        help="ping interval/timeout pairs in seconds, comma-separated (default: %(default)s: Socket.IO's, then ours)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin the server and this process to CPUs 0 and 1")
    args = parser.parse_args()
    args.people = min(args.people, args.sockets)
    raise_open_files_limit()
    if args.pin:
        pin(0, CLIENT_CPU)
    rows = [asyncio.run(measure(parse_setting(text), args)) for text in args.settings.split(",") if text]
    print(f"{args.sockets} idle sockets over {args.people} sessions, {args.seconds:g} s per setting (ping interval/timeout, s)")
    print(f"{'setting':<36}" + "".join(f"{row['setting']:>12}" for row in rows))
    for key, label in LABELS.items():
        print(f"{label:<36}" + "".join(f"{row[key]!s:>12}" for row in rows))
    print(json.dumps({"seconds": args.seconds, "people": args.people, "python": platform.python_version(),
                      "cpus": os.cpu_count(), "rows": rows}, sort_keys=True))


if __name__ == "__main__":
    main()
