"""The chat as kept, in both stores: positions that count every message, exactly what came
after a position while it is kept, and a client's message id accepted once per session."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tornado_app.history import KEPT_FOR_CATCH_UP, ChatHistory, MemoryHistory, parse_position
from tornado_app.redis.bus import RedisBus
from tornado_app.redis.history import RedisHistory
from tornado_app.sockets import EncodedRecent


def message(n: int) -> dict[str, Any]:
    return {"id": f"{n:012x}", "username": "ada", "tag": "AAAAAAAAAAA", "skeleton": "ada", "text": f"message {n}", "time": n}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.process)])
def make_history(request: pytest.FixtureRequest, io_loop: Any) -> Any:
    buses: list[RedisBus] = []

    def make(size: int = 50) -> ChatHistory:
        if request.param == "memory":
            return MemoryHistory(size)
        bus = RedisBus(request.getfixturevalue("redis_url"))
        buses.append(bus)
        return RedisHistory(bus, size)

    yield make
    for bus in buses:
        io_loop.run_sync(bus.close)


@pytest.mark.gen_test
async def test_positions_count_every_message_and_since_tells_exactly_what_came_after(make_history: Callable[..., ChatHistory]) -> None:
    history = make_history(size=3)
    start = (await history.recent()).position
    epoch, zero = parse_position(start)  # type: ignore[misc]  # a position just read
    assert zero == 0
    stored = [(await history.add(message(n), "session-a", None)).message for n in range(1, 6)]
    assert [m["position"] for m in stored] == [f"{epoch}:{n}" for n in range(1, 6)]  # type: ignore[index]  # messages just kept
    recent = await history.recent()
    assert recent.messages == stored[-3:] and recent.position == f"{epoch}:5"  # newcomers: the last `size`
    assert (await history.since(start)).messages == stored  # type: ignore[union-attr]  # kept for catching up: more
    assert (await history.since(f"{epoch}:3")).messages == stored[3:]  # type: ignore[union-attr]  # kept for catching up
    assert (await history.since(f"{epoch}:5")).messages == []  # type: ignore[union-attr]  # kept for catching up
    for cannot in [f"{epoch}:6", f"{'z' * 8}:1", "garbage", ""]:
        assert await history.since(cannot) is None, cannot


@pytest.mark.gen_test
async def test_a_client_id_is_accepted_once_per_session(make_history: Callable[..., ChatHistory]) -> None:
    history = make_history()
    first = await history.add(message(1), "session-a", "retry-me")
    again = await history.add(message(2), "session-a", "retry-me")  # the retry after a lost answer
    assert first.new and not again.new and again.message == first.message
    other_session = await history.add(message(3), "session-b", "retry-me")  # ids are per session
    other_id = await history.add(message(4), "session-a", "another")
    assert other_session.new and other_id.new
    assert [m["text"] for m in (await history.recent()).messages] == ["message 1", "message 3", "message 4"]


@pytest.mark.gen_test(timeout=60)
async def test_what_is_no_longer_kept_cannot_be_caught_up(make_history: Callable[..., ChatHistory]) -> None:
    history = make_history()
    first = await history.add(message(0), "s", None)
    for n in range(1, KEPT_FOR_CATCH_UP + 150):
        await history.add(message(n), "s", None)
    assert await history.since(first.message["position"]) is None  # type: ignore[index]  # trimmed
    epoch = first.message["position"].partition(":")[0]  # type: ignore[index]  # a message just kept
    caught_up = await history.since(f"{epoch}:150")  # 1,150 said: the last 1,000 are always kept
    assert caught_up is not None and len(caught_up.messages) == KEPT_FOR_CATCH_UP


@pytest.mark.gen_test
async def test_a_redis_that_lost_the_count_starts_a_new_epoch(redis_url: str) -> None:
    """Restarted empty, or the count evicted: an old position must not read as one of the new
    count (which would replay the wrong messages as "caught up")."""
    bus = RedisBus(redis_url)
    try:
        history = RedisHistory(bus)
        old = (await history.add(message(1), "s", None)).message["position"]  # type: ignore[index]  # new: kept
        with redis.Redis.from_url(redis_url) as client:
            client.delete("tornado_app:chat:count")
        new = (await history.add(message(2), "s", None)).message["position"]  # type: ignore[index]  # new: kept
        assert new.partition(":")[0] != old.partition(":")[0] and new.endswith(":1")
        assert await history.since(old) is None
        with redis.Redis.from_url(redis_url) as client:
            client.set("tornado_app:chat", "not a stream")  # someone wrote over it
        assert (await history.add(message(3), "s", None)).new  # a new epoch again, not an error
        assert [m["text"] for m in (await history.recent()).messages] == ["message 3"]
    finally:
        await bus.close()


@pytest.mark.gen_test
async def test_a_newcomers_history_is_encoded_once_until_a_message_is_added(make_history: Callable[..., ChatHistory]) -> None:
    history, encoded = make_history(size=3), EncodedRecent()
    first = encoded.encoded(await history.recent(), "none")
    assert encoded.encoded(await history.recent(), "none") is first  # the same text, not encoded again
    await history.add(message(1), "session-a", "client-1")
    history.forget_sender("session-a")
    after_one = encoded.encoded(await history.recent(), "none")
    assert after_one is not first and '"text":"message 1"' in after_one.text
    assert encoded.encoded(await history.recent(), "none") is after_one
    could_not = encoded.encoded(await history.recent(), "could_not")  # each resume word its own text
    assert '"resume":"could_not"' in could_not.text and '"resume":"none"' in after_one.text
    for n in range(2, 6):
        await history.add(message(n), "session-a", None)
    latest = encoded.encoded(await history.recent(), "none")
    assert [kept["text"] for kept in json.loads(latest.text)["messages"]] == ["message 3", "message 4", "message 5"]
