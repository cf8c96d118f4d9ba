"""Who is online in the other processes, through Redis: each process publishes its own joins
and leaves, and keeps the others' people in memory from those messages.

Keys (under the bus's prefix):
- `online:<process id>`: the set of people ("<tag> <name>") with a socket on that process,
  changed member by member; it expires `PROCESS_TTL` seconds after the process's last
  heartbeat, so the people of a process that dies without a word (SIGKILL, a lost machine)
  leave everyone's presence by themselves;
- `processes`: a sorted set of process ids scored by their last heartbeat;
- channel `presence`: {"process", "joins", "leaves"}: what changed in one process.

A full read of the others' sets happens only at start, after a resubscription (messages may
have been missed in between), when a process is new, and every `RECONCILE_EVERY`
heartbeats (to repair anything that drifted). No Redis round trip per broadcast or connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable

from redis.exceptions import ResponseError

from ..errors import BackendUnavailable
from ..presence import HERE, PresenceListener
from ..registry import Person
from .bus import RedisBus
from .values import BadValue, person

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 3.0  # how often a process says it is alive and checks on the others
PROCESS_TTL = 10.0  # seconds after a process's last heartbeat that its people count as gone
RECONCILE_EVERY = 10  # heartbeats between two full reads of the others' sets (30 s)
# How long a stop waits for a heartbeat's Redis command under way (ms when Redis answers; a
# command gives up after the bus's 2 s socket timeout) before leaving it behind.
STOP_WAIT_SECONDS = 3.0
PROCESS_ID = re.compile(r"[0-9a-f]{16}")  # RedisBus.process_id


def member(someone: Person) -> str:
    name, tag = someone
    return f"{tag} {name}"


class RedisPresence:
    """A PresenceSource over Redis: this process's changes shared, the others' heard."""

    def __init__(self, bus: RedisBus, heartbeat: float = HEARTBEAT_SECONDS, process_ttl: float = PROCESS_TTL) -> None:
        self._bus = bus
        self._heartbeat = heartbeat
        self._process_ttl = process_ttl
        self._own_key = bus.key("online", bus.process_id)
        self._processes = bus.key("processes")
        self._listener: PresenceListener | None = None
        self._here: Callable[[], list[Person]] = list
        self._beating: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()  # the heartbeat ends on this, not on a cancellation (see stop)
        self._own_set_lost = False  # a change could not be written: write the whole set again
        self._read_in_subscription = -1  # the subscription whose messages we have read from
        self._known_processes: set[str] = set()  # the other live processes, as last read
        bus.on("presence", self._heard)  # before the bus starts: it subscribes once (heard: ignored until start)

    def start(self, listener: PresenceListener, here: Callable[[], list[Person]]) -> None:
        self._listener = listener
        self._here = here
        self._beating = asyncio.ensure_future(self._beat())

    async def stop(self) -> None:
        """Stop the heartbeat, then take this process's people out of Redis.

        The heartbeat is asked to end (`_stopping`), not cancelled: a cancellation that lands
        in a Redis command can be lost. Python 3.11's `asyncio.wait_for` returns the result,
        dropping the cancellation, when its future is done as the cancellation comes, and
        redis-py sends every command through one; the cancelled task then carried on beating
        for good, and a stop with ~2,000 sockets now and then never ended (tests/redis/test_presence_stop.py)."""
        self._stopping.set()
        beating = self._beating
        if beating is not None and not beating.done():
            done, _ = await asyncio.wait({beating}, timeout=STOP_WAIT_SECONDS)
            if not done:
                log.warning("presence heartbeat still waiting on Redis %g s after the stop; left behind", STOP_WAIT_SECONDS)
                beating.cancel()  # it ends by itself after its command in any case (_stopping)
        with contextlib.suppress(BackendUnavailable):
            leaving = [member(someone) for someone in self._here()]
            await self._bus.run(self._bus.client.delete(self._own_key))
            await self._bus.run(self._bus.client.zrem(self._processes, self._bus.process_id))
            await self._publish([], leaving)

    async def share(self, joins: list[Person], leaves: list[Person]) -> None:
        """Write this process's changes to its set and tell the others, in one transaction
        (one round trip per batch, not two; O(changes))."""
        change = self._change([member(someone) for someone in joins], [member(someone) for someone in leaves])
        if self._own_set_lost:
            await self._write_own_set()
            await self._bus.publish(*change)
            return
        try:
            async with self._bus.client.pipeline(transaction=True) as pipe:
                if joins:
                    pipe.sadd(self._own_key, *map(member, joins))
                if leaves:
                    pipe.srem(self._own_key, *map(member, leaves))
                pipe.pexpire(self._own_key, int(self._process_ttl * 1000))
                pipe.publish(*self._bus.message(*change))
                await self._bus.run(pipe.execute(), writes=True)
        except BackendUnavailable:
            self._own_set_lost = True
            raise

    def _change(self, joins: list[str], leaves: list[str]) -> tuple[str, dict[str, object]]:
        """The channel and payload that tell the others of a change here."""
        return "presence", {"process": self._bus.process_id, "joins": joins, "leaves": leaves}

    async def _publish(self, joins: list[str], leaves: list[str]) -> None:
        await self._bus.publish(*self._change(joins, leaves))

    async def _write_own_set(self) -> None:
        """This process's people and heartbeat, written whole (after an outage, a change may
        be missing from Redis)."""
        here = self._here()
        async with self._bus.client.pipeline(transaction=True) as pipe:
            pipe.delete(self._own_key)
            if here:
                pipe.sadd(self._own_key, *map(member, here))
            pipe.pexpire(self._own_key, int(self._process_ttl * 1000))
            pipe.zadd(self._processes, {self._bus.process_id: time.time()})
            await self._bus.run(pipe.execute(), writes=True)
        self._own_set_lost = False

    async def _heard(self, payload: object) -> None:
        """Another process's changes, checked like client input (a bad entry is skipped)."""
        if not (isinstance(payload, dict) and isinstance(payload.get("process"), str)
                and PROCESS_ID.fullmatch(payload["process"])
                and isinstance(payload.get("joins"), list) and isinstance(payload.get("leaves"), list)):
            raise BadValue("not a presence change")  # the bus skips it, with one line
        if self._listener is None:
            return
        process = payload["process"]
        self._listener.joined(process, self._people(payload["joins"]))
        self._listener.left(process, self._people(payload["leaves"]))

    def _people(self, members: list[object]) -> list[Person]:
        people = []
        for entry in members:
            try:
                people.append(Person(*person(entry.encode() if isinstance(entry, str) else b"")))
            except BadValue as error:
                self._bus.ignored.skip("presence", entry, error)
        return people

    async def _read_everyone(self) -> None:
        """A full read: each live process's set, replacing what we knew of it; processes gone
        (no heartbeat for PROCESS_TTL) take their people with them."""
        assert self._listener is not None
        client = self._bus.client
        live = await self._live_processes()
        for process in live:
            try:
                members = await self._bus.run(client.smembers(self._bus.key("online", process)))
            except ResponseError as error:  # WRONGTYPE: the key is no set
                self._bus.ignored.skip("online", process, BadValue(str(error)))
                members = set()
            people = []
            for entry in members:
                try:
                    people.append(Person(*person(entry)))
                except BadValue as error:  # not what a process writes: nobody is shown for it
                    self._bus.ignored.skip("online", entry, error)
            self._listener.replace(process, people)
        for process in self._listener.places():
            if process != HERE and process not in live:
                self._listener.replace(process, [])
        self._known_processes = live
        await self._bus.run(client.zremrangebyscore(self._processes, "-inf", time.time() - 3 * self._process_ttl))

    async def _beat(self) -> None:
        """Stay alive in the others' eyes; read everyone at start, after a resubscription and
        every RECONCILE_EVERY beats; otherwise notice only processes that died or appeared."""
        beats = 0
        while not self._stopping.is_set():
            try:
                await self._write_own_set() if self._own_set_lost or beats == 0 else await self._touch()
                subscription = self._bus.subscription
                if beats % RECONCILE_EVERY == 0 or subscription != self._read_in_subscription:
                    if self._bus.subscribed.is_set():
                        self._read_in_subscription = subscription
                    await self._read_everyone()
                else:
                    await self._check_processes()
            except BackendUnavailable:
                pass
            beats += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._heartbeat)

    async def _touch(self) -> None:
        async with self._bus.client.pipeline(transaction=True) as pipe:
            pipe.pexpire(self._own_key, int(self._process_ttl * 1000))
            pipe.zadd(self._processes, {self._bus.process_id: time.time()})
            result = await self._bus.run(pipe.execute(), writes=True)
        if not result[0]:  # the set expired (Redis was away longer than PROCESS_TTL)
            await self._write_own_set()

    async def _live_processes(self) -> set[str]:
        """The other processes with a heartbeat in the last PROCESS_TTL seconds."""
        cutoff = time.time() - self._process_ttl
        live = set()
        for member, beat in await self._bus.run(self._bus.client.zrange(self._processes, 0, -1, withscores=True)):
            process = member.decode(errors="replace")
            if not PROCESS_ID.fullmatch(process):  # a key name made of anything: not followed
                self._bus.ignored.skip("processes", process, BadValue("not a process id"))
            elif process != self._bus.process_id and beat >= cutoff:
                live.add(process)
        return live

    async def _check_processes(self) -> None:
        """Only the list of processes (one small read): a new one is read whole, a dead one's
        people leave."""
        assert self._listener is not None
        live = await self._live_processes()
        if live - self._known_processes:
            await self._read_everyone()
            return
        for process in self._known_processes - live:
            self._listener.replace(process, [])
        self._known_processes = live
