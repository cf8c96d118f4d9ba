"""A replicated Redis as the tests use it (conftest's `replicated_redis`: deploy/services.py's
ReplicatedRedis, a primary, a replica and three Sentinels)."""

from __future__ import annotations

from deploy.services import ReplicatedRedis, ask_redis


def replicated_now(replicated: ReplicatedRedis) -> None:
    """Wait until the replica has every write the primary has (WAIT): what the test wrote
    before a failover is then on the replica. An asynchronous replica otherwise lags a little,
    and a failover loses what it had not received yet."""
    primary = replicated.primary()
    assert ask_redis(primary.port, replicated.password, "WAIT", "1", "5000", timeout=10) == "1"


def replica_of(port: int, password: str, primary_port: int) -> bool:
    """Whether the Redis on `port` is a replica of the one on `primary_port` yet: False while
    it is still starting, loading its file or syncing (it may reset the connection then)."""
    try:
        role = ask_redis(port, password, "ROLE")
    except (OSError, RuntimeError):
        return False
    return isinstance(role, list) and role[0] == "slave" and role[2] == str(primary_port)
