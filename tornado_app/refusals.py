"""Refusals told in a few lines, not one per refused request: a flood must not flood the log.

Anyone can send what gets refused (a connection over a cap, a login too many, a socket
without a session), thousands a second; an operator needs to know it happens and how much.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .logs import facts

log = logging.getLogger(__name__)

REPORT_EVERY_SECONDS = 10.0  # at most one log line per kind of refusal in this time


class RefusalReport:
    """Logs the first refusal of a kind at once, then at most one line per
    `REPORT_EVERY_SECONDS` with how many more there were: a flood writes a few lines, not
    one per refused connection.

    `level` is INFO for what an operator should see; a refusal that is the app working as
    designed (the logged-out page's socket probe) reports at DEBUG, counted all the same.

    Each line carries `what` as its `reason` field, and the latest refused `client` address
    and session `tag` where the caller knows them (logs.py: a JSON log shows them)."""

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic, logger: logging.Logger = log,
                 level: int = logging.INFO) -> None:
        self.what = what
        self.logger = logger
        self.level = level
        self.clock = clock
        self.total = 0
        self._unreported = 0
        self._last_report = float("-inf")

    def refused(self, detail: str, client: str | None = None, tag: str | None = None) -> None:
        self.total += 1
        self._unreported += 1
        now = self.clock()
        if now - self._last_report >= REPORT_EVERY_SECONDS:
            more = f" ({self._unreported - 1} more since the last report)" if self._unreported > 1 else ""
            self.logger.log(self.level, "%s: %s%s", self.what, detail, more, extra=facts(self.what, client, tag))
            self._last_report = now
            self._unreported = 0
