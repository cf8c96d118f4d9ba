"""Who is online, told to every socket: a latest-state signal, coalesced under churn."""

from __future__ import annotations

import asyncio

import socketio

from .registry import SocketRegistry

PRESENCE_MIN_INTERVAL = 0.1  # seconds between two presence broadcasts; changes in between coalesce


class PresenceBroadcaster:
    """Tells every socket who is online: on the next loop turn when things are quiet, at most
    once per `min_interval` under churn.

    Presence is a latest-state signal. Broadcasting every intermediate set to every socket
    costs O(sockets) per connect and per disconnect, O(n²) when many come and go; coalescing
    drops only sets that were already stale and always sends the current one last.
    """

    def __init__(self, sio: socketio.AsyncServer, registry: SocketRegistry, min_interval: float) -> None:
        self._sio = sio
        self._registry = registry
        self._min_interval = min_interval
        self._last_sent = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def changed(self) -> None:
        """The set of online users changed: schedule a broadcast unless one is pending."""
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_sent + self._min_interval - loop.time())
        self._timer = loop.call_later(delay, self._send)

    def _send(self) -> None:
        self._timer = None
        self._last_sent = asyncio.get_running_loop().time()
        task = asyncio.ensure_future(self._sio.emit("presence", {"users": self._registry.online_users()}))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
