"""Small measuring helpers shared by the benchmarks and the load tests (Linux: /proc)."""

from __future__ import annotations

import asyncio
import os
import resource
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from .matching import found

T = TypeVar("T")

SERVER_CPU, CLIENT_CPU = 0, 1  # the server measured on one CPU, its load driven from the other


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` fall (the nearest rank, no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def pin(pid: int, cpu: int) -> bool:
    """Pin a process to one CPU where the OS allows it (Linux with 2+ CPUs)."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return False
    os.sched_setaffinity(pid, {cpu})
    return True


async def bounded(count: int, concurrency: int, job: Callable[[int], Awaitable[T]]) -> list[T]:
    """Run job(0) .. job(count - 1) with at most `concurrency` of them in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> T:
        async with gate:
            return await job(index)

    return await asyncio.gather(*(one(index) for index in range(count)))


def rss_kib(pid: int) -> int:
    """Resident memory of a process, in KiB (Linux)."""
    return int(found(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1))


def raise_open_files_limit(needed: int | None = None) -> int:
    """Raise the soft open-files limit to `needed` (default: the hard limit); returns it.

    Raises RuntimeError when the hard limit is lower than what is needed. Child processes
    inherit the new limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if needed is None else needed
    if hard != resource.RLIM_INFINITY and target > hard:
        raise RuntimeError(f"the open-files limit is {hard}; {target} are needed")
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far, in seconds (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
