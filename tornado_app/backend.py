"""Where the state shared between requests lives, built in one place for both modes.

One process alone keeps sessions, chat history and presence in its memory (the embedded
default: `make run` and the plain server need no Redis). Several processes serving one site
share them through Redis, and pass Socket.IO events to each other through python-socketio's
Redis manager, as Socket.IO documents for scaling out. `make_app`, the command line and the
launcher all take a `Backend`; nothing else decides which parts go together. Its sizes and
rates come from a `Settings` (settings.py): the production ones unless told otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import socketio

from .history import ChatHistory, MemoryHistory
from .patches.managers import DirectManager
from .presence import PresenceSource, ThisProcessOnly
from .ratelimit import RateLimiter, Rates
from .sessions import Clock, MemorySessionStore, SessionStore
from .settings import PRODUCTION, Settings


async def _this_process_answers(timeout: float) -> bool:
    """In memory, the store is this process: it answers whenever the process does."""
    return True


class RedisNotInstalled(Exception):
    """A Redis backend was asked for without redis-py installed (the `redis` extra)."""


@dataclass(frozen=True)
class Backend:
    """The parts one app shares with the rest of its site."""

    store: SessionStore
    history: ChatHistory
    presence: PresenceSource
    client_manager: socketio.AsyncManager
    rate_limiter: RateLimiter
    clock: Clock = time.time
    # Whether the shared state answers a round trip within a timeout (readiness, health.py).
    answers: Callable[[float], Awaitable[bool]] = _this_process_answers
    # Whether that state lives outside this process (Redis): the metrics then time `answers`.
    remote: bool = False

    @classmethod
    def in_memory(
        cls,
        settings: Settings = PRODUCTION,
        *,
        clock: Clock = time.time,
        store: SessionStore | None = None,
    ) -> Backend:
        """Everything in this process: sessions (`settings.session_ttl`, `max_sessions`), the
        chat's `history` and the rates, counted here."""
        return cls(
            store=store if store is not None else MemorySessionStore(ttl=settings.session_ttl, max_sessions=settings.max_sessions,
                                                                     clock=clock),
            history=MemoryHistory(settings.history),
            presence=ThisProcessOnly(),
            client_manager=DirectManager(),
            rate_limiter=RateLimiter(Rates.of(settings)),
            clock=clock,
        )

    @classmethod
    def redis(cls, url: str, settings: Settings = PRODUCTION) -> Backend:
        """Everything in the Redis at `url`, shared with every process given the same URL."""
        try:
            import redis  # noqa: F401 (the `redis` extra)
        except ImportError:
            raise RedisNotInstalled("a Redis backend needs redis-py: pip install -e '.[redis]'") from None
        from .patches.managers import DirectRedisManager
        from .redis.bus import RedisBus
        from .redis.history import RedisHistory
        from .redis.presence import RedisPresence
        from .redis.sessions import RedisSessionStore
        from .redis.urls import parse_sentinel_url

        sentinel = parse_sentinel_url(url)  # BadRedisURL before anything starts
        bus = RedisBus(url)
        manager_log = logging.getLogger("tornado_app.sockets.redis_manager")
        manager_log.setLevel(logging.CRITICAL)  # its retries repeat what the bus logs once
        history = RedisHistory(bus, settings.history)
        manager = DirectRedisManager.of(url, sentinel, channel=bus.key("socketio"), logger=manager_log)
        # A chat's broadcast can arrive before Redis's word that the chat changed: the history
        # a newcomer gets is read again after it (redis/history.py).
        manager.before_delivery.append(history.changed)
        return cls(
            store=RedisSessionStore(bus, ttl=settings.session_ttl, max_sessions=settings.max_sessions),
            history=history,
            presence=RedisPresence(bus),
            client_manager=manager,
            rate_limiter=RateLimiter(Rates.of(settings), redis_url=url),
            answers=bus.answers,
            remote=True,
        )

    async def start(self) -> None:
        """Connect (a Redis backend), or raise BackendUnreachable saying why. Once."""
        await self.store.start()

    async def close(self) -> None:
        """Disconnect. Shared state stays for the other processes (or this one, restarted)."""
        await self.presence.stop()
        await self.store.close()
