"""The recent chat in Redis, one list shared by every process (key `history`, the last N
messages as JSON, trimmed on every message; it lives as long as Redis keeps it)."""

from __future__ import annotations

from redis.exceptions import ResponseError

from .. import packet_json
from ..history import DEFAULT_HISTORY, Message
from .bus import RedisBus
from .values import BadValue, chat_message


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
            pipe.rpush(self._key, packet_json.dumps(message, separators=(",", ":")))  # UTF-8, as sent
            pipe.ltrim(self._key, -self.size, -1)
            await self._bus.run(pipe.execute(), writes=True)

    async def recent(self) -> list[Message]:
        """The kept messages that are what the app writes; any other entry is skipped (and
        logged once), so one bad entry can neither fail every connect nor reach anyone."""
        if self.size == 0:
            return []
        messages: list[Message] = []
        try:
            items = await self._bus.run(self._bus.client.lrange(self._key, 0, -1))
        except ResponseError as error:  # WRONGTYPE: the key is no list
            self._bus.ignored.skip("history", self._key, BadValue(str(error)))
            return messages
        for item in items:
            try:
                messages.append(chat_message(item))
            except BadValue as error:
                self._bus.ignored.skip("history", item, error)
        return messages
