"""Which socket belongs to which session and which user: the index that lets a logout,
an expiry or an eviction disconnect exactly its sockets without scanning them all."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .sessions import Session


@dataclass(frozen=True, slots=True)
class SocketOwner:
    """The session a socket rode in on."""

    session_id: str
    username: str
    remote_ip: str


class SocketRegistry:
    """Sockets by id, by session and by user, so that every change is O(1), never a scan."""

    def __init__(self) -> None:
        self._owners: dict[str, SocketOwner] = {}
        self._by_session: dict[str, set[str]] = {}
        self._sockets_per_user: Counter[str] = Counter()

    def add(self, sid: str, session: Session, remote_ip: str) -> bool:
        """Remember a new socket; True when its user just came online."""
        self._owners[sid] = SocketOwner(session.id, session.username, remote_ip)
        self._by_session.setdefault(session.id, set()).add(sid)
        self._sockets_per_user[session.username] += 1
        return self._sockets_per_user[session.username] == 1

    def remove(self, sid: str) -> SocketOwner | None:
        """Forget a socket; returns its owner, or None if it was not known."""
        owner = self._owners.pop(sid, None)
        if owner is None:
            return None
        siblings = self._by_session[owner.session_id]
        siblings.discard(sid)
        if not siblings:
            del self._by_session[owner.session_id]
        self._sockets_per_user[owner.username] -= 1
        if self._sockets_per_user[owner.username] == 0:
            del self._sockets_per_user[owner.username]
        return owner

    def is_online(self, username: str) -> bool:
        return username in self._sockets_per_user

    def owner(self, sid: str) -> SocketOwner | None:
        return self._owners.get(sid)

    def sockets_of(self, session_id: str) -> list[str]:
        return list(self._by_session.get(session_id, ()))

    def all_sockets(self) -> list[str]:
        return list(self._owners)

    def online_users(self) -> list[str]:
        return sorted(self._sockets_per_user)

    def __len__(self) -> int:
        return len(self._owners)

    def is_empty(self) -> bool:
        """True when no index holds anything (used by leak tests)."""
        return not (self._owners or self._by_session or self._sockets_per_user)
