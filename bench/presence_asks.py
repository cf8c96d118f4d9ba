#!/usr/bin/env python3
"""One session asking for the presence state from many sockets while many people are online
(issue 21, item 6): what each ask costs the server in bytes and CPU, and another person's
`whoami` latency meanwhile. The scenario is tests/support/state_flood.py (the attack test
test_presence_asks.py runs it small); the server runs pinned to CPU 0 and this process on
CPU 1, as in bench/bench.py.

    .venv/bin/python bench/presence_asks.py                     # 1,000 online, 200 sockets, 10 s
    .venv/bin/python bench/presence_asks.py --people 300 --sockets 50 --seconds 5
    TORNADO_APP_REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/presence_asks.py

To compare with the code before a change, run it in a checkout of that code. The server's
log goes to $PRESENCE_ASKS_LOG (a temporary file otherwise). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.services import AppProcess
from tests.support.measure import CLIENT_CPU, SERVER_CPU, pin, raise_open_files_limit
from tests.support.state_flood import SERVER_FLAGS, state_flood


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1000, help="people online (default: %(default)s)")
    parser.add_argument("--sockets", type=int, default=200, help="the asking session's sockets (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10, help="how long they ask (default: %(default)s)")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between two asks of one socket (default: %(default)s)")
    args = parser.parse_args()
    raise_open_files_limit(4 * (args.people + args.sockets) + 100)
    env = {"TORNADO_APP_COOKIE_SECRET": secrets.token_urlsafe(32)}
    log_path = Path(os.environ.get("PRESENCE_ASKS_LOG") or Path(tempfile.mkdtemp()) / "server.log")  # read for "Serving on"
    server = AppProcess(log_path, "--log-level", "info", "--max-sessions", str(10 * args.people), *SERVER_FLAGS, env=env)
    pin(server.process.pid, SERVER_CPU)
    pin(os.getpid(), CLIENT_CPU)
    try:
        result = asyncio.run(state_flood(server.url, server.process.pid, args.people, args.sockets, args.seconds, args.every))
    finally:
        server.stop()
    refusals = result.pop("refusals")
    result["refused"] = len(refusals)
    for key, value in result.items():
        print(f"{key:>28}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
