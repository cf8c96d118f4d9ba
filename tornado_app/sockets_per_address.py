"""Engine.IO sessions per client address (`--max-sockets-per-ip`), and polling sessions that
never poll (`--first-poll-timeout`).

A polling session holds ~20 KiB and no file descriptor, so the per-connection caps of
admission.py do not bound them: 1,155 unauthenticated handshakes a second held +231 MiB
(issue 14). So each new Engine.IO session is counted against its client's address (the
IPv6 /64 counts as one: admission.client_key), and past the cap it is refused with
`TOO_MANY_SOCKETS`, which engineio answers with 401 (a WebSocket is closed, 1013). The
refusals are told in a few lines (refusals.py), and the access log adds none of its own.

This is the app's policy; patches/engineio_server.py (`limit_sessions`) calls it for each
new session and each one that closes, and ends a polling session that never polls.
"""

from __future__ import annotations

from typing import Any

from .admission import client_key
from .patches.engineio_server import TunedEngineIOServer
from .reasons import TOO_MANY_SOCKETS
from .refusals import RefusalReport


class SocketsPerAddress:
    """The open Engine.IO sessions of each client address, at most `limit` each (None: counted,
    never refused). Its methods are the session gate of patches/engineio_server.py."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}  # client_key -> open sessions
        self._address_of: dict[str, str] = {}  # sid -> client_key
        self.over_the_cap = RefusalReport("refused Engine.IO sessions over --max-sockets-per-ip")

    def refusal(self, ip: str, handler: Any) -> str | None:
        """Why a new session from `ip` is refused (None: it may open); `handler` is the
        Tornado handler of its handshake (None if unknown), whose refusal is logged here."""
        if self.limit is None or self.open.get(client_key(ip), 0) < self.limit:
            return None
        self.over_the_cap.refused(f"answered 401 ({self.limit} open), the latest from {ip}")
        if handler is not None:
            handler.refusal_logged = True  # counted above: no access-log line per refusal (app.log_request)
        return TOO_MANY_SOCKETS

    def opened(self, sid: str, ip: str) -> None:
        key = client_key(ip)
        self.open[key] = self.open.get(key, 0) + 1
        self._address_of[sid] = key

    def closed(self, sid: str) -> None:
        key = self._address_of.pop(sid, None)
        if key is not None:
            count = self.open.pop(key, 0) - 1
            if count > 0:
                self.open[key] = count


def limit_sessions(eio: TunedEngineIOServer, per_address: int | None, first_poll_timeout: float | None) -> SocketsPerAddress:
    """At most `per_address` open Engine.IO sessions per client address, and a polling session
    that has not polled `first_poll_timeout` seconds after its handshake ended (None: no limit)."""
    cap = SocketsPerAddress(per_address)
    eio.limit_sessions(cap, first_poll_timeout, RefusalReport("ended polling sessions that never polled"))
    return cap
