"""The socket index: by socket and by session, and empty again when all are gone."""

from __future__ import annotations

from tornado_app.registry import SocketRegistry
from tornado_app.sessions import Session


def session(session_id: str, username: str) -> Session:
    return Session(session_id, username, logged_in_at=0.0, last_seen=0.0, tag=f"tag-{session_id}")


def test_a_session_comes_online_with_its_first_socket_and_goes_with_its_last() -> None:
    registry = SocketRegistry()
    laptop, phone = session("s1", "ada"), session("s2", "ada")
    assert registry.add("a", laptop, "10.0.0.1") is True
    assert registry.add("b", laptop, "10.0.0.1") is False
    assert registry.add("c", phone, "10.0.0.2") is True  # another session: another person
    assert registry.session_ids() == ["s1", "s2"]
    assert sorted(registry.sockets_of("s1")) == ["a", "b"]
    owner = registry.owner("c")
    assert owner is not None and owner.remote_ip == "10.0.0.2"
    for sid in ("a", "b"):
        registry.remove(sid)
    assert not registry.is_online("s1") and registry.is_online("s2")
    assert registry.sockets_of("s1") == []
    registry.remove("c")
    assert not registry.is_online("s2")
    assert registry.is_empty() and len(registry) == 0


def test_removing_an_unknown_socket_changes_nothing() -> None:
    registry = SocketRegistry()
    registry.add("a", session("s1", "ada"), "127.0.0.1")
    assert registry.remove("nope") is None
    assert registry.all_sockets() == ["a"]
