#!/usr/bin/env python3
"""Attack the plain server the way a hostile client would and print what it costs: the
server's memory before, at its peak and after the attackers leave, its CPU once they have
left, and a normal user's login, connect and chat times meanwhile.

    .venv/bin/python bench/hostile.py                    # the hostile mix for 30 s
    .venv/bin/python bench/hostile.py --attack flood --seconds 8
    .venv/bin/python bench/hostile.py --help

The attacks (tests/support/attacks.py): `flood` (one socket without a cookie writing 500-byte
frames as fast as it can, never reading), `post` (polling handshakes, then 1 MB POSTs), `giant`
(20 sockets announcing 10 MB frames and sending 3 MB of each), `slow` (50 authenticated
sockets that never read while another chats 500 messages/s), and `mix`: all of them at once.
The server runs pinned to CPU 0 and the attackers on CPU 1, as in bench/bench.py. The last
line is one JSON object; the heavy test `test_load.py` runs the same mix (tests/support/hostile.py)
and asserts on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.hostile import ATTACKS, ServerUnderAttack, attack
from tests.support.measure import CLIENT_CPU, pin, raise_open_files_limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attack", choices=[*ATTACKS, "mix"], default="mix", help="which attack (default: all at once)")
    parser.add_argument("--seconds", type=float, default=30, help="how long the attack lasts (default: %(default)s)")
    args = parser.parse_args()
    raise_open_files_limit(4096)
    log_path = Path(os.environ["HOSTILE_LOG"]) if os.environ.get("HOSTILE_LOG") else None  # where the server logs (a temporary file)
    server = ServerUnderAttack(log_path)
    pin(os.getpid(), CLIENT_CPU)
    try:
        result = asyncio.run(attack(server, list(ATTACKS) if args.attack == "mix" else [args.attack], args.seconds))
    finally:
        server.stop()
    for key, value in result.items():
        print(f"{key:>32}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
