"""A session read live from Redis is answered from memory afterwards (redis/sessions.py) only
when every end of it since the read was sent would have been heard: not when the
subscription to `ended` was renewed while the read was under way."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest

from tornado_app.redis.bus import RedisBus
from tornado_app.redis.sessions import RedisSessionStore

pytestmark = pytest.mark.process


class RenewingBus:
    """The bus, counting round trips; with `renew`, the subscription to the channels is
    renewed (as after a dropped connection) while each command is under way."""

    def __init__(self, bus: RedisBus) -> None:
        self._bus = bus
        self.round_trips = 0
        self.renew = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bus, name)

    async def run(self, command: Awaitable[Any], writes: bool = False) -> Any:
        self.round_trips += 1
        result = await self._bus.run(command, writes=writes)
        if self.renew:
            self._bus.subscription += 1  # what RedisBus._listen does once it has subscribed again
        return result


@pytest.mark.gen_test(timeout=60)
async def test_a_session_read_while_the_subscription_was_renewed_is_read_again_next_time(redis_url: str) -> None:
    elsewhere_bus, here_bus = RedisBus(redis_url), RedisBus(redis_url)
    here = RenewingBus(here_bus)
    elsewhere_store = RedisSessionStore(elsewhere_bus)
    store = RedisSessionStore(here)  # type: ignore[arg-type]  # a stand-in bus
    await elsewhere_bus.start()
    await here_bus.start()
    try:
        session = await elsewhere_store.create("ada")  # logged in on another process
        assert await store.get(session.id) is not None
        assert await store.get(session.id) is not None
        assert here.round_trips == 1  # read live once, then answered from memory
        store._trusted.clear()  # noqa: SLF001 (forget it: read it again, below)
        here.renew = True
        assert await store.get(session.id) is not None
        here.renew = False
        assert await store.get(session.id) is not None
        assert here.round_trips == 3, "a session read across a renewed subscription was trusted"
    finally:
        await elsewhere_bus.close()
        await here_bus.close()
