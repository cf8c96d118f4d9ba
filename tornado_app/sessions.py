"""Server-side sessions: the store's interface, and the bounded, expiring, in-memory store
(the default) that knows nothing of Tornado.

The store's methods are coroutines so that a networked store (redis/sessions.py) implements
the same interface without changing its callers.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from .reasons import EndReason
from .settings import PRODUCTION

Clock = Callable[[], float]
# "gone": ended in another process while this one was not listening (found by an audit)
SessionEndListener = Callable[["Session", EndReason], Awaitable[None]]


@dataclass(slots=True)
class Session:
    """One logged-in person, as the server remembers them."""

    id: str
    username: str
    logged_in_at: float
    last_seen: float
    # Tells this person apart from anyone else of the same name, in chat and presence. Random
    # and unrelated to the id: shown to everyone, it reveals nothing and opens nothing.
    tag: str = ""

    def public_view(self) -> dict[str, object]:
        """What the client may learn about its own session (never the id)."""
        return {"username": self.username, "logged_in_at": int(self.logged_in_at)}


class SessionStore(Protocol):
    """What the handlers and the socket layer need from a session store."""

    ttl: float  # idle seconds after which a session ends

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, username: str) -> Session: ...

    async def get(self, session_id: str | None) -> Session | None: ...

    async def delete(self, session_id: str, reason: EndReason = "logout") -> Session | None: ...

    async def idle_left(self, session_id: str) -> float | None:
        """Seconds before the session expires as idle unless it is used (any tab's use counts),
        without counting this question as a use; None if it is gone."""

    async def sweep(self) -> int: ...

    async def audit(self, session_ids: Iterable[str]) -> None: ...

    async def clear(self) -> None: ...

    async def count(self) -> int: ...

    def add_end_listener(self, listener: SessionEndListener) -> None: ...


def new_session_id() -> str:
    """An unguessable id: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def check_limits(ttl: float, max_sessions: int) -> None:
    """Refuse limits that cannot work, for every store alike."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    if max_sessions < 1:
        raise ValueError("max_sessions must be at least 1")


def new_tag() -> str:
    """A public, random per-session tag (8 bytes, URL-safe: 11 characters)."""
    return secrets.token_urlsafe(8)


class MemorySessionStore:
    """Sessions in an ordered dict, least recently used first.

    Every read moves a session to the end, so the dict is always sorted by last use: expiry
    pops expired sessions from the front and eviction pops the front, and neither scans the
    rest. All sessions share one TTL, which is what keeps "least recently used" and "first
    to expire" the same order.
    """

    def __init__(
        self,
        ttl: float = PRODUCTION.session_ttl,
        max_sessions: int = PRODUCTION.max_sessions,
        clock: Clock = time.time,
    ) -> None:
        check_limits(ttl, max_sessions)
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._listeners: list[SessionEndListener] = []

    def add_end_listener(self, listener: SessionEndListener) -> None:
        """Call `listener(session, reason)` whenever a session ends, for any reason."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Nothing to connect to: the sessions live in this process."""

    async def close(self) -> None:
        """Nothing to disconnect from."""

    async def create(self, username: str) -> Session:
        """Start a new session with a fresh id, evicting the least recently used if full."""
        now = self._clock()
        session = Session(new_session_id(), username, logged_in_at=now, last_seen=now, tag=new_tag())
        evicted: list[Session] = []
        while len(self._sessions) >= self.max_sessions:
            _, oldest = self._sessions.popitem(last=False)
            evicted.append(oldest)
        self._sessions[session.id] = session
        for old in evicted:
            await self._notify(old, "evicted")
        return session

    async def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, refreshed; None if unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self.ttl:
            del self._sessions[session_id]
            await self._notify(session, "expired")
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        return session

    async def idle_left(self, session_id: str) -> float | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        return max(0.0, self.ttl - (self._clock() - session.last_seen))

    async def delete(self, session_id: str, reason: EndReason = "logout") -> Session | None:
        """End a session; returns it, or None if there was none."""
        session = self._sessions.pop(session_id, None)
        if session is not None:
            await self._notify(session, reason)
        return session

    async def sweep(self) -> int:
        """Remove every expired session; returns how many were removed."""
        deadline = self._clock() - self.ttl
        expired: list[Session] = []
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if oldest.last_seen >= deadline:
                break
            self._sessions.popitem(last=False)
            expired.append(oldest)
        for session in expired:
            await self._notify(session, "expired")
        return len(expired)

    async def audit(self, session_ids: Iterable[str]) -> None:
        """End (and tell the listeners of) any of these sessions that is idle past its TTL
        or unknown, without renewing the others: sockets of a session whose end nobody
        heard must not stay. (Here every end is heard; the Redis store can miss some.)"""
        deadline = self._clock() - self.ttl
        for session_id in list(session_ids):
            session = self._sessions.get(session_id)
            if session is None:
                await self._notify(Session(session_id, "", logged_in_at=0, last_seen=0), "gone")
            elif session.last_seen < deadline:
                del self._sessions[session_id]
                await self._notify(session, "expired")

    async def clear(self) -> None:
        """End every session, as "shutdown". The server never calls it: a stopping process
        closes its sockets and its sessions go with it. Tests call it to stand for a restart."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        for session in sessions:
            await self._notify(session, "shutdown")

    async def count(self) -> int:
        return len(self._sessions)

    async def _notify(self, session: Session, reason: EndReason) -> None:
        for listener in self._listeners:
            await listener(session, reason)
