"""Another local user against a server on 127.0.0.1 (issue 21, items 7 and 11).

Run by tests as a DIFFERENT uid (`nobody`) with the system's python3, so it uses the standard
library only and is handed over on stdin: `python3 - PORT COMMAND [ARGS]`. It prints one JSON
line with what it saw.

Commands:
- `hammer LOGINS`: what used up the launcher's per-address limits and evicted the person's
  session: LOGINS login POSTs (with an XSRF cookie and token of its own making) spread over
  127.0.x.y source addresses, 30 per address (within the default login rate), then from
  127.0.0.1 alone 40 logins, 150 polling handshakes, 20 WebSocket upgrades and a page, a
  static file and the session API. Prints {"kind": {"status": count}}.
- `hold SECONDS COUNT`: what made the window's page load fail (its connection closed at
  once): connections from 127.0.0.1 that send nothing, COUNT of them kept open, a new one
  opened (and the oldest dropped) as fast as it can for SECONDS. Prints {"opened": N}.
- `bind-ipv6`: try to listen on [::1]:PORT, as a squatter would. Prints {"errno": N or 0}.
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from collections import Counter, defaultdict

PER_ADDRESS = 30  # the launcher's default login rate is 30/minute per address
XSRF = "2|00000000|" + "0" * 32 + "|1700000000"  # any well-formed token: the form repeats the cookie


def source_addresses() -> list[str]:
    return [f"127.0.{third}.{fourth}" for third in range(1, 255) for fourth in range(1, 255)]


def post_login(connection: http.client.HTTPConnection, name: str) -> int:
    body = f"_xsrf={XSRF}&username={name}"
    connection.request("POST", "/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"_xsrf={XSRF}",
        "Origin": f"http://127.0.0.1:{connection.port}",
    })
    response = connection.getresponse()
    response.read()
    if response.getheader("Connection", "").lower() == "close":
        connection.close()
    return response.status


def get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str] | None = None) -> int:
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    response.read()
    if response.getheader("Connection", "").lower() == "close":
        connection.close()
    return response.status


def websocket_upgrade(port: int) -> int:
    """The status of a WebSocket upgrade on the Socket.IO path (101 if it was taken)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        head = sock.recv(4096).decode("latin-1")
    return int(head.split(" ", 2)[1]) if head.startswith("HTTP/") else 0


def hammer(port: int, logins: int) -> dict[str, Counter[int]]:
    seen: dict[str, Counter[int]] = defaultdict(Counter)
    done = 0
    for address in source_addresses():
        if done >= logins:
            break
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(address, 0))
        for _ in range(min(PER_ADDRESS, logins - done)):
            seen["rotating logins"][post_login(connection, f"squatter{done}")] += 1
            done += 1
        connection.close()
    own = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for number in range(40):
        seen["logins from 127.0.0.1"][post_login(own, f"local{number}")] += 1
    for _ in range(150):
        seen["polling handshakes"][get(own, "/socket.io/?EIO=4&transport=polling", {"Origin": f"http://127.0.0.1:{port}"})] += 1
    for path in ("/", "/login", "/static/js/main.js", "/api/session", "/?launch=guessed"):
        seen["pages"][get(own, path)] += 1
    own.close()
    for _ in range(20):
        seen["websocket upgrades"][websocket_upgrade(port)] += 1
    return seen


def hold(port: int, seconds: float, count: int) -> dict[str, int]:
    held: list[socket.socket] = []
    opened = failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if len(held) >= count:
            held.pop(0).close()
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            opened += 1
        except OSError:
            failed += 1
    for sock in held:
        sock.close()
    return {"opened": opened, "failed": failed}


def bind_ipv6(port: int) -> int:
    with socket.socket(socket.AF_INET6) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            squatter.bind(("::1", port))
            squatter.listen()
        except OSError as error:
            return error.errno or -1
    return 0


def main() -> None:
    port, command = int(sys.argv[1]), sys.argv[2]
    if command == "hammer":
        print(json.dumps(hammer(port, int(sys.argv[3]))))
    elif command == "hold":
        print(json.dumps(hold(port, float(sys.argv[3]), int(sys.argv[4]))))
    elif command == "bind-ipv6":
        print(json.dumps({"errno": bind_ipv6(port)}))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
