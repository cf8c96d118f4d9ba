"""A replicated Redis for a test: deploy/services.py's ReplicatedRedis (a primary, a replica
and three Sentinels, one password) in the test's directory, once the Sentinels watch it;
skipped with the reason where redis-server is missing (failed under REQUIRE_E2E=1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from deploy.services import ReplicatedRedis, ServiceMissing, ask_redis
from tests.conftest import e2e_unavailable


def replicated_redis_in(tmp_path: Path) -> Iterator[ReplicatedRedis]:
    """The body of a test's fixture: `yield from replicated_redis_in(tmp_path)`."""
    workdir = tmp_path / "redis-ha"
    workdir.mkdir(mode=0o700)
    try:
        replicated = ReplicatedRedis(workdir)
    except ServiceMissing as missing:
        e2e_unavailable(str(missing))
    try:
        replicated.wait_until_watched()
        yield replicated
    finally:
        replicated.stop()


def replicated_now(replicated: ReplicatedRedis) -> None:
    """Wait until the replica has every write the primary has (WAIT): what the test wrote
    before a failover is then on the replica. An asynchronous replica otherwise lags a little,
    and a failover loses what it had not received yet."""
    primary = replicated.primary()
    assert ask_redis(primary.port, replicated.password, "WAIT", "1", "5000", timeout=10) == "1"
