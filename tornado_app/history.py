"""The recent chat, so that someone who arrives late (or reloads) sees the conversation.

Bounded: the last `size` messages (`--history`). In memory it is this process's; with Redis
(redis/history.py) every process shares one list.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from . import packet_json
from .skeleton import skeleton
from .validation import MAX_CHAT_BYTES, MAX_USERNAME_LENGTH

DEFAULT_HISTORY = 50  # messages kept and sent to each socket as it is accepted
# The character whose skeleton (skeleton.py) is the longest in UTF-8: U+FDFA, an Arabic
# ligature that NFKC spells out in 18 letters (30 bytes). tests/test_skeleton.py checks that no
# other code point's is longer.
WIDEST_SKELETON_CHARACTER = "\ufdfa"

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


def largest_message_bytes() -> int:
    """The most bytes one kept message can take in the history frame: the longest name and
    text in 4-byte characters (MAX_CHAT_BYTES bounds the text as it is encoded), the longest
    skeleton a name can have, a time of 12 digits, and the comma before the next."""
    widest = "\U0001F600"
    largest = {"id": "0" * 12, "username": widest * MAX_USERNAME_LENGTH, "tag": "0" * 11,
               "skeleton": skeleton(WIDEST_SKELETON_CHARACTER * MAX_USERNAME_LENGTH),
               "text": widest * (MAX_CHAT_BYTES // 4), "time": 10**12}
    return len(packet_json.dumps(largest, separators=(",", ":")).encode()) + 1


def history_frame_bytes(size: int) -> int:
    """The most bytes of the `history` event sent to each newcomer, with `size` messages kept
    (the Engine.IO and Socket.IO prefix, and the WebSocket frame's header, included)."""
    return len('42["history",{"messages":[]}]') + 10 + size * largest_message_bytes()
