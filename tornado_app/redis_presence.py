"""Who is online in the other processes, through Redis.

Keys (under the bus's prefix):
- `online:<process id>`: the set of people ("<tag> <name>") with a socket on that process; it expires
  `PROCESS_TTL` seconds after the process's last heartbeat, so the users of a process that
  dies without a word (SIGKILL, a lost machine) leave everyone's presence by themselves;
- `processes`: a sorted set of process ids scored by their last heartbeat;
- channel `presence`: "my set changed", so that the others broadcast the new union at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable

from redis.exceptions import ResponseError

from .redis_bus import RedisBus
from .redis_values import BadValue, person
from .registry import Person
from .sessions import SessionStoreUnavailable


HEARTBEAT_SECONDS = 3.0  # how often a process says it is alive and checks on the others
PROCESS_TTL = 10.0  # seconds after a process's last heartbeat that its users count as gone
PROCESS_ID = re.compile(rb"[0-9a-f]{16}")  # RedisBus.process_id


class RedisPresence:
    """A PresenceSource over Redis: this process's users shared, the others' read."""

    def __init__(self, bus: RedisBus, heartbeat: float = HEARTBEAT_SECONDS, process_ttl: float = PROCESS_TTL) -> None:
        self._bus = bus
        self._heartbeat = heartbeat
        self._process_ttl = process_ttl
        self._own_key = bus.key("online", bus.process_id)
        self._processes = bus.key("processes")
        self._changed: Callable[[], None] = lambda: None
        self._last_elsewhere: set[Person] | None = None
        self._beating: asyncio.Task[None] | None = None
        self._here: list[Person] = []

    def start(self, changed: Callable[[], None]) -> None:
        self._changed = changed
        self._bus.on("presence", self._heard)
        self._beating = asyncio.ensure_future(self._beat())

    async def stop(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)
        with contextlib.suppress(SessionStoreUnavailable):
            await self._bus.run(self._bus.client.delete(self._own_key))
            await self._bus.run(self._bus.client.zrem(self._processes, self._bus.process_id))
            await self._bus.publish("presence", None)

    async def share(self, here: list[Person]) -> None:
        self._here = here
        await self._write_own_set()
        await self._bus.publish("presence", None)

    async def _write_own_set(self) -> None:
        """This process's users and heartbeat, written whole (so that a set lost while Redis
        was away comes back with the next heartbeat)."""
        async with self._bus.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._own_key)
            if self._here:
                pipe.sadd(self._own_key, *(f"{tag} {name}" for name, tag in self._here))
            pipe.pexpire(self._own_key, int(self._process_ttl * 1000))
            pipe.zadd(self._processes, {self._bus.process_id: time.time()})
            await self._bus.run(pipe.execute(), writes=True)

    async def elsewhere(self) -> set[Person]:
        client = self._bus.client
        await self._bus.run(client.zremrangebyscore(self._processes, "-inf", time.time() - 3 * self._process_ttl))
        others = []
        for process in await self._bus.run(client.zrange(self._processes, 0, -1)):
            if not PROCESS_ID.fullmatch(process):  # a key name made of anything: not followed
                self._bus.ignored.skip("processes", process, BadValue("not a process id"))
            elif process.decode() != self._bus.process_id:
                others.append(self._bus.key("online", process.decode()))
        if not others:
            return set()
        people = set()
        try:
            members = await self._bus.run(client.sunion(others))
        except ResponseError as error:  # WRONGTYPE: one of the keys is no set
            self._bus.ignored.skip("online", others, BadValue(str(error)))
            return people
        for member in members:
            try:
                people.add(Person(*person(member)))
            except BadValue as error:  # not what a process writes: nobody is shown for it
                self._bus.ignored.skip("online", member, error)
        return people

    async def _heard(self, _: object) -> None:
        self._changed()

    async def _beat(self) -> None:
        """Stay alive in the others' eyes, and notice a process that died without a word."""
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self._write_own_set()
                elsewhere = await self.elsewhere()
            except SessionStoreUnavailable:
                continue
            if self._last_elsewhere is not None and elsewhere != self._last_elsewhere:
                self._changed()
            self._last_elsewhere = elsewhere
