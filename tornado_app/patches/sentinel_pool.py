"""A connection pool to the primary a Sentinel names that waits for a free connection.

redis-py has a waiting pool (`BlockingConnectionPool`) and a pool that asks the Sentinels
where the primary is (`SentinelConnectionPool`), not both. The bus needs both: a crowd
reconnecting at once must wait for a connection rather than be refused (redis/bus.py), and
after a failover the pool must find the new primary by itself.

`BlockingSentinelConnectionPool` joins the two by inheritance: SentinelConnectionPool's
methods (its connection class, `get_master_address`, `owns_connection`, `reset`) over
BlockingConnectionPool's `get_connection` and `release`, each calling the next through
`super()`. It relies on both cooperating that way (redis-py 8.2, checked by
tests/patches/test_sentinel_pool.py: the pool waits at its limit, and it follows a failover).
"""

from __future__ import annotations

from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import SentinelConnectionPool


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """SentinelConnectionPool that waits up to `timeout` s for one of `max_connections`."""
