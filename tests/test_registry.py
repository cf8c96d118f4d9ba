"""The socket index: by socket, by session and by user, and empty again when all are gone."""

from __future__ import annotations

from tornado_app.registry import SocketRegistry
from tornado_app.sessions import Session


def session(session_id: str, username: str) -> Session:
    return Session(session_id, username, logged_in_at=0.0, last_seen=0.0)


def test_a_user_comes_online_with_the_first_socket_and_goes_with_the_last() -> None:
    registry = SocketRegistry()
    laptop, phone = session("s1", "ada"), session("s2", "ada")
    assert registry.add("a", laptop, "10.0.0.1") is True
    assert registry.add("b", laptop, "10.0.0.1") is False
    assert registry.add("c", phone, "10.0.0.2") is False
    assert registry.online_users() == ["ada"]
    assert sorted(registry.sockets_of("s1")) == ["a", "b"]
    assert registry.owner("c").remote_ip == "10.0.0.2"
    for sid in ("a", "b"):
        registry.remove(sid)
    assert registry.is_online("ada")  # the phone is still connected
    assert registry.sockets_of("s1") == []
    registry.remove("c")
    assert not registry.is_online("ada")
    assert registry.is_empty() and len(registry) == 0


def test_online_users_are_sorted_and_unique() -> None:
    registry = SocketRegistry()
    for sid, name in [("1", "zoë"), ("2", "bob"), ("3", "bob"), ("4", "Ada")]:
        registry.add(sid, session(f"session-{sid}", name), "127.0.0.1")
    assert registry.online_users() == ["Ada", "bob", "zoë"]


def test_removing_an_unknown_socket_changes_nothing() -> None:
    registry = SocketRegistry()
    registry.add("a", session("s1", "ada"), "127.0.0.1")
    assert registry.remove("nope") is None
    assert registry.all_sockets() == ["a"]
