"""Who is online, told to every socket: a latest-state signal, coalesced under churn.

Where several processes serve one site, the set is the union over all of them: each
process shares its own users through a `PresenceSource` (redis_presence.py) and hears when
another's change; alone, it is the whole world (`ThisProcessOnly`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import socketio

from .registry import Person, SocketRegistry
from .sessions import SessionStoreUnavailable


PRESENCE_MIN_INTERVAL = 0.1  # seconds between two presence broadcasts; changes in between coalesce


class PresenceSource(Protocol):
    """Where the users online in other processes come from."""

    async def share(self, here: list[Person]) -> None:
        """Tell the other processes who is online in this one."""

    async def elsewhere(self) -> set[Person]:
        """The people online in the other (live) processes."""

    def start(self, changed: Callable[[], None]) -> None:
        """Call `changed()` whenever the set elsewhere may have changed."""

    async def stop(self) -> None: ...


class ThisProcessOnly:
    """One process is the whole site: nothing to share, nobody elsewhere."""

    async def share(self, here: list[Person]) -> None:
        pass

    async def elsewhere(self) -> set[Person]:
        return set()

    def start(self, changed: Callable[[], None]) -> None:
        pass

    async def stop(self) -> None:
        pass


class PresenceBroadcaster:
    """Tells every socket who is online: on the next loop turn when things are quiet, at most
    once per `min_interval` under churn.

    Presence is a latest-state signal. Broadcasting every intermediate set to every socket
    costs O(sockets) per connect and per disconnect, O(n²) when many come and go; coalescing
    drops only sets that were already stale and always sends the current one last.
    """

    def __init__(self, sio: socketio.AsyncServer, registry: SocketRegistry, min_interval: float, source: PresenceSource) -> None:
        self._sio = sio
        self._registry = registry
        self._source = source
        self._shared: list[Person] | None = None
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
        task = asyncio.ensure_future(self._broadcast())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def online_people(self) -> list[Person]:
        """Everyone online, in this process or another, sorted by name."""
        here = self._registry.online_people()
        try:
            return sorted(set(here) | await self._source.elsewhere())
        except SessionStoreUnavailable:
            return here  # the store says so in the log, once

    async def payload(self) -> dict[str, object]:
        """`users`: one name per person online (a name twice for two people of that name);
        `people`: the same with each one's public tag, to tell them apart."""
        people = await self.online_people()
        return {"users": [person.name for person in people], "people": [{"name": name, "tag": tag} for name, tag in people]}

    async def tell(self, sid: str) -> None:
        """Tell one socket (a newcomer) who is online."""
        await self._sio.manager.emit("presence", await self.payload(), namespace="/", room=sid, ignore_queue=True)

    async def _broadcast(self) -> None:
        here = self._registry.online_people()
        if here != self._shared:
            try:
                await self._source.share(here)
                self._shared = here
            except SessionStoreUnavailable:
                pass  # shared again at the next change or heartbeat
        # To this process's sockets only: each process tells its own (a message queue
        # between processes would repeat it for every process that saw the change).
        await self._sio.manager.emit("presence", await self.payload(), namespace="/", ignore_queue=True)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
