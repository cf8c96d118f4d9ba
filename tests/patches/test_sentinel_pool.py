"""patches/sentinel_pool.py against a real primary, replica and Sentinels: the pool waits for
a free connection at its limit (BlockingConnectionPool's part), and finds the new primary after
a failover (SentinelConnectionPool's part). Skipped where redis-server is missing (failed
under REQUIRE_E2E=1)."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError

from deploy.services import SENTINEL_SERVICE, ReplicatedRedis
from tornado_app.patches.sentinel_pool import BlockingSentinelConnectionPool


def test_the_pool_waits_at_its_limit_and_follows_a_failover(replicated_redis: ReplicatedRedis) -> None:
    async def scenario() -> None:
        sentinel = Sentinel([("127.0.0.1", s.port) for s in replicated_redis.sentinels],
                            sentinel_kwargs={"password": replicated_redis.password, "socket_timeout": 2})
        client = sentinel.master_for(SENTINEL_SERVICE, connection_pool_class=BlockingSentinelConnectionPool,
                                     password=replicated_redis.password, max_connections=1, timeout=5, socket_timeout=5)
        try:
            # Two commands at once on one connection: the second waits for the first (a plain
            # SentinelConnectionPool raises "Too many connections" at once).
            started = time.monotonic()
            await asyncio.gather(client.blpop(["nothing"], timeout=1), client.ping())
            assert time.monotonic() - started >= 0.9
            assert len(client.connection_pool._in_use_connections) + len(client.connection_pool._available_connections) == 1

            first = replicated_redis.primary()
            assert await client.set("before", "1")
            first.kill()
            deadline = time.monotonic() + 30
            while True:
                try:
                    assert await client.set("after", "1")
                    break
                except RedisConnectionError:
                    assert time.monotonic() < deadline, "no new primary found"
                    await asyncio.sleep(0.2)
            assert client.connection_pool.master_address[1] == replicated_redis.primary_port() != first.port
        finally:
            await client.aclose()
            await sentinel.aclose()

    asyncio.run(scenario())


def test_the_pool_is_both_pools() -> None:
    """The order that makes it work: Sentinel's methods first, then the blocking pool's."""
    from redis.asyncio.connection import BlockingConnectionPool
    from redis.asyncio.sentinel import SentinelConnectionPool

    order = BlockingSentinelConnectionPool.__mro__
    assert order.index(SentinelConnectionPool) < order.index(BlockingConnectionPool)
    pool = BlockingSentinelConnectionPool(SENTINEL_SERVICE, None, max_connections=3, timeout=1)
    assert (pool.max_connections, pool.timeout, pool.is_master) == (3, 1, True)
