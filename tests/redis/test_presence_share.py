"""A presence change batch in Redis mode costs one round trip: this process's set and the word
to the others go in one transaction, and the others hear it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

import pytest

from tests.support.waiting import eventually
from tornado_app.redis.bus import RedisBus
from tornado_app.redis.presence import HEARTBEAT_SECONDS, RedisPresence
from tornado_app.registry import Person

pytestmark = pytest.mark.process


class Heard:
    """A PresenceListener that keeps who is where."""

    def __init__(self) -> None:
        self.people: dict[str, set[Person]] = {}

    def joined(self, where: str, people: Iterable[Person]) -> None:
        self.people.setdefault(where, set()).update(people)

    def left(self, where: str, people: Iterable[Person]) -> None:
        self.people.setdefault(where, set()).difference_update(people)

    def replace(self, where: str, people: Iterable[Person]) -> None:
        self.people[where] = set(people)

    def places(self) -> list[str]:
        return list(self.people)


class CountingBus:
    """The bus, counting the commands (or pipelines) sent: one round trip each."""

    def __init__(self, bus: RedisBus) -> None:
        self._bus = bus
        self.round_trips = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bus, name)

    async def run(self, command: Awaitable[Any], writes: bool = False) -> Any:
        self.round_trips += 1
        return await self._bus.run(command, writes=writes)

    async def publish(self, channel: str, payload: Any) -> None:
        await self.run(self._bus.client.publish(*self._bus.message(channel, payload)))


@pytest.mark.gen_test(timeout=60)
async def test_a_change_batch_is_one_round_trip_and_reaches_the_other_processes(redis_url: str) -> None:
    ada, grace = Person("ada", "AAAAAAAAAAA"), Person("grace", "BBBBBBBBBBB")
    here_bus, there_bus = RedisBus(redis_url), RedisBus(redis_url)
    counting = CountingBus(here_bus)
    here = RedisPresence(counting, heartbeat=HEARTBEAT_SECONDS * 100)  # type: ignore[arg-type]  # a stand-in bus
    there = RedisPresence(there_bus)
    heard = Heard()
    await here_bus.start()
    await there_bus.start()
    try:
        here.start(Heard(), list)
        there.start(heard, list)
        await eventually(lambda: counting.round_trips >= 2, what="here's first heartbeat written")
        await asyncio.sleep(0.2)  # (its heartbeat's reads done: nothing else until the next, far away)
        before = counting.round_trips
        await here.share([ada, grace], [])
        await here.share([], [grace])
        assert counting.round_trips - before == 2  # one per batch
        await eventually(lambda: heard.people.get(here_bus.process_id) == {ada}, what="ada (only) online here, heard there")
        assert set(await here_bus.client.smembers(here_bus.key("online", here_bus.process_id))) == {b"AAAAAAAAAAA ada"}
    finally:
        await here.stop()
        await there.stop()
        await here_bus.close()
        await there_bus.close()
