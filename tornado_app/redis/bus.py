"""One process's link to Redis: a client for commands and one pub/sub subscription that
carries what the other processes say (a session ended, who came online or left).

It also decides when Redis counts as lost and back: one log line each way, never one per
request, and a subscription that resubscribes by itself once Redis answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import BackendUnavailable, BackendUnreachable
from ..logs import facts
from ..patches.sentinel_pool import BlockingSentinelConnectionPool
from .failures import failure, in_short
from .urls import SentinelURL, parse_sentinel_url, redacted
from .values import BadValue, IgnoredValues

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "tornado_app:"
RESUBSCRIBE_SECONDS = 0.5  # how often to try again while Redis is away
CLOSE_WAIT_SECONDS = 3.0  # for the subscription's task to end when the bus closes
SUBSCRIBE_WAIT_SECONDS = 10.0  # at start, for Redis to confirm the subscription
RECANCEL_SECONDS = 0.5  # between two cancellations of a task that runs on (cancel_until_done)
MAX_CONNECTIONS = 1000  # to Redis from one process; more commands at once wait for one
# ... at most this long. Not a sign of a hung Redis (each command gives its connection back
# within socket_timeout, twice): a loop busy with a crowd of connects takes seconds to read
# the answers that free them (2 s here refused most of 2,000 pages reconnecting at once).
POOL_WAIT_SECONDS = 20.0
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)
SOCKET_TIMEOUT = 2.0  # seconds for a command's answer, and for a connection (to Redis, to a Sentinel)

__all__ = ["RedisBus", "redacted"]  # redacted: read from here by deploy/cluster.py

MessageHandler = Callable[[Any], Awaitable[None]]


def command_client(url: str) -> redis.Redis:
    """The bus's client: one pool for the process, to the server of a `redis://` URL or to
    the primary the Sentinels of a `redis+sentinel://` URL name (found again after a
    failover: the pool asks the Sentinels whenever a connection to the old one fails)."""
    # One immediate retry on a connection error: after Redis restarts (or fails over), the
    # pool still holds connections to the old server, and the first command on each would
    # fail ("closed by server") and count as an outage. While Redis is really down, the retry
    # fails as fast as the first try, so requests still get their 503 at once.
    # A pool that makes a command wait for a connection rather than fail: redis-py 8's
    # default pool holds 100 and raises past them, which a crowd reconnecting at once
    # (2,000 pages after a restart: bench/resume.py) turned into "session store
    # unavailable" for most of them, and a false outage in the log.
    options: dict[str, Any] = {
        "max_connections": MAX_CONNECTIONS, "timeout": POOL_WAIT_SECONDS,
        "socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": SOCKET_TIMEOUT, "health_check_interval": 10,
        "retry": Retry(NoBackoff(), 1), "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    sentinel = parse_sentinel_url(url)
    if sentinel is None:
        return redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(url, **options))
    return sentinels_of(sentinel).master_for(sentinel.service_name, connection_pool_class=BlockingSentinelConnectionPool,
                                             db=sentinel.db, **sentinel.auth(), **options)


async def cancel_until_done(task: asyncio.Task[Any], within: float, what: str) -> None:
    """Cancel `task` and wait for it to end, cancelling it again while it runs on: a
    cancellation that lands in a redis-py command can be lost (Python 3.11's
    `asyncio.wait_for`, through which redis-py sends every command, returns the result and
    drops the cancellation when its future is done as the cancellation comes). Past `within`
    seconds the task is left behind, with one WARNING."""
    deadline = asyncio.get_running_loop().time() + within
    while not task.done():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            log.warning("%s still running %g s after it was cancelled; left behind", what, within)
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL_SECONDS, left))


def sentinels_of(url: SentinelURL) -> Sentinel:
    """redis-py's client of the Sentinels, with the URL's password (Sentinels that require
    one: deploy/services.py's), each asked in turn within the socket timeouts."""
    return Sentinel(list(url.sentinels), sentinel_kwargs={
        "socket_timeout": SOCKET_TIMEOUT, "socket_connect_timeout": SOCKET_TIMEOUT, **url.auth()})


class RedisBus:
    """A Redis client shared by the session store, the chat history and presence, and the
    pub/sub channels of the store and presence."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.url = url
        self.prefix = prefix
        self.process_id = secrets.token_hex(8)  # tells this process's own messages apart
        self.client: redis.Redis = command_client(url)
        self._handlers: dict[str, MessageHandler] = {}
        self._listener: asyncio.Task[None] | None = None
        self._available = True
        self._refusing_writes: str | None = None  # why Redis refuses writes (out of memory, a replica), if it does
        self.ignored = IgnoredValues()  # bad values read from Redis, each logged once
        self.subscribed = asyncio.Event()
        # Which subscription this is: a message may have been missed between two of them.
        self.subscription = 0

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def on(self, channel: str, handler: MessageHandler) -> None:
        """Call `handler(payload)` for every JSON message another process publishes on `channel`.
        Before start(): the channels are subscribed once, at start."""
        if self._listener is not None:
            raise RuntimeError(f"RedisBus.on({channel!r}) after start: that channel would never be heard")
        self._handlers[self.key(channel)] = handler

    async def publish(self, channel: str, payload: Any) -> None:
        await self.run(self.client.publish(*self.message(channel, payload)))

    def message(self, channel: str, payload: Any) -> tuple[str, str]:
        """PUBLISH's arguments for `payload` on `channel`, for a pipeline that sends it with
        other commands (one round trip)."""
        return self.key(channel), json.dumps([self.process_id, payload])

    async def start(self) -> None:
        """Check that Redis answers, and takes this process (its password, its database: else
        BackendUnreachable saying what it answered), then listen to the channels, and return
        once Redis has confirmed the subscription: a message another process publishes after
        this process accepted its first socket (a logout's `ended`, say) is then heard."""
        if self._listener is not None:
            return
        try:
            await self.client.ping()
        except (*REDIS_DOWN, RedisError) as error:
            raise BackendUnreachable(failure(self.url, error, SOCKET_TIMEOUT)) from None
        self._listener = asyncio.ensure_future(self._listen())
        try:
            await asyncio.wait_for(self.subscribed.wait(), SUBSCRIBE_WAIT_SECONDS)
        except TimeoutError:
            raise BackendUnreachable(f"Redis at {redacted(self.url)} did not confirm a subscription "
                                     f"within {SUBSCRIBE_WAIT_SECONDS:g} s") from None

    async def close(self) -> None:
        if self._listener is not None:
            await cancel_until_done(self._listener, CLOSE_WAIT_SECONDS, "Redis subscription")
        await self.client.aclose()
        pool = self.client.connection_pool
        if isinstance(pool, BlockingSentinelConnectionPool):
            await pool.sentinel_manager.aclose()  # its clients of the Sentinels

    async def run(self, command: Awaitable[Any], writes: bool = False) -> Any:
        """Await a Redis command; if Redis is away, out of memory or a replica, BackendUnavailable
        (logged once). A command that `writes` and succeeds also ends an out-of-memory spell:
        reads succeed throughout one, so they cannot tell."""
        try:
            result = await command
        except REDIS_DOWN as error:
            self.lost(error)
            raise BackendUnavailable(str(error)) from None
        except (OutOfMemoryError, ReadOnlyError) as error:
            # Redis refuses writes: it is full (maxmemory, noeviction), or it is a replica (a
            # primary demoted under a client that does not ask Sentinel; through Sentinel,
            # redis-py turns READONLY into a connection error and asks the Sentinels again).
            # An outage for whatever needs a write (a login, a session's refresh): a 503 that
            # says so, not a 500 with a traceback per request. Reads succeed throughout, so
            # only a write that succeeds ends it (not self.back(): it would flap).
            if isinstance(error, ReadOnlyError):
                # Connect again for the next command: the name in the URL may lead to the new primary now.
                await self.client.connection_pool.disconnect(inuse_connections=False)
            if self._refusing_writes is None:
                full = isinstance(error, OutOfMemoryError)
                self._refusing_writes = "is out of memory" if full else "is a read-only replica"
                log.warning("session store unavailable: Redis at %s %s: %s", redacted(self.url), self._refusing_writes, error,
                            extra=facts("redis out of memory" if full else "redis read only"))
            raise BackendUnavailable(str(error)) from None
        self.back()
        if writes and self._refusing_writes is not None:
            self._refusing_writes = None
            log.info("session store is back: Redis at %s accepts writes again", redacted(self.url), extra=facts("redis back"))
        return result

    async def answers(self, timeout: float) -> bool:
        """Whether Redis answers a PING within `timeout` seconds (readiness: health.py). A
        hung Redis (its connections open, nothing said) is an outage too, found here even
        when no request is under way, and logged once like any other."""
        try:
            await asyncio.wait_for(self.client.ping(), timeout)
        except (*REDIS_DOWN, RedisError) as error:  # asyncio's timeout is an OSError
            self.lost(error if str(error) else TimeoutError(f"no answer to a PING within {timeout:g} s"))
            return False
        self.back()
        return True

    def lost(self, error: BaseException) -> None:
        if self._available:
            self._available = False
            log.warning("session store unavailable: Redis at %s: %s", redacted(self.url), in_short(error), extra=facts("redis lost"))

    def back(self) -> None:
        if not self._available:
            self._available = True
            log.info("session store is back: Redis at %s answers again", redacted(self.url), extra=facts("redis back"))

    async def _listen(self) -> None:
        """Subscribe and dispatch; when Redis goes away, retry until it is back."""
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._handlers)
                self.subscription += 1
                self.subscribed.set()
                self.back()
                async for message in pubsub.listen():
                    await self._dispatch(message)
            except REDIS_DOWN as error:
                self.subscribed.clear()
                self.lost(error)
            finally:
                try:
                    await asyncio.shield(pubsub.aclose())
                except REDIS_DOWN:
                    pass  # its connection is gone already
            await asyncio.sleep(RESUBSCRIBE_SECONDS)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
        handler = self._handlers.get(channel)
        try:
            origin, payload = json.loads(message["data"])
        except (ValueError, TypeError, RecursionError):
            self.ignored.skip(f"a message on {channel}", message["data"], BadValue("not [process, payload] JSON"))
            return
        if handler is not None and origin != self.process_id:
            try:
                await handler(payload)
            except BadValue as error:
                # A payload that is JSON but not what the app publishes (its handler checks
                # it like client input): skipped, one line per distinct payload.
                self.ignored.skip(f"a message on {channel}", payload, error)
            except Exception:
                log.exception("handling a message on %s failed", channel)
