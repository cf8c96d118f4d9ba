"""Fair limits per client, whatever it sends: logins and socket connects per client address,
chat messages per session.

A client address is counted by `admission.client_key`, as the connection caps count it: an
IPv4 address (an IPv4-mapped IPv6 address is that IPv4 address), or a whole IPv6 /64, since
one host usually holds a /64 and could otherwise take a fresh address for every request.
`RateLimiter.allows` applies it itself to every per-address kind, so no caller can forget.

Counted with `limits` (a sliding-window counter per key): in this process's memory, or in
Redis where processes share it, so that a client cannot get N times a limit by spreading its
requests over the N processes behind the balancer. A limit that cannot be counted (Redis is
away) lets the request through: the store's outage is refused and said elsewhere, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisSentinelStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from .admission import client_key

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["login", "connect", "chat"]
PER_CLIENT_ADDRESS: frozenset[Kind] = frozenset({"login", "connect"})  # the others count per session


def parse_rate(text: str) -> RateLimitItem | None:
    """A rate such as "30/minute" or "20 per 10 seconds"; "off" for none. ValueError if odd."""
    if text.strip().lower() == "off":
        return None
    try:
        return parse(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a rate like 30/minute, 20 per 10 seconds or off") from None


@dataclass(frozen=True)
class Rates:
    """The limits in force; None is no limit."""

    login: RateLimitItem | None = None
    connect: RateLimitItem | None = None
    chat: RateLimitItem | None = None

    @classmethod
    def of(cls, settings: Settings) -> Rates:
        """The rates of `settings` (its --login-rate, --connect-rate and --chat-rate); ValueError
        says which text is not a rate."""
        return cls(parse_rate(settings.login_rate), parse_rate(settings.connect_rate), parse_rate(settings.chat_rate))

    def describe(self, kind: Kind) -> str:
        item = getattr(self, kind)
        return "no limit" if item is None else str(item)


def redis_storage(url: str, key_prefix: str) -> Storage:
    """`limits`' storage in the Redis of --redis-url: one server, or the primary its Sentinels
    name (redis/urls.py reads the URL). Counted on the primary only: a replica's count may lag."""
    from .redis.urls import parse_sentinel_url

    options: dict[str, Any] = {"implementation": "redispy", "key_prefix": key_prefix, "wrap_exceptions": True,
               "socket_timeout": 2, "socket_connect_timeout": 2}
    sentinel = parse_sentinel_url(url)
    if sentinel is None:
        # `limits` reads a bare unix:// as Valkey's (which is not installed): redis+unix:// is its redis-py one.
        return RedisStorage(("async+redis+" if url.startswith("unix://") else "async+") + url, **options)
    # `limits` reads the whole path as the service name: the DB and the password go as options
    # (its `password` reaches the Sentinels and the primary alike).
    return RedisSentinelStorage(sentinel.without_secrets("async+redis+sentinel", db=False), use_replicas=False,
                                sentinel_kwargs={"socket_timeout": 2, "socket_connect_timeout": 2}, db=sentinel.db,
                                **sentinel.auth(), **options)


class RateLimiter:
    """Whether one more login, connect or chat message of a client is within its limit."""

    def __init__(self, rates: Rates, redis_url: str | None = None, prefix: str = "tornado_app:") -> None:
        self.rates = rates
        storage: Storage
        if redis_url is None:
            storage = MemoryStorage()
        else:
            storage = redis_storage(redis_url, prefix + "limits")
        self._limiter = SlidingWindowCounterRateLimiter(storage)

    async def allows(self, kind: Kind, who: str) -> bool:
        """Count one `kind` for `who` (a login or connect: the client's address, counted by
        its client key; a chat message: the session id); False when over its limit."""
        item: RateLimitItem | None = getattr(self.rates, kind)
        if item is None:
            return True
        key = client_key(who) if kind in PER_CLIENT_ADDRESS else who
        try:
            return await self._limiter.hit(item, kind, key)
        except StorageError:
            return True  # Redis is away: the store refuses and says so itself
