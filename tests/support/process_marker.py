"""The `process` marker: which tests start a process (an app, redis-server, nginx, Chromium
or a window), and the guard that fails any other test that tries.

`make test-fast` runs `-m "not process"`: the in-process tests alone, in seconds. A test is
marked `process` without anyone writing it when it is an `e2e` test or uses one of
PROCESS_FIXTURES (directly or through another fixture) or one its module lists in a
module-level `PROCESS_FIXTURES`; a test that starts processes by other means says so
itself (`@pytest.mark.process`, or `pytestmark = pytest.mark.process` for a whole module).
Forgetting cannot go unnoticed: while an unmarked test runs, starting a child process
(subprocess, asyncio's subprocesses, multiprocessing, os.fork/posix_spawn/system, and with
them Playwright's driver and Chromium) fails that test, in every run, fast or whole.
"""

from __future__ import annotations

import multiprocessing.process
import os
import re
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

MARKER = "process"

# The conftest fixtures that start processes; a fixture built on one of them counts too, as
# pytest lists the whole closure in `item.fixturenames`.
PROCESS_FIXTURES = frozenset({
    "server_process",  # python -m tornado_app
    "redis_server", "redis_url", "own_redis", "replicated_redis",  # redis-server, Sentinels
    "cluster",  # app processes on the test Redis
    "nginx_workdir",  # nginx in front (only the cluster tests ask for its directory)
})


def starts_processes(item: pytest.Item) -> bool:
    """Whether `item` starts processes by a route the marker is applied from automatically:
    it is an `e2e` test, or it uses one of PROCESS_FIXTURES or of its module's own
    `PROCESS_FIXTURES` (the fixtures a test module defines that start processes)."""
    if item.get_closest_marker("e2e") is not None:
        return True
    fixtures = PROCESS_FIXTURES | set(getattr(getattr(item, "module", None), "PROCESS_FIXTURES", ()))
    return not fixtures.isdisjoint(getattr(item, "fixturenames", ()))


def asks_for(markexpr: str, marker: str) -> bool:
    """Whether a `-m` expression names `marker` at all (as `heavy`, `not heavy`, `heavy or e2e`)."""
    return re.search(rf"\b{re.escape(marker)}\b", markexpr) is not None


# (owner, attribute): every route by which Python starts a child process.
GUARDED: list[tuple[Any, str]] = [
    (subprocess.Popen, "_execute_child"),  # subprocess.*, asyncio's subprocesses, os.popen
    (multiprocessing.process.BaseProcess, "start"),  # multiprocessing, ProcessPoolExecutor
    *((os, name) for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system") if hasattr(os, name)),
]


class ProcessGuard:
    """While `running` names an unmarked test, every route in GUARDED fails that test."""

    def __init__(self) -> None:
        self.running: str | None = None  # the node id of the unmarked test running now
        self.attempts: list[str] = []  # what it tried, for a test that swallowed the failure
        self._originals: list[tuple[Any, str, Callable[..., Any]]] = []

    def install(self) -> None:
        for owner, name in GUARDED:
            original = getattr(owner, name)
            self._originals.append((owner, name, original))
            setattr(owner, name, self._guarded(f"{getattr(owner, '__name__', owner)}.{name}", original))

    def uninstall(self) -> None:
        while self._originals:
            owner, name, original = self._originals.pop()
            setattr(owner, name, original)

    def _guarded(self, route: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.check(route)
            return original(*args, **kwargs)
        return guarded

    def check(self, route: str) -> None:
        """Fail the running test if it is unmarked."""
        if self.running is None:
            return
        self.attempts.append(route)
        pytest.fail(refusal(self.running, route))


# Where the run keeps its guard (conftest's pytest_configure puts it there).
GUARD = pytest.StashKey[ProcessGuard]()


def refusal(nodeid: str, route: str) -> str:
    """Why the test fails, and what to do about it."""
    return (f"{nodeid} started a child process ({route}) but is not marked `{MARKER}`: "
            f"add @pytest.mark.{MARKER} (or `pytestmark = pytest.mark.{MARKER}` for the module), "
            f"or name the fixture that starts it in PROCESS_FIXTURES (the module's, or "
            f"tests/support/process_marker.py's), so that `make test-fast` (-m \"not {MARKER}\") leaves it out")
