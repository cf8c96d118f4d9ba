"""Every cap, rate, timeout and buffer bound the server applies, in one frozen object whose
defaults are the production ones.

`make_app`, `serve` (through the app) and `Backend` take a `Settings`; called without one
they apply `PRODUCTION`, so an app built in three lines is as guarded as the command line's.
The command line builds its `Settings` from its flags (each field is the flag of the same
name: `--max-sockets-per-ip` is `max_sockets_per_ip`, cli.settings_from_args); the desktop
launcher uses `PRODUCTION` as it is. `Settings(session_ttl=60)` is the production settings
but for that one; tests and benchmarks whose crowd all comes from one address ask for
`Settings.lifted()`.

This module imports nothing of the app, so any module may read its defaults (patches/
excepted: values reach the fence as arguments).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Settings:
    """What the server allows, and how long it waits. None (or "off" for a rate) is no limit."""

    # --- Caps: what one client address, one process and one site may hold. ----------------
    # An IPv6 /64 counts as one address (admission.client_key). A browser opens about 6
    # connections per site and a page holds one WebSocket; an office behind one NAT address
    # shares the caps, so they allow some dozens of people per address while one address can
    # no longer take every file descriptor of the process.
    max_connections_per_ip: int = 200
    max_sockets_per_ip: int | None = 200  # Engine.IO sessions, polling ones included (one per tab)
    max_sessions: int = 10_000  # beyond this the least recently used session is evicted
    history: int = 50  # recent chat messages sent to each socket as it is accepted

    # --- Buffer bounds. ---------------------------------------------------------------------
    max_unsent_kib: int = 256  # unsent data per WebSocket before it is dropped as a slow reader
    # Request bodies being received at once, server-wide. A page's polling POST is a few
    # hundred bytes and is read in a moment, so thousands of people fit; it is 256 full 64 KiB
    # packets. One address may hold a sixteenth of it (admission.CLIENT_SHARE_OF_BODIES).
    max_body_kib_in_flight: int = 16 * 1024

    # --- Rates (ratelimit.py), like "30/minute" or "20 per 10 seconds", or "off". -----------
    # One person logs in a few times a day and opens a socket per page or tab; an office behind
    # one address is tens of people. A client above these is a script: logins that would evict
    # everyone's sessions, connects that cost a handshake each, a chat that floods every screen.
    login_rate: str = "30/minute"  # per client address
    connect_rate: str = "120/minute"  # socket connects per client address
    chat_rate: str = "20/10 seconds"  # chat messages per session: a burst of 20, then 2 a second

    # --- Timeouts, in seconds. --------------------------------------------------------------
    session_ttl: float = 30 * 60  # idle seconds before a session expires and its sockets close
    # How fast a dead link is noticed. A link can die without a word (a Wi-Fi that drops, a
    # NAT that stalls), so only silence tells, and both ends time it with these two figures,
    # which the server sends the page in the Engine.IO handshake: the page gives the link up
    # when no ping came for interval + timeout (8 + 5 = 13 s, within the 15 s the page
    # promises; Socket.IO's own 25 + 20 took up to 45 s), and the server drops a socket whose
    # pong has not come `ping_timeout` after its ping, so a dead page leaves the others'
    # presence lists that fast. The price is a ping and a pong per socket every 8 s
    # (bench/idle.py). Whole seconds: engineio tells the page int(interval).
    ping_interval: float = 8
    ping_timeout: float = 5  # a slow network's round trip plus a busy server's delay, with room
    connect_timeout: float = 10.0  # from the Engine.IO open to the Socket.IO connect
    first_poll_timeout: float | None = 5.0  # from a polling handshake to its first poll (a page polls at once)
    # Tornado waits an hour by default for a request's headers (and between keep-alive
    # requests) and for its body: a half-open request would hold a connection that long.
    header_timeout: float = 30.0
    body_timeout: float = 30.0
    # A deploy takes this long per process (drain.py): long enough that a few thousand pages
    # reconnect to the others at a few hundred a second, short enough for an orchestrator's
    # usual grace period (Kubernetes: 30 s) with room for the rest of the stop.
    drain_seconds: float = 10.0

    @property
    def max_unsent_bytes(self) -> int:
        return self.max_unsent_kib * 1024

    @property
    def max_body_bytes_in_flight(self) -> int:
        return self.max_body_kib_in_flight * 1024

    @classmethod
    def lifted(cls, **changes: Any) -> Settings:
        """The production settings without their per-address caps and rates, for the tests and
        benchmarks whose thousands of sockets and logins all come from one address (each cap
        and rate is attacked on its own elsewhere); `changes` as in dataclasses.replace."""
        lifted = cls(max_connections_per_ip=1_000_000,  # more than a process can open
                     max_sockets_per_ip=None, login_rate="off", connect_rate="off", chat_rate="off")
        return replace(lifted, **changes)


PRODUCTION = Settings()
