"""Which socket belongs to which session: the index that lets a logout, an expiry or an
eviction disconnect exactly its sockets without scanning them all.

A person is a session, not a name: two people who both log in as "alice" are two people
online, told apart by their sessions' public tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .sessions import Session


class Person(NamedTuple):
    """Someone online: the name they chose, and their session's public tag."""

    name: str
    tag: str


@dataclass(frozen=True, slots=True)
class SocketOwner:
    """The session a socket rode in on."""

    session_id: str
    username: str
    remote_ip: str
    tag: str


class SocketRegistry:
    """Sockets by id and by session, so that every change is O(1), never a scan."""

    def __init__(self) -> None:
        self._owners: dict[str, SocketOwner] = {}
        self._by_session: dict[str, set[str]] = {}

    def add(self, sid: str, session: Session, remote_ip: str) -> bool:
        """Remember a new socket; True when its person (session) just came online."""
        self._owners[sid] = SocketOwner(session.id, session.username, remote_ip, session.tag)
        siblings = self._by_session.setdefault(session.id, set())
        siblings.add(sid)
        return len(siblings) == 1

    def remove(self, sid: str) -> SocketOwner | None:
        """Forget a socket; returns its owner, or None if it was not known."""
        owner = self._owners.pop(sid, None)
        if owner is None:
            return None
        siblings = self._by_session[owner.session_id]
        siblings.discard(sid)
        if not siblings:
            del self._by_session[owner.session_id]
        return owner

    def is_online(self, session_id: str) -> bool:
        return session_id in self._by_session

    def owner(self, sid: str) -> SocketOwner | None:
        return self._owners.get(sid)

    def sockets_of(self, session_id: str) -> list[str]:
        return list(self._by_session.get(session_id, ()))

    def session_ids(self) -> list[str]:
        """The sessions with a socket here."""
        return list(self._by_session)

    def all_sockets(self) -> list[str]:
        return list(self._owners)

    def __len__(self) -> int:
        return len(self._owners)

    def is_empty(self) -> bool:
        """True when no index holds anything (used by leak tests)."""
        return not (self._owners or self._by_session)
