"""patches/queues.py: a socket's queues hold no empty deque, and still behave as asyncio's
Queue does (the same waits, wake-ups, cancellations and joins, checked side by side against
asyncio.Queue on the running Python: an asyncio that called another deque method on its
waiters, or renamed them, fails here)."""

from __future__ import annotations

import asyncio
import gc
from collections import deque
from typing import Any

import aiohttp
import pytest

from tests.support.forms import log_in
from tests.support.wire import WireSocket
from tornado_app.app import TornadoApp
from tornado_app.patches.queues import LightQueue, ShortQueue

QUEUES = [asyncio.Queue, LightQueue, ShortQueue]


def deques_held(queue: asyncio.Queue[Any]) -> int:
    """The deques a queue holds: in its own attributes, and in its Event's."""
    held = [*vars(queue).values(), *vars(queue._finished).values()]  # type: ignore[attr-defined]
    return sum(isinstance(value, deque) for value in held)


@pytest.mark.gen_test
async def test_a_connected_sockets_queues_hold_no_empty_deque(app: TornadoApp, http_server, base_url: str) -> None:
    """engineio's outgoing queue keeps its items in one deque and nothing else; the Tornado
    handler's receive queue (a few frames at most) in none: asyncio.Queue holds four each."""
    sio = app.sockets.sio
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        socket = await WireSocket.connect(http, base_url, await log_in(http, base_url, "ada"), origin=base_url)
        [(eio_sid, engineio_socket)] = sio.eio.sockets.items()
        handler = sio._tornado_handler(eio_sid)
        assert deques_held(engineio_socket.queue) == 1
        assert deques_held(handler.receive_queue) == 0
        assert (await socket.call("whoami"))["username"] == "ada"  # and both carry packets
        await socket.close()


@pytest.mark.parametrize("kind", QUEUES, ids=lambda kind: kind.__name__)
@pytest.mark.gen_test
async def test_waits_wake_ups_cancellations_and_joins_as_asyncios_queue(kind: type[asyncio.Queue[Any]]) -> None:
    """One script of waits, run on each kind; its record must be asyncio.Queue's."""
    queue = kind()
    record: list[object] = []

    async def getter(name: str) -> None:
        record.append((name, await queue.get()))
        queue.task_done()

    first, second = asyncio.ensure_future(getter("first")), asyncio.ensure_future(getter("second"))
    cancelled = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # all three wait, in this order
    cancelled.cancel()
    await asyncio.sleep(0)
    queue.put_nowait("a")
    queue.put_nowait("b")
    queue.put_nowait("c")
    await asyncio.gather(first, second)
    record.append(("left", queue.qsize(), queue.get_nowait()))
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    joined = asyncio.ensure_future(queue.join())
    await asyncio.sleep(0)
    record.append(("joined before task_done", joined.done()))
    queue.task_done()
    await asyncio.wait_for(joined, 5)
    for item in range(100):
        await queue.put(item)  # unbounded: never waits
    record.append(("fifo", [queue.get_nowait() for _ in range(100)] == list(range(100))))
    record.append(("empty", queue.empty(), len(queue._getters), len(queue._putters)))  # type: ignore[attr-defined]

    assert record == [("first", "a"), ("second", "b"), ("left", 1, "c"), ("joined before task_done", False),
                      ("fifo", True), ("empty", True, 0, 0)]
    if kind is not asyncio.Queue:
        gc.collect()
        assert deques_held(queue) == (1 if kind is LightQueue else 0)
