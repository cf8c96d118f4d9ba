"""The recent chat, so that someone who arrives late (or reloads) sees the conversation.

Bounded: the last `size` messages (`--history`). In memory it is this process's; with Redis
(redis/history.py) every process shares one list.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

DEFAULT_HISTORY = 50  # messages kept and sent to each socket as it is accepted

Message = dict[str, Any]


class ChatHistory(Protocol):
    """Where the recent messages are kept."""

    size: int

    async def add(self, message: Message) -> None: ...

    async def recent(self) -> list[Message]:
        """The kept messages, oldest first."""


class MemoryHistory:
    """The last `size` messages of this process."""

    def __init__(self, size: int = DEFAULT_HISTORY) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        self.size = size
        self._messages: deque[Message] = deque(maxlen=size)

    async def add(self, message: Message) -> None:
        self._messages.append(message)

    async def recent(self) -> list[Message]:
        return list(self._messages)
