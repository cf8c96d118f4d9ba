"""Waiting for a condition with a generous deadline, rather than sampling it once.

A shared 2-core machine can pause a test or a server for a second or more; a check that
samples once at a fixed delay then fails by chance. These wait until the condition holds and
fail only when it still does not after a deadline far beyond what a healthy run needs.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

GENEROUS_SECONDS = 15.0  # far beyond a healthy run (tenths of a second), so only a defect reaches it


async def eventually(
    condition: Callable[[], object], within: float = GENEROUS_SECONDS, what: str | None = None
) -> float:
    """Wait until `condition()` (plain or a coroutine) holds, that is, is true or a non-empty
    list, say; returns the seconds it took.

    Raises AssertionError naming `what` (or the condition's docstring) after `within` s."""
    started = time.monotonic()
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"still not true after {within} s: {what or condition.__doc__ or condition}")
        await asyncio.sleep(0.02)
