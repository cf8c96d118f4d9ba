"""Stopping the Redis presence while its heartbeat has a command under way.

A stop at once (SIGTERM with --drain-seconds 0, SIGINT) with ~2,000 sockets sometimes never
ended: `RedisPresence.stop` cancelled the heartbeat task and awaited it, and a cancellation
that lands in a redis-py command can be lost (Python 3.11's `asyncio.wait_for`, through which
redis-py sends every command, returns the result and drops the cancellation when its future
is done as the cancellation comes). The task went on beating, "cancelling" for good, and the
stop awaited it for good. Here the command under way loses the cancellation the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable
from typing import Any

import pytest

from tornado_app.redis.bus import RedisBus
from tornado_app.redis.presence import RedisPresence
from tornado_app.registry import Person

STOP_BOUND_SECONDS = 10.0  # a stop takes milliseconds; generous for a loaded 2-core machine


class Listener:
    def joined(self, where: str, people: Iterable[Person]) -> None: ...

    def left(self, where: str, people: Iterable[Person]) -> None: ...

    def replace(self, where: str, people: Iterable[Person]) -> None: ...

    def places(self) -> list[str]:
        return []


class CancellationLosingBus:
    """The bus, each heartbeat command taking a moment and losing a cancellation that comes
    meanwhile, as a redis-py command does when the cancellation meets its `wait_for`."""

    def __init__(self, bus: RedisBus) -> None:
        self._bus = bus
        self.under_way = asyncio.Event()
        self.lost_cancellations = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bus, name)

    async def run(self, command: Awaitable[Any], writes: bool = False) -> Any:
        self.under_way.set()
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            self.lost_cancellations += 1  # what asyncio.wait_for does on Python 3.11 when its future is done
        return await self._bus.run(command, writes=writes)


@pytest.mark.gen_test(timeout=STOP_BOUND_SECONDS + 30)
async def test_presence_stops_while_its_heartbeat_waits_on_redis(redis_url: str) -> None:
    bus = RedisBus(redis_url)
    losing = CancellationLosingBus(bus)
    presence = RedisPresence(losing, heartbeat=0.05)  # type: ignore[arg-type]  # a stand-in bus
    await bus.start()  # after its channels are named (RedisBus.on)
    people = [Person(f"p{i}", f"{i:04d}") for i in range(100)]
    try:
        presence.start(Listener(), lambda: people)
        await asyncio.sleep(0.3)  # a few beats
        losing.under_way.clear()
        await asyncio.wait_for(losing.under_way.wait(), STOP_BOUND_SECONDS)  # a beat's command is under way
        started = time.monotonic()
        await asyncio.wait_for(presence.stop(), STOP_BOUND_SECONDS)
        took = time.monotonic() - started
        beating = presence._beating  # noqa: SLF001 (the heartbeat task: no public handle)
        assert beating is not None and beating.done(), "the heartbeat goes on after the stop"
        assert not await bus.client.exists(bus.key("online", bus.process_id)), "this process's people stay in Redis"
        assert took < STOP_BOUND_SECONDS
    finally:
        await bus.close()


@pytest.mark.gen_test(timeout=STOP_BOUND_SECONDS + 30)
async def test_the_bus_closes_though_its_subscription_lost_a_cancellation(redis_url: str) -> None:
    """The bus's subscription task, cancelled as it sends SUBSCRIBE (through the same
    `wait_for`), went on into its endless read of the channel: `RedisBus.close` awaited it."""
    bus = RedisBus(redis_url)
    await bus.start()
    await asyncio.wait_for(bus.subscribed.wait(), STOP_BOUND_SECONDS)
    listener = bus._listener  # noqa: SLF001 (stood in for below: no public handle)
    assert listener is not None
    listener.cancel()  # the real one ends at once: stand in for one that lost its cancellation
    await asyncio.gather(listener, return_exceptions=True)
    lost = asyncio.Event()

    async def listen_after_losing_a_cancellation() -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            lost.set()  # lost, as in the subscription's SUBSCRIBE
        await asyncio.Event().wait()  # the read of the channel, which never ends by itself

    bus._listener = asyncio.ensure_future(listen_after_losing_a_cancellation())  # noqa: SLF001 (the stand-in)
    await asyncio.sleep(0)
    started = time.monotonic()
    await asyncio.wait_for(bus.close(), STOP_BOUND_SECONDS)
    assert lost.is_set() and bus._listener.done()  # noqa: SLF001 (the stand-in, ended)
    assert time.monotonic() - started < STOP_BOUND_SECONDS
