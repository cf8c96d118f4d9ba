"""asyncio.Queue without its three empty deques: ~2.2 KiB less for every queue a socket holds.

Each socket holds two queues for its whole life: engineio's outgoing one (`create_queue`,
engineio_server.py's OutgoingQueue) and the Tornado handler's `receive_queue` (websocket.py).
An asyncio.Queue makes four `collections.deque`s up front, each 760 bytes while empty (a
deque allocates a block of 64 slots at once): its items, its waiting getters, its waiting
putters, and the waiters of its `_finished` Event (join). tracemalloc over 1,000 idle
sockets: 8 deques per socket, 6 KiB of ~37 KiB. Nobody waits on most of them: a socket's
queue has at most one getter (its writer, or the handler's reader), none of these queues
is bounded (so no putter ever waits), and `join` is awaited only by a shutdown's flush.

`LightQueue` is an asyncio.Queue whose three waiter deques are `Waiters`: a list (56 bytes
empty) with the one deque method asyncio's Queue and Event call on them, `popleft`. A list's
`pop(0)` moves the others, which costs nothing for the one or two waiters these queues see.
`ShortQueue` also keeps its items in a list, for a queue with a small bound of its own (the
receive queue holds at most a few frames: websocket.INBOUND_FRAMES).

It relies on asyncio.Queue's `_getters`, `_putters`, `_finished` (an Event with `_waiters`),
`_init` and `_get`, and on asyncio calling only `append`, `popleft`, `remove`, iteration,
`len` and truth on the waiters; tests/patches/test_queues.py checks them against the running
Python, by behaviour (waiting, cancelling, joining).
"""

from __future__ import annotations

import asyncio
from typing import Any


class Waiters(list[Any]):
    """A list that asyncio's Queue and Event can use as their deque of waiting futures."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


class LightQueue(asyncio.Queue[Any]):
    """An unbounded asyncio.Queue whose waiters take no deque (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._getters: Any = Waiters()
        self._putters: Any = Waiters()  # an unbounded queue never fills, but asyncio reads it
        self._finished._waiters = Waiters()  # type: ignore[attr-defined]


class ShortQueue(LightQueue):
    """A LightQueue whose items are in a list too: only for a queue kept short by its user."""

    def _init(self, maxsize: int) -> None:
        self._queue: Any = Waiters()
