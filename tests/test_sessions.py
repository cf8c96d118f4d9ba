"""The session stores' one behaviour, run against each store (in memory, and in a real
Redis): fresh ids, idle expiry, LRU eviction, and end notifications."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from tests.support.clock import FakeClock
from tornado_app.redis.bus import RedisBus
from tornado_app.redis.sessions import RedisSessionStore
from tornado_app.sessions import MemorySessionStore, Session, SessionStore


@pytest.fixture
def ended() -> list[tuple[str, str]]:
    return []


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.process)])
def make_store(request: pytest.FixtureRequest, clock: FakeClock, ended: list[tuple[str, str]],
               io_loop: IOLoop) -> Iterator[Callable[..., SessionStore]]:
    """A factory: `make_store(ttl=...)` builds a store of the parameter's kind on the fake
    clock, recording every end in `ended`; all are closed after the test."""
    made: list[SessionStore] = []

    def make(ttl: float = 100) -> SessionStore:
        if request.param == "redis":
            store: Any = RedisSessionStore(RedisBus(request.getfixturevalue("redis_url")), ttl=ttl, max_sessions=3, clock=clock)
        else:
            store = MemorySessionStore(ttl=ttl, max_sessions=3, clock=clock)

        async def record(session: Session, reason: str) -> None:
            ended.append((session.username, reason))

        store.add_end_listener(record)
        made.append(store)
        return store

    yield make
    for store in made:
        io_loop.run_sync(store.close)


@pytest.fixture
def store(make_store: Callable[..., SessionStore]) -> SessionStore:
    return make_store()


async def listening(store: SessionStore) -> SessionStore:
    """Started, and (Redis) subscribed to the session endings: only then does the Redis store
    answer the sessions it saw recently from memory, as a running server's does."""
    await store.start()
    if isinstance(store, RedisSessionStore):
        await asyncio.wait_for(store._bus.subscribed.wait(), 10)  # noqa: SLF001 (no public way to wait for it)
    return store


def same(found: Session | None, expected: Session) -> bool:
    """The same session (a networked store gives a new object with the same content)."""
    return found is not None and (found.id, found.username, found.logged_in_at, found.tag) == (expected.id, expected.username, expected.logged_in_at, expected.tag)


@pytest.mark.gen_test
async def test_create_gives_a_fresh_unguessable_id_each_time(store: SessionStore) -> None:
    first = await store.create("ada")
    second = await store.create("ada")
    assert first.id != second.id
    assert len(first.id) == 43  # 32 random bytes, URL-safe base64
    assert same(await store.get(first.id), first)
    assert same(await store.get(second.id), second)


@pytest.mark.gen_test
async def test_get_refuses_unknown_empty_and_missing_ids(store: SessionStore) -> None:
    await store.create("ada")
    assert await store.get("no-such-id") is None
    assert await store.get("") is None
    assert await store.get(None) is None


@pytest.mark.gen_test
async def test_public_view_holds_username_and_login_time_never_the_id(store: SessionStore, clock: FakeClock) -> None:
    session = await store.create("ada")
    assert session.public_view() == {"username": "ada", "logged_in_at": int(clock.now)}


@pytest.mark.gen_test
async def test_idle_session_expires_after_ttl(store: SessionStore, clock: FakeClock, ended: list) -> None:
    session = await store.create("ada")
    clock.advance(100)
    assert same(await store.get(session.id), session)  # exactly at the TTL: still alive
    clock.advance(100.5)
    assert await store.get(session.id) is None
    assert ended == [("ada", "expired")]
    assert await store.count() == 0


@pytest.mark.gen_test
async def test_use_refreshes_the_idle_timer(store: SessionStore, clock: FakeClock) -> None:
    session = await store.create("ada")
    for _ in range(5):
        clock.advance(80)
        assert same(await store.get(session.id), session)
    assert session.logged_in_at == clock.now - 400


@pytest.mark.gen_test
async def test_a_session_in_use_outlives_a_short_ttl_and_an_idle_one_expires(
    make_store: Callable[..., SessionStore], clock: FakeClock, ended: list,
) -> None:
    """Issue 17: with a 3 s TTL, a page that reports activity every 0.5 s stays logged in,
    while the server sweeps and audits (as app.py does) every quarter second in between.
    The Redis store answered such reads from memory for up to 3 s without renewing the
    session in Redis, so the sweep expired a session in use."""
    store = await listening(make_store(ttl=3))
    in_use, idle = await store.create("in use"), await store.create("idle")
    # Reports land between the store's own reads (none exactly on a TTL boundary), as they
    # would on a real clock.
    for step in range(1, 48):  # 12 s in quarter seconds
        clock.advance(0.25)
        if step % 2:
            assert same(await store.get(in_use.id), in_use), f"the session in use expired after {step / 4} s"
        await store.sweep()
        await store.audit([in_use.id])
    assert ended == [("idle", "expired")]
    assert await store.get(idle.id) is None
    assert same(await store.get(in_use.id), in_use)


@pytest.mark.gen_test
async def test_sweep_removes_only_expired_sessions(store: SessionStore, clock: FakeClock, ended: list) -> None:
    old = await store.create("old")
    clock.advance(60)
    fresh = await store.create("fresh")
    clock.advance(60)
    assert await store.sweep() == 1
    assert ended == [("old", "expired")]
    assert await store.get(old.id) is None
    assert same(await store.get(fresh.id), fresh)


@pytest.mark.gen_test
async def test_full_store_evicts_the_least_recently_used(store: SessionStore, clock: FakeClock, ended: list) -> None:
    a = await store.create("a")
    b = await store.create("b")
    c = await store.create("c")
    clock.advance(1)
    await store.get(a.id)  # a is now more recent than b
    d = await store.create("d")
    assert ended == [("b", "evicted")]
    assert await store.count() == 3
    for kept in (a, c, d):
        assert same(await store.get(kept.id), kept)
    assert await store.get(b.id) is None


@pytest.mark.gen_test
async def test_delete_ends_the_session_once(store: SessionStore, ended: list) -> None:
    session = await store.create("ada")
    assert same(await store.delete(session.id), session)
    assert await store.delete(session.id) is None
    assert ended == [("ada", "logout")]


@pytest.mark.gen_test
async def test_clear_ends_every_session(store: SessionStore, ended: list) -> None:
    await store.create("a")
    await store.create("b")
    await store.clear()
    assert await store.count() == 0
    assert sorted(ended) == [("a", "shutdown"), ("b", "shutdown")]


@pytest.mark.parametrize("kwargs", [{"ttl": 0}, {"max_sessions": 0}])
def test_nonsense_limits_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MemorySessionStore(**kwargs)
    with pytest.raises(ValueError):
        RedisSessionStore(RedisBus("redis://127.0.0.1:1/0"), **kwargs)


@pytest.mark.gen_test
async def test_idle_left_counts_down_and_asking_it_is_not_a_use(make_store: Callable[..., SessionStore], clock: FakeClock) -> None:
    """What the page's warning a minute before expiry reads: the time left falls as nobody
    uses the session, asking does not renew it, and a use does."""
    store = make_store(ttl=100)
    session = await store.create("ada")
    clock.advance(30)
    assert await store.idle_left(session.id) == pytest.approx(70)
    clock.advance(10)
    assert await store.idle_left(session.id) == pytest.approx(60)  # the first question renewed nothing
    assert await store.get(session.id) is not None
    assert await store.idle_left(session.id) == pytest.approx(100)
    await store.delete(session.id)
    assert await store.idle_left(session.id) is None
    assert await store.idle_left("no-such-session") is None
