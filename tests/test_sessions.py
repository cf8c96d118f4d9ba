"""The in-memory session store: fresh ids, idle expiry, LRU eviction, and end notifications."""

from __future__ import annotations

import pytest

from tornado_app.sessions import MemorySessionStore, Session

from .conftest import FakeClock


@pytest.fixture
def ended() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def store(clock: FakeClock, ended: list[tuple[str, str]]) -> MemorySessionStore:
    store = MemorySessionStore(ttl=100, max_sessions=3, clock=clock)

    async def record(session: Session, reason: str) -> None:
        ended.append((session.username, reason))

    store.add_end_listener(record)
    return store


@pytest.mark.gen_test
async def test_create_gives_a_fresh_unguessable_id_each_time(store: MemorySessionStore) -> None:
    first = await store.create("ada")
    second = await store.create("ada")
    assert first.id != second.id
    assert len(first.id) == 43  # 32 random bytes, URL-safe base64
    assert await store.get(first.id) is first
    assert await store.get(second.id) is second


@pytest.mark.gen_test
async def test_get_refuses_unknown_empty_and_missing_ids(store: MemorySessionStore) -> None:
    await store.create("ada")
    assert await store.get("no-such-id") is None
    assert await store.get("") is None
    assert await store.get(None) is None


@pytest.mark.gen_test
async def test_public_view_holds_username_and_login_time_never_the_id(store: MemorySessionStore, clock: FakeClock) -> None:
    session = await store.create("ada")
    assert session.public_view() == {"username": "ada", "logged_in_at": int(clock.now)}


@pytest.mark.gen_test
async def test_idle_session_expires_after_ttl(store: MemorySessionStore, clock: FakeClock, ended: list) -> None:
    session = await store.create("ada")
    clock.advance(100)
    assert await store.get(session.id) is session  # exactly at the TTL: still alive
    clock.advance(100.5)
    assert await store.get(session.id) is None
    assert ended == [("ada", "expired")]
    assert await store.count() == 0


@pytest.mark.gen_test
async def test_use_refreshes_the_idle_timer(store: MemorySessionStore, clock: FakeClock) -> None:
    session = await store.create("ada")
    for _ in range(5):
        clock.advance(80)
        assert await store.get(session.id) is session
    assert session.logged_in_at == clock.now - 400


@pytest.mark.gen_test
async def test_sweep_removes_only_expired_sessions(store: MemorySessionStore, clock: FakeClock, ended: list) -> None:
    old = await store.create("old")
    clock.advance(60)
    fresh = await store.create("fresh")
    clock.advance(60)
    assert await store.sweep() == 1
    assert ended == [("old", "expired")]
    assert await store.get(old.id) is None
    assert await store.get(fresh.id) is fresh


@pytest.mark.gen_test
async def test_full_store_evicts_the_least_recently_used(store: MemorySessionStore, clock: FakeClock, ended: list) -> None:
    a = await store.create("a")
    b = await store.create("b")
    c = await store.create("c")
    clock.advance(1)
    await store.get(a.id)  # a is now more recent than b
    d = await store.create("d")
    assert ended == [("b", "evicted")]
    assert await store.count() == 3
    for kept in (a, c, d):
        assert await store.get(kept.id) is kept
    assert await store.get(b.id) is None


@pytest.mark.gen_test
async def test_delete_ends_the_session_once(store: MemorySessionStore, ended: list) -> None:
    session = await store.create("ada")
    assert await store.delete(session.id) is session
    assert await store.delete(session.id) is None
    assert ended == [("ada", "logout")]


@pytest.mark.gen_test
async def test_clear_ends_every_session(store: MemorySessionStore, ended: list) -> None:
    await store.create("a")
    await store.create("b")
    await store.clear()
    assert await store.count() == 0
    assert sorted(ended) == [("a", "shutdown"), ("b", "shutdown")]


@pytest.mark.parametrize("kwargs", [{"ttl": 0}, {"max_sessions": 0}])
def test_nonsense_limits_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MemorySessionStore(**kwargs)
