"""Which asyncio event loop to run on: uvloop where it is installed, the standard one otherwise.

uvloop is installed with the package where it exists (not on Windows): measured on the
connect benchmark it saves about a tenth of the server's CPU per connect. Nothing else in the
package depends on it, and `--no-uvloop` turns it off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], use_uvloop: bool = True) -> T:
    """asyncio.run, on uvloop when asked for and installed."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log.debug("uvloop is not installed: using asyncio's own event loop")
        else:
            log.debug("event loop: uvloop %s", uvloop.__version__)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)
