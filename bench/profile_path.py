#!/usr/bin/env python3
"""Profile one hot path of a real server with cProfile: where each operation's CPU goes.

    make profile ARGS="--path connect"             # or: .venv/bin/python bench/profile_path.py ...
    bench/profile_path.py --path connect|ack|broadcast [--redis] [--ops N] [--top 25] [--out FILE.prof]

The server is bench/profiled_server.py (`python -m tornado_app` as bench/run-ours.sh starts
it: pinned to CPU 0, caps and rates lifted, uvloop on), driven from CPU 1 by the bare wire
client (tests/support/wire.py) as bench/bench.py drives it. The driver logs in and connects
first, then signals the server to start its profile, runs the N operations, and signals it
to stop: the profile holds those operations only.

- connect: N authenticated connects at --concurrency (50, as the harness's connect phase),
  each until its `welcome`, then closed (the close is in the profile, as in the harness).
- ack: N `whoami` round trips on one socket, after 200 not profiled.
- broadcast: N chats, each until all K (--clients, 500) sockets have it; the K connects are
  made before the profile starts.

It prints the time by library (tornado, engineio, socketio, asyncio, ours, ...) and the top
functions by own time, with calls and microseconds per operation; --out keeps the stats for
pstats or snakeviz. cProfile's own overhead inflates small functions called often: read the
call counts (exact) and the shares, not the absolute microseconds, against a run on the
same machine.

It is named profile_path, not profile, because a script's folder comes first on sys.path
and cProfile imports the standard library's `profile`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.profiled_server import START, STOP
from deploy.app_process import StartedApp
from deploy.services import RedisServer, ServiceMissing
from tests.support.forms import log_in
from tests.support.measure import CLIENT_CPU, SERVER_CPU, bounded, pin, raise_open_files_limit
from tests.support.wire import WireSocket

PATHS = ("connect", "ack", "broadcast")
DEFAULT_OPS = {"connect": 2000, "ack": 5000, "broadcast": 50}

# (group, what a file path contains), first match wins; see group_of.
GROUPS: list[tuple[str, str]] = [
    ("ours", "/tornado_app/"),
    ("engineio", "/engineio/"),
    ("socketio", "/socketio/"),
    ("tornado", "/tornado/"),
    ("asyncio", "/asyncio/"),
    ("asyncio", "/uvloop/"),
    ("redis", "/redis/"),
]

FunctionKey = tuple[str, int, str]
"""pstats' key of a function: (file, line, name); built-ins have file "~" and line 0."""


def group_of(key: FunctionKey) -> str:
    """The library a function belongs to, from its file. C built-ins (`~`) are "builtins"
    (`<method 'send' of '_socket.socket' objects>`, json's, hmac's: the C work the Python
    around them asked for), but for the loop's own (uvloop's, _asyncio's Task and Future):
    "asyncio"."""
    filename, _, name = key
    if filename == "~":
        return "asyncio" if "uvloop" in name or "_asyncio" in name else "builtins"
    for group, marker in GROUPS:
        if marker in filename:
            return group
    if "/site-packages/" in filename:
        return filename.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    return "stdlib"


def describe(key: FunctionKey) -> str:
    """file:line(name) with the file made short: from the package on, as a reader looks it up."""
    filename, line, name = key
    if filename == "~":
        return name
    for marker in ("/site-packages/", f"{ROOT}/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    else:
        filename = "/".join(Path(filename).parts[-2:])
    return f"{filename}:{line}({name})"


@dataclass(frozen=True)
class Row:
    key: FunctionKey
    calls: int  # primitive and recursive calls alike: what ran
    tottime: float  # in the function itself, seconds
    cumtime: float  # with what it called, seconds


def rows(stats: Mapping[FunctionKey, tuple[int, int, float, float, Any]]) -> list[Row]:
    """pstats.Stats.stats as rows: each value is (primitive calls, calls, tottime, cumtime, callers)."""
    return [Row(key, calls, tottime, cumtime) for key, (_, calls, tottime, cumtime, _) in stats.items()]


def by_group(all_rows: Iterable[Row]) -> dict[str, tuple[float, int]]:
    """Own time and calls summed per group, largest first. Own time only: summing cumulative
    times would count a call once per caller on the stack."""
    totals: dict[str, tuple[float, int]] = {}
    for row in all_rows:
        tottime, calls = totals.get(group_of(row.key), (0.0, 0))
        totals[group_of(row.key)] = (tottime + row.tottime, calls + row.calls)
    return dict(sorted(totals.items(), key=lambda item: -item[1][0]))


def render(all_rows: list[Row], ops: int, path: str, top: int, sort: str = "tottime") -> str:
    """The per-group table and the top functions, each figure per operation."""
    total = sum(row.tottime for row in all_rows)
    calls = sum(row.calls for row in all_rows)
    out = [f"{path}: {ops} operations profiled, {total:.3f} s CPU in the profile: "
           f"{total / ops * 1e6:.1f} us and {calls / ops:.0f} Python and C calls per operation", ""]
    out.append(f"{'group':<16}{'own us/op':>11}{'share':>8}{'calls/op':>10}")
    for group, (tottime, group_calls) in by_group(all_rows).items():
        out.append(f"{group:<16}{tottime / ops * 1e6:>11.1f}{tottime / total if total else 0:>8.1%}{group_calls / ops:>10.1f}")
    out += ["", f"top {top} by {'own' if sort == 'tottime' else 'cumulative'} time, per operation:",
            f"{'calls/op':>9}{'own us':>9}{'cum us':>9}  {'group':<10} function"]
    ranked = sorted(all_rows, key=lambda row: -(row.tottime if sort == "tottime" else row.cumtime))
    for row in ranked[:top]:
        out.append(f"{row.calls / ops:>9.2f}{row.tottime / ops * 1e6:>9.1f}{row.cumtime / ops * 1e6:>9.1f}  "
                   f"{group_of(row.key):<10} {describe(row.key)}")
    return "\n".join(out)


class ProfiledServer:
    """bench/profiled_server.py on a free port, pinned, started and waited for as StartedApp does."""

    def __init__(self, out: Path, server_args: list[str], pinned: bool = True) -> None:
        self.out = out
        self.app = StartedApp("--port", "0", "--log-level", "warning", "--max-sessions", "100000",
                              "--max-connections-per-ip", "1000000", "--max-sockets-per-ip", "1000000",
                              "--login-rate", "off", "--connect-rate", "off", "--chat-rate", "off",
                              "--drain-seconds", "0", *server_args,
                              env={"PROFILE_OUT": str(out)}, program=(sys.executable, "-m", "bench.profiled_server"))
        self.url = self.app.url
        if pinned:
            pin(self.app.pid, SERVER_CPU)

    async def signal(self, signum: int, done: Path, timeout: float = 10) -> None:
        """Send `signum` and wait until the server says it has acted (`done` exists)."""
        await asyncio.to_thread(self._signal_and_wait, signum, done, timeout)

    def _signal_and_wait(self, signum: int, done: Path, timeout: float) -> None:
        done.unlink(missing_ok=True)
        self.app.process.send_signal(signum)
        deadline = time.monotonic() + timeout
        while not done.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not answer signal {signum} within {timeout} s")
            time.sleep(0.01)

    async def start_profile(self) -> None:
        await self.signal(START, Path(f"{self.out}.on"))

    async def stop_profile(self) -> None:
        await self.signal(STOP, self.out)

    def stop(self) -> None:
        self.app.stop()
        self.app.close()
        Path(f"{self.out}.on").unlink(missing_ok=True)


async def drive(args: argparse.Namespace, server: ProfiledServer) -> None:
    """Log in, set up what the path needs, then the profiled operations between two signals."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
        cookies = await bounded(50, 10, lambda i: log_in(http, server.url, f"user{i}"))

        async def connect(index: int) -> WireSocket:
            return await WireSocket.connect(http, server.url, cookies[index % len(cookies)], origin=server.url)

        async def connect_welcome_close(index: int) -> None:
            socket = await connect(index)
            await socket.next("welcome")
            await socket.close()

        if args.path == "connect":
            await bounded(50, 10, connect_welcome_close)  # warm-up, not profiled
            await server.start_profile()
            await bounded(args.ops, args.concurrency, connect_welcome_close)
            await asyncio.sleep(0.3)  # the server's side of the last closes, as the harness waits
            await server.stop_profile()
        elif args.path == "ack":
            socket = await connect(0)
            for _ in range(200):
                await socket.call("whoami")
            await server.start_profile()
            for _ in range(args.ops):
                await socket.call("whoami")
            await server.stop_profile()
            await socket.close()
        else:
            clients = await bounded(args.clients, 50, connect)
            await asyncio.sleep(1.0)  # the newcomers' presence news has gone out: not profiled
            await server.start_profile()
            for number in range(args.ops):
                text = f"profiled {number}"
                await clients[number % len(clients)].emit("chat", {"text": text})
                for client in clients:
                    while (await client.next("chat"))["text"] != text:
                        pass
            await server.stop_profile()
            await asyncio.gather(*(client.close() for client in clients))


def run(args: argparse.Namespace, workdir: Path) -> Path:
    """Start the server (on a Redis of its own with --redis), drive it, return the stats file."""
    out = args.out or workdir / f"{args.path}.prof"
    out.unlink(missing_ok=True)
    redis = None
    server_args = ["--no-fast-path"] if args.no_fast_path else []
    if args.redis:
        redis = RedisServer(workdir)
        server_args += ["--redis-url", redis.url, "--cookie-secret", secrets.token_urlsafe(32)]
    try:
        server = ProfiledServer(out, server_args, pinned=args.pin)
        try:
            asyncio.run(drive(args, server))
        finally:
            server.stop()
    finally:
        if redis is not None:
            redis.stop()
    return out


def main(argv: list[str] | None = None, print_: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", choices=PATHS, required=True, help="the hot path to profile")
    parser.add_argument("--ops", type=int, help="operations profiled (default: connect 2000, ack 5000, broadcast 50)")
    parser.add_argument("--concurrency", type=int, default=50, help="connects in flight at once, --path connect (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=500, help="sockets each chat reaches, --path broadcast (default: %(default)s)")
    parser.add_argument("--redis", action="store_true", help="the server in its Redis mode, on a redis-server started for the run")
    parser.add_argument("--no-fast-path", action="store_true", help="the server with --no-fast-path")
    parser.add_argument("--top", type=int, default=25, help="functions listed (default: %(default)s)")
    parser.add_argument("--sort", choices=("tottime", "cumtime"), default="tottime", help="order of the functions (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="keep the stats here (pstats format)")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="pin neither the server nor this process (a test's run)")
    args = parser.parse_args(argv)
    args.ops = args.ops or DEFAULT_OPS[args.path]
    raise_open_files_limit()
    if args.pin:
        pin(0, CLIENT_CPU)
    with tempfile.TemporaryDirectory(prefix="profile-") as workdir:
        try:
            out = run(args, Path(workdir))
        except ServiceMissing as missing:
            parser.exit(2, f"profile_path: {missing}\n")
        stats = pstats.Stats(str(out))
        mode = "redis" if args.redis else "memory"
        pinned = f"server pinned to CPU {SERVER_CPU}, client to CPU {CLIENT_CPU}" if args.pin else "not pinned"
        print_(f"mode: {mode}{', --no-fast-path' if args.no_fast_path else ''}; {pinned}; {os.cpu_count()} CPUs")
        print_(render(rows(stats.stats), args.ops, args.path, args.top, args.sort))  # type: ignore[attr-defined]
        if args.out:
            print_(f"\nstats kept in {args.out} (python -m pstats {args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
