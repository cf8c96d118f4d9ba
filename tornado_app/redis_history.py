"""The recent chat in Redis, one list shared by every process (key `history`, the last N
messages as JSON, trimmed on every message; it lives as long as Redis keeps it)."""

from __future__ import annotations

import json

from .history import DEFAULT_HISTORY, Message
from .redis_bus import RedisBus


class RedisHistory:
    def __init__(self, bus: RedisBus, size: int = DEFAULT_HISTORY) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        self.size = size
        self._bus = bus
        self._key = bus.key("history")

    async def add(self, message: Message) -> None:
        if self.size == 0:
            return
        async with self._bus.client.pipeline(transaction=True) as pipe:
            pipe.rpush(self._key, json.dumps(message, separators=(",", ":")))
            pipe.ltrim(self._key, -self.size, -1)
            await self._bus.run(pipe.execute())

    async def recent(self) -> list[Message]:
        if self.size == 0:
            return []
        return [json.loads(item) for item in await self._bus.run(self._bus.client.lrange(self._key, 0, -1))]
