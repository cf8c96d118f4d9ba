"""A fair share of presence states for each client: asking for the state again is for a page
that missed a change, not a way to make the server send everyone online, over and over.

A page gets the state once per connection unasked; it asks with `presence_state` only after a
gap in the change versions, which is rare. Each answer is the whole list (50 KB with 1,000
people online), so one session with 200 sockets each asking once a second made the server
send 6.3 MB/s and slowed everyone else's answers a hundredfold (issue 21, item 6). Here an
ask is answered only within three budgets, all of which it must fit:
- per socket: once every `PER_SOCKET_EVERY` seconds;
- per session (whatever its number of sockets): a burst of `PER_SESSION_BURST`, then one
  every `PER_SESSION_EVERY` seconds;
- per client address (an IPv6 /64 counts as one, as for the caps): a burst of
  `PER_ADDRESS_BURST`, then one every `PER_ADDRESS_EVERY` seconds: room for an office behind
  one address, not for a script's many sessions.
Counted in this process: what the budget protects, its CPU and its sending, is its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PER_SOCKET_EVERY = 1.0  # seconds between two states for one socket
PER_SESSION_BURST = 3
PER_SESSION_EVERY = 5.0
PER_ADDRESS_BURST = 20
PER_ADDRESS_EVERY = 1.0
PRUNE_EVERY = 60.0  # seconds between two sweeps of the budgets that are whole again


class TokenBuckets:
    """A budget per key: `burst` at first, one more every `every` seconds, up to `burst`. A
    key whose budget is whole again is forgotten (at most every PRUNE_EVERY seconds), so that
    the table holds only the clients that asked lately."""

    def __init__(self, burst: int, every: float) -> None:
        self.burst = burst
        self.every = every
        self._spent: dict[str, tuple[float, float]] = {}  # key -> (tokens left, when counted)
        self._pruned_at = float("-inf")

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._spent.get(key, (self.burst, now))
        return min(float(self.burst), tokens + (now - at) / self.every)

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` may have one more (0: it may now)."""
        return max(0.0, (1 - self._tokens(key, now)) * self.every)

    def take(self, key: str, now: float) -> None:
        self._spent[key] = (self._tokens(key, now) - 1, now)
        if now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            self._spent = {key: spent for key, spent in self._spent.items() if self._tokens(key, now) < self.burst}

    def forget(self, key: str) -> None:
        self._spent.pop(key, None)

    def __len__(self) -> int:
        return len(self._spent)


class StateAsks:
    """Whether a socket's ask for the presence state is answered now (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sockets = TokenBuckets(1, PER_SOCKET_EVERY)
        self._sessions = TokenBuckets(PER_SESSION_BURST, PER_SESSION_EVERY)
        self._addresses = TokenBuckets(PER_ADDRESS_BURST, PER_ADDRESS_EVERY)

    def wait(self, sid: str, session_id: str, address: str) -> float:
        """0 (and the ask counted against every budget) when the socket may have the state now;
        otherwise the seconds until it may, and nothing counted."""
        now = self._clock()
        budgets = ((self._sockets, sid), (self._sessions, session_id), (self._addresses, address))
        wait = max(buckets.wait(key, now) for buckets, key in budgets)
        if wait == 0:
            for buckets, key in budgets:
                buckets.take(key, now)
        return wait

    def socket_gone(self, sid: str) -> None:
        self._sockets.forget(sid)

    def tracked(self) -> int:
        """Entries held (sockets, sessions, addresses): for tests that check they are freed."""
        return len(self._sockets) + len(self._sessions) + len(self._addresses)
