"""Stopping a python-socketio Redis manager that a test started by hand (its listening task
and its two Redis connections), so that nothing is left running into the next test."""

from __future__ import annotations

import asyncio
from typing import Any


async def stop_started_manager(manager: Any) -> None:
    """Cancel the manager's listening task and close its pubsub and its client."""
    manager.thread.cancel()
    await asyncio.gather(manager.thread, return_exceptions=True)
    await manager.pubsub.aclose()
    await manager.redis.aclose()
