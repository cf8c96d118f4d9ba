"""bench/resume.py, small: pages that were away while their process restarted (Redis mode)
catch up on exactly what they missed, and the bench says so with figures it can stand on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.resume import Config, run
from tornado_app.settings import PRODUCTION


def test_pages_back_after_a_restart_get_exactly_what_they_missed(redis_url: str, tmp_path: Path) -> None:
    """20 pages, 7 messages missed while their only process was down: with resume each gets
    those 7 (caught_up, in order, no duplicates: the bench checks every page and raises
    WrongHistory otherwise), reloading each gets the latest 50; one round of each, twice."""
    rounds = asyncio.run(run(Config(sockets=20, missed=7, live=3, rounds=2, concurrency=10, timeout=60, pin=False),
                             redis_url, tmp_path))
    resumed = [row for row in rounds if row["mode"] == "resume"]
    reloaded = [row for row in rounds if row["mode"] == "reload"]
    assert len(resumed) == len(reloaded) == 2
    assert all(row["messages_per_socket"] == 7 for row in resumed), resumed
    assert all(row["messages_per_socket"] == PRODUCTION.history for row in reloaded), reloaded
    assert max(row["history_bytes_per_socket"] for row in resumed) < min(row["history_bytes_per_socket"] for row in reloaded)
