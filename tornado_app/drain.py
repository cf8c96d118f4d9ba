"""Draining on SIGTERM: end this process's sockets a few at a time over a window, not at once.

A process that closes every socket in the same second sends all its pages to the others in
that second: a reconnect storm (issue 23). Draining, as Phoenix's `phx_drain` does, spreads
the ends evenly over `--drain-seconds`, in small batches a fraction of a second apart, so
the others take the pages at a steady rate. Before the first batch the process already
answers /readyz with 503 "draining" and refuses new pages, logins and Engine.IO handshakes
(app.refused_while_draining), so nothing new lands on it meanwhile; its listener
stays open for the probes and for the requests of the sockets still open.

This module knows when each batch goes and how many sockets it ends (`drain_schedule`,
pure arithmetic), and which signal asks for what (`StopSignals`); the ending of one socket
is the socket server's (sockets.ChatSocketServer.end_for_restart).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

# How far apart the batches are: small, frequent batches make a smooth reconnect rate (the
# pages' own jitter, connection.js, smooths it further) rather than a burst every few seconds.
BATCH_INTERVAL_SECONDS = 0.25


@dataclass(frozen=True)
class Batch:
    """One step of a drain: at `at` seconds after its start, end sockets until `left_open` remain."""

    at: float
    left_open: int


def drain_schedule(sockets: int, seconds: float, interval: float = BATCH_INTERVAL_SECONDS) -> list[Batch]:
    """The batches that end `sockets` sockets evenly over `seconds`: at most one per
    `interval`, no more batches than sockets, the last one at `seconds` exactly (then none is
    left). The first goes one step after the start, not at it: a balancer has that long to
    see /readyz say "draining" before the first pages reconnect through it. No sockets: no
    batches."""
    if sockets <= 0:
        return []
    if seconds <= 0:
        return [Batch(0.0, 0)]
    steps = max(1, min(sockets, math.floor(seconds / interval + 1e-9)))
    return [Batch(seconds * step / steps, sockets - sockets * step // steps) for step in range(1, steps + 1)]


class DrainedSockets(Protocol):
    """What a drain needs of the socket server (sockets.ChatSocketServer)."""

    draining: bool

    def open_sockets(self) -> list[str]: ...

    async def end_for_restart(self, sids: Sequence[str]) -> None: ...


async def drain(sockets: DrainedSockets, seconds: float, at_once: asyncio.Event,
                clock: Callable[[], float] | None = None) -> int:
    """End the sockets open now over `seconds`, batch by batch (drain_schedule); returns how
    many were ended. Each batch ends as many as are open beyond its `left_open`, so a socket
    that left by itself is not made up for by ending another early, and one that connected
    late (its Engine.IO session opened before the drain) goes with the last batch. Returns
    early, leaving the rest open, once `at_once` is set (a second signal): the caller's
    shutdown then ends them all together."""
    now = clock or asyncio.get_running_loop().time
    start = now()
    sockets.draining = True
    schedule = drain_schedule(len(sockets.open_sockets()), seconds)
    log.info("draining %d sockets over %g s", len(sockets.open_sockets()), seconds)
    ended = 0
    for batch in schedule:
        if await _set_within(at_once, start + batch.at - now()):
            break
        open_now = sockets.open_sockets()
        going = open_now[:len(open_now) - batch.left_open]  # the oldest first
        if going:
            await sockets.end_for_restart(going)
            ended += len(going)
    log.info("drained: %d sockets ended in %.1f s%s", ended, now() - start,
             f", {len(sockets.open_sockets())} left to end at once" if at_once.is_set() else "")
    return ended


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set now or within `seconds`."""
    if event.is_set() or seconds <= 0:
        return event.is_set()
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


class StopSignals:
    """What each signal asks of a serving process. SIGTERM (a deploy, an orchestrator,
    `systemctl stop`) asks for a drain over `drain_seconds` (none when 0); SIGINT (Ctrl-C: a
    person at a terminal) for a stop at once; either one during a drain finishes it at once.

    `stop` is set by the first signal (server.serve waits for it); `at_once` when the
    sockets are to be ended without spreading them."""

    def __init__(self, drain_seconds: float) -> None:
        self.drain_seconds = drain_seconds
        self.stop = asyncio.Event()
        self.at_once = asyncio.Event()

    def terminate(self) -> None:
        """SIGTERM: drain, or finish at once when already stopping (or there is no drain)."""
        if self.stop.is_set() or self.drain_seconds <= 0:
            if self.stop.is_set() and not self.at_once.is_set():
                log.info("asked again to stop: ending the remaining sockets at once")
            self.at_once.set()
        self.stop.set()

    def interrupt(self) -> None:
        """SIGINT: stop at once, during a drain too."""
        if self.stop.is_set() and not self.at_once.is_set():
            log.info("interrupted: ending the remaining sockets at once")
        self.at_once.set()
        self.stop.set()

