"""The chat as kept: each message gets a position, so that a page that was away can ask for
exactly what it missed, and each sender's message ids, so that a retry never posts twice.

A position is "<epoch>:<n>": `n` counts the messages (1, 2, 3... with no gap), and the epoch
names the count (a random word per process in memory, per Redis history in redis/history.py).
A page that comes back with a position of this epoch gets the messages after it, if they are
still kept; one of another epoch (a restart, a Redis that lost its data), from the future or
garbage cannot be caught up, and the page is shown the latest messages instead.

Bounded: the last `KEPT_FOR_CATCH_UP` messages are kept (or `--history`, if larger; none with
`--history 0`), each at most `largest_message_bytes()`; newcomers are shown the last `size`.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Protocol

from . import packet_json
from .settings import PRODUCTION
from .skeleton import skeleton
from .validation import MAX_CHAT_BYTES, MAX_USERNAME_LENGTH

KEPT_FOR_CATCH_UP = 1000  # messages kept for pages that come back after a gap
SENT_REMEMBERED = 100  # message ids remembered per session: a retry is of one of the last few
# The character whose skeleton (skeleton.py) is the longest in UTF-8: U+FDFA, an Arabic
# ligature that NFKC spells out in 18 letters (30 bytes). tests/test_skeleton.py checks that no
# other code point's is longer.
WIDEST_SKELETON_CHARACTER = "\ufdfa"
POSITION = re.compile(r"([A-Za-z0-9]{1,16}):(0|[1-9][0-9]{0,15})")

Message = dict[str, Any]


def new_epoch() -> str:
    return secrets.token_hex(4)


def position(epoch: str, n: int) -> str:
    return f"{epoch}:{n}"


def parse_position(value: object) -> tuple[str, int] | None:
    """(epoch, n) of a position a client sent, or None for anything else."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    match = POSITION.fullmatch(value)
    return None if match is None else (match[1], int(match[2]))


@dataclass(frozen=True)
class Stored:
    """What `add` did: the message as kept (None: a repeat whose original is no longer kept),
    and whether it is new (False: its id was accepted before, and nothing was posted again).

    `announced`, for a repeat: whether the first one is known to have been sent to everyone
    (`announce` was called for it). A store that did not answer in time may still have kept a
    message (Redis runs a command it received while hung, after its caller gave up), and a
    process may end between keeping one and sending it: then the repeat is the one to send it."""

    message: Message | None
    new: bool
    announced: bool = False


@dataclass(frozen=True)
class Recent:
    """Messages, oldest first, and the position of the newest message kept anywhere."""

    messages: list[Message]
    position: str


class ChatHistory(Protocol):
    """Where messages are kept."""

    size: int

    async def add(self, message: Message, sender: str, client_id: str | None) -> Stored:
        """Keep `message` with the next position, unless `sender` (a session id) already
        sent `client_id`: then nothing changes, and the first one is returned."""

    async def recent(self) -> Recent:
        """The last `size` messages."""

    async def since(self, after: str) -> Recent | None:
        """Exactly the messages after the position `after`, oldest first, if this history
        still keeps them all; None if not (another epoch, the future, garbage, trimmed)."""

    async def announce(self, sender: str, client_id: str, stored: Stored) -> None:
        """The message `sender` sent as `client_id` was sent to everyone: a repeat of it is
        answered without sending it again."""

    def forget_sender(self, sender: str) -> None:
        """The session ended: its message ids need not be remembered."""


def kept_for_catch_up(size: int) -> int:
    return 0 if size == 0 else max(size, KEPT_FOR_CATCH_UP)


class MemoryHistory:
    """This process's messages, counted in an epoch that is new each time it starts."""

    def __init__(self, size: int = PRODUCTION.history) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        self.size = size
        self.epoch = new_epoch()
        self._count = 0
        self._messages: deque[Message] = deque(maxlen=kept_for_catch_up(size))
        self._sent: dict[str, OrderedDict[str, int]] = {}  # session id -> client id -> n
        self._announced: dict[str, set[str]] = {}  # session id -> the client ids of those sent to everyone

    async def add(self, message: Message, sender: str, client_id: str | None) -> Stored:
        sent = self._sent.setdefault(sender, OrderedDict()) if client_id is not None else None
        if sent is not None and client_id is not None and client_id in sent:
            return Stored(self._kept(sent[client_id]), new=False, announced=client_id in self._announced.get(sender, ()))
        self._count += 1
        kept = {**message, "position": position(self.epoch, self._count)}
        if self._messages.maxlen:
            self._messages.append(kept)
        if sent is not None and client_id is not None:
            sent[client_id] = self._count
            if len(sent) > SENT_REMEMBERED:
                forgotten, _ = sent.popitem(last=False)
                self._announced.get(sender, set()).discard(forgotten)
        return Stored(kept, new=True)

    def _kept(self, n: int) -> Message | None:
        first = self._count - len(self._messages) + 1
        return self._messages[n - first] if first <= n <= self._count else None

    async def recent(self) -> Recent:
        newest = list(self._messages)[-self.size:] if self.size else []
        return Recent(newest, position(self.epoch, self._count))

    async def since(self, after: str) -> Recent | None:
        parsed = parse_position(after)
        if parsed is None or parsed[0] != self.epoch:
            return None
        n = parsed[1]
        first = self._count - len(self._messages) + 1
        if n > self._count or n < first - 1:
            return None
        missed = list(self._messages)[n - first + 1:] if n < self._count else []
        return Recent(missed, position(self.epoch, self._count))

    async def announce(self, sender: str, client_id: str, stored: Stored) -> None:
        if client_id in self._sent.get(sender, ()):
            self._announced.setdefault(sender, set()).add(client_id)

    def forget_sender(self, sender: str) -> None:
        self._sent.pop(sender, None)
        self._announced.pop(sender, None)


def largest_message_bytes() -> int:
    """The most bytes one kept message can take in the history frame: the longest name and
    text in 4-byte characters (MAX_CHAT_BYTES bounds the text as it is encoded), the longest
    skeleton a name can have, a time of 12 digits, the longest position, and the comma before
    the next."""
    widest = "\U0001F600"
    largest = {"id": "0" * 12, "username": widest * MAX_USERNAME_LENGTH, "tag": "0" * 11,
               "skeleton": skeleton(WIDEST_SKELETON_CHARACTER * MAX_USERNAME_LENGTH),
               "text": widest * (MAX_CHAT_BYTES // 4), "time": 10**12, "position": "0" * 16 + ":" + "9" * 16}
    return len(packet_json.dumps(largest, separators=(",", ":")).encode()) + 1


def history_frame_bytes(size: int) -> int:
    """The most bytes of the `history` event sent to each newcomer, with `size` messages kept
    (the Engine.IO and Socket.IO prefix, the position and resume words, and the WebSocket
    frame's header, included)."""
    envelope = '42["history",{"messages":[],"position":"' + "0" * 16 + ":" + "9" * 16 + '","resume":"could_not"}]'
    return len(envelope) + 10 + size * largest_message_bytes()
