"""`make cluster` (deploy/cluster.py) started for a test, serving, or the test skipped where
redis-server or nginx is missing (failed instead under REQUIRE_E2E=1)."""

from __future__ import annotations

from typing import TypeVar, overload

import pytest

from tests.support.cluster import MakeCluster
from tests.support.e2e import e2e_unavailable

ClusterType = TypeVar("ClusterType", bound=MakeCluster)


@overload
def started_make_cluster(*args: str, env: dict[str, str] | None = None) -> MakeCluster: ...
@overload
def started_make_cluster(*args: str, env: dict[str, str] | None = None, kind: type[ClusterType]) -> ClusterType: ...


def started_make_cluster(*args: str, env: dict[str, str] | None = None,
                         kind: type[MakeCluster] = MakeCluster) -> MakeCluster:
    """deploy/cluster.py with two processes on a free port (and `args`), serving; skipped
    where redis-server or nginx is missing (failed instead under REQUIRE_E2E=1)."""
    made = kind("--processes", "2", "--port", "0", *args, env=env)
    if not made.serving:
        made.close()
        if "not installed" in made.stderr():
            e2e_unavailable(made.stderr().strip())
        pytest.fail(f"make cluster did not start: {made.first_line!r} {made.stderr()}")
    return made
