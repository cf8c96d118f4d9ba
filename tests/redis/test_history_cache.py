"""A newcomer's history in Redis mode is read from Redis once per change of the chat, not once
per connect (redis/history.py), and never stale: a message added by another process, heard on
`chat:changed` or as its broadcast arrives here, is in the history the next newcomer gets.

Each "process" here is a bus of its own (its own connections, its own process id); the clock
of the history is frozen, so that only what is heard can make it read Redis again.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis.asyncio

from tests.support.clock import FakeClock
from tests.support.redis_manager import stop_started_manager
from tests.support.waiting import eventually
from tornado_app.backend import Backend
from tornado_app.patches.guard import ProtocolGuardedServer
from tornado_app.redis import values
from tornado_app.redis.bus import RedisBus
from tornado_app.redis.history import RECENT_TRUSTED_SECONDS, RedisHistory

pytestmark = pytest.mark.process


def message(n: int) -> dict[str, Any]:
    return {"id": f"{n:012x}", "username": "ada", "tag": "AAAAAAAAAAA", "skeleton": "ada", "text": f"message {n}", "time": n}


async def settled(history: Any) -> None:
    """Until `history` keeps its answer (a word still to come of an earlier add drops it):
    from then on, only a change heard makes it read Redis again."""

    async def kept() -> bool:
        page = await history.recent()
        return history._recent is not None and history._recent[0] is page  # noqa: SLF001 (what it keeps)

    await eventually(kept, what="the history keeps its answer")


async def evalsha_calls(client: redis.asyncio.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


class Process:
    """A bus and a history on it, started: what one app process has."""

    def __init__(self, redis_url: str, clock: FakeClock) -> None:
        self.bus = RedisBus(redis_url)
        self.history = RedisHistory(self.bus, size=3, clock=clock)

    async def texts(self) -> list[str]:
        return [kept["text"] for kept in (await self.history.recent()).messages]


@pytest.fixture
def processes(redis_url: str, io_loop: Any) -> Any:
    """`await processes()`: one more started process on the test Redis."""
    started: list[Process] = []

    async def start() -> Process:
        process = Process(redis_url, FakeClock())
        started.append(process)
        await process.bus.start()
        return process

    yield start
    for process in started:
        io_loop.run_sync(process.bus.close)


@pytest.mark.gen_test
async def test_newcomers_get_the_same_history_without_a_round_trip_until_the_chat_changes(
        processes: Any, redis_url: str) -> None:
    a = await processes()
    await a.history.add(message(1), "s", None)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        await settled(a.history)
        first = await a.history.recent()
        before = await evalsha_calls(client)
        again = [await a.history.recent() for _ in range(20)]
        await asyncio.sleep(0.2)  # anything still to be heard of the add, heard
        again += [await a.history.recent() for _ in range(20)]
        assert all(page is first for page in again)  # one object: a caller may encode it once
        assert await evalsha_calls(client) == before, "a newcomer's history was read from Redis again"
        await a.history.add(message(2), "s", None)
        assert await a.texts() == ["message 1", "message 2"]  # its own add: read again at once
    finally:
        await client.aclose()


@pytest.mark.gen_test
async def test_a_crowd_of_newcomers_after_a_change_reads_redis_once_and_none_joins_a_read_older_than_a_change(
        processes: Any, redis_url: str) -> None:
    a = await processes()
    await a.history.add(message(1), "s", None)
    await settled(a.history)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        a.history.changed()  # a message came: the next newcomers read Redis
        before = await evalsha_calls(client)
        pages = await asyncio.gather(*[a.history.recent() for _ in range(50)])
        assert await evalsha_calls(client) == before + 1, "each newcomer of the crowd read Redis"
        assert all(page is pages[0] for page in pages)
        # The same for a crowd of pages coming back (after a restart, say), each one behind.
        a.history.changed()
        before = await evalsha_calls(client)
        latest = pages[0].messages[-1]["position"]
        caught_up = await asyncio.gather(*[a.history.since(latest.replace(":1", ":0")) for _ in range(50)])
        assert await evalsha_calls(client) == before + 1, "each page coming back read Redis"
        assert all(page is not None and [kept["text"] for kept in page.messages] == ["message 1"] for page in caught_up)
        # A change heard while a read is under way: who asks after it does not take that read.
        run, answered, gate = a.history._run, asyncio.Event(), asyncio.Event()  # noqa: SLF001 (held below)

        async def held_on_its_way_back(script: str, *args: Any) -> Any:
            answer = await run(script, *args)
            if script == "recent" and not gate.is_set():
                answered.set()
                await gate.wait()  # Redis answered before the change below; the answer comes after it
            return answer

        a.history._run = held_on_its_way_back  # noqa: SLF001
        a.history.changed()
        first = asyncio.ensure_future(a.history.recent())
        await asyncio.wait_for(answered.wait(), 10)
        await a.history.add(message(2), "s", None)
        after_the_change = asyncio.ensure_future(a.history.recent())
        await asyncio.sleep(0.1)
        gate.set()
        assert [kept["text"] for kept in (await first).messages] == ["message 1"]
        assert [kept["text"] for kept in (await after_the_change).messages] == ["message 1", "message 2"]
    finally:
        await client.aclose()


@pytest.mark.gen_test
async def test_a_message_added_by_another_process_is_in_the_next_newcomers_history(processes: Any) -> None:
    a, b = await processes(), await processes()
    await a.history.add(message(1), "s", None)
    assert await b.texts() == ["message 1"]
    await settled(b.history)
    await a.history.add(message(2), "s", None)
    await eventually(lambda: _has(b, "message 2"), what="message 2 in b's history (heard on chat:changed)")


async def _has(process: Process, text: str) -> bool:
    return text in await process.texts()


@pytest.mark.gen_test
async def test_a_page_coming_back_gets_what_it_missed_from_the_kept_history_and_nothing_stale(
        processes: Any, redis_url: str) -> None:
    a, b = await processes(), await processes()
    stored = [(await a.history.add(message(n), "s", None)).message for n in range(1, 6)]
    positions = [kept["position"] for kept in stored if kept is not None]
    await settled(b.history)  # holds messages 3 to 5 (size 3)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        before = await evalsha_calls(client)
        for after, expected in [(positions[4], []), (positions[3], stored[4:]), (positions[1], stored[2:])]:
            caught_up = await b.history.since(after)
            assert caught_up is not None and caught_up.messages == expected and caught_up.position == positions[4]
        assert await evalsha_calls(client) == before, "a page coming back was answered from Redis"
        older = await b.history.since(positions[0])  # older than b holds: Redis is asked
        assert older is not None and older.messages == stored[1:]
        assert await evalsha_calls(client) > before
        assert await b.history.since(positions[4].replace(":5", ":6")) is None  # the future
    finally:
        await client.aclose()
    newer = (await a.history.add(message(6), "s", None)).message

    async def b_tells_it() -> bool:
        caught_up = await b.history.since(positions[4])
        return caught_up is not None and caught_up.messages == [newer]

    await eventually(b_tells_it, what="message 6 told to a page coming back to b")


@pytest.mark.gen_test
async def test_a_new_epoch_begun_by_another_process_reaches_the_next_newcomer(processes: Any, redis_url: str) -> None:
    a, b = await processes(), await processes()
    await a.history.add(message(1), "s", None)
    await settled(b.history)
    old = (await b.history.recent()).position
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        await client.delete("tornado_app:chat:count")  # the count lost: the next script begins an epoch
    finally:
        await client.aclose()
    fresh = (await a.history.recent()).position
    assert fresh.partition(":")[0] != old.partition(":")[0]

    async def b_has_the_new_epoch() -> bool:
        return (await b.history.recent()).position == fresh

    await eventually(b_has_the_new_epoch, what="b's newcomers get the new epoch")


@pytest.mark.gen_test
async def test_an_answer_is_kept_no_longer_than_its_window_even_when_nothing_is_heard(processes: Any, redis_url: str) -> None:
    a = await processes()
    await a.history.add(message(1), "s", None)
    await settled(a.history)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        await client.xadd("tornado_app:chat", {"m": json.dumps(message(2))}, id="2-0")  # by hand: no word on chat:changed
        await client.incr("tornado_app:chat:count")
    finally:
        await client.aclose()
    assert await a.texts() == ["message 1"]  # nothing heard, within the window
    a.history._clock.advance(RECENT_TRUSTED_SECONDS)  # noqa: SLF001 (the history's clock)
    assert await a.texts() == ["message 1", "message 2"]


@pytest.mark.gen_test(timeout=60)
async def test_a_broadcast_delivered_here_makes_the_next_newcomer_read_the_history_again(redis_url: str) -> None:
    """The broadcast of another process's message can come before Redis's word on
    `chat:changed` (two connections): a newcomer who joins after the broadcast was delivered
    here (so it will not get it live) must find the message in its history."""
    backend = Backend.redis(redis_url)
    sio = ProtocolGuardedServer(async_mode="tornado", client_manager=backend.client_manager,
                                session_id_of=lambda handler: None, connect_timeout=10.0)
    await backend.start()
    other = redis.asyncio.Redis.from_url(redis_url)
    manager: Any = backend.client_manager
    try:
        assert await sio.start_manager(10)
        history: Any = backend.history
        history._clock = FakeClock()  # noqa: SLF001 (frozen: only what is heard counts)
        await history.add(message(1), "s", None)
        assert [kept["text"] for kept in (await history.recent()).messages] == ["message 1"]
        await settled(history)
        # Another process's message, whose word on chat:changed is still on its way (written
        # by hand: no word at all), then its broadcast, delivered here.
        await other.xadd("tornado_app:chat", {"m": json.dumps(message(2))}, id="2-0")
        await other.incr("tornado_app:chat:count")
        await other.publish("tornado_app:socketio", manager.json.dumps(
            {"method": "emit", "event": "chat", "data": [message(2)], "namespace": "/", "host_id": "another process"}))

        async def newcomer_has_it() -> bool:
            return "message 2" in [kept["text"] for kept in (await history.recent()).messages]

        await eventually(newcomer_has_it, what="message 2 in the history after its broadcast was delivered")
    finally:
        await stop_started_manager(manager)
        await other.aclose()
        await backend.close()


@pytest.mark.gen_test
async def test_each_entry_is_checked_once_while_read_again_and_a_bad_one_every_time(
        processes: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[object] = []
    check = values.chat_message

    def counting(raw: object) -> dict[str, Any]:
        checked.append(raw)
        return check(raw)

    monkeypatch.setattr(values, "chat_message", counting)
    a = await processes()
    for n in (1, 2):
        await a.history.add(message(n), "s", None)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        await client.xadd("tornado_app:chat", {"m": b"{not json"}, id="3-0")
        await client.incr("tornado_app:chat:count")
    finally:
        await client.aclose()
    for _ in range(3):
        a.history.changed()  # read from Redis each time
        page = await a.history.recent()
        assert [kept["text"] for kept in page.messages] == ["message 1", "message 2"]
        page.messages[0]["text"] = "changed by a caller"  # a copy: the next read is as kept
    assert checked.count(b"{not json") == 3  # skipped every time it is read (logged once: IgnoredValues)
    assert len(checked) - 3 == 2  # each good entry checked once
