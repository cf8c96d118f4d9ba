"""One session cannot make the server send everyone online over and over (issue 21, item 6):
attacked on a real server, in both stores."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.services import AppProcess
from tests.support.app_env import app_env
from tests.support.measure import raise_open_files_limit
from tests.support.state_flood import SERVER_FLAGS, state_flood
from tornado_app.presence_asks import PER_SESSION_BURST, PER_SESSION_EVERY
from tornado_app.reasons import STATE_SLOW_DOWN

pytestmark = pytest.mark.process  # every test here starts an app, redis-server or nginx

PEOPLE, SOCKETS, SECONDS = 300, 200, 6.0


@pytest.fixture(params=["memory", "redis"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppProcess]:
    raise_open_files_limit(4 * (PEOPLE + SOCKETS))
    started = AppProcess(tmp_path / "app.log", "--log-level", "info", *SERVER_FLAGS, env=app_env(request, request.param))
    yield started
    started.stop()


def test_one_session_asking_for_the_state_from_200_sockets_gets_its_fair_share_and_a_clear_refusal(app: AppProcess) -> None:
    """300 people online; one session's 200 sockets each ask `presence_state` once a second
    (what the per-socket limit allowed) for 6 s, while a bystander asks `whoami` every 20 ms.
    Before: every ask answered with the whole list (1,228 states in 9 s at 500 online, 4.4 MB/s
    to the asker, 20 % of a core; with 1,000 online the bystander's p99 went from 5 to 573 ms).
    Now: the session's share (3, then one per 5 s), each state encoded once per version, and
    every other ask refused with when to ask again."""
    result = asyncio.run(state_flood(app.url, app.process.pid, people=PEOPLE, sockets=SOCKETS, seconds=SECONDS))
    assert result["people_online"] == PEOPLE + 2, result
    assert result["asks"] >= SOCKETS * SECONDS * 0.5, result  # the attack did happen
    assert result["states_sent"] <= PER_SESSION_BURST + math.ceil(result["attack_seconds"] / PER_SESSION_EVERY), result
    for refusal in result.pop("refusals"):
        assert refusal["refused"] == STATE_SLOW_DOWN and 0 < refusal["retry_after"] <= PER_SESSION_EVERY + 0.1, refusal
    assert result["bytes_to_the_asker_per_s"] < 100_000, result  # before: 2.6 MB/s at 300 online
    # The server's CPU is bench/presence_asks.py's to measure (5-7 % against 15-20 % before, on
    # a quiet machine): under `make test` the server runs under coverage on a shared machine,
    # where 15.6 % was seen once with the fix in. The person is still served promptly:
    assert result["whoami_p99_ms"] < 1000, result
    app.stop()
    log = app.log()
    assert "Traceback" not in log
    # Said in the log, a line per 10 s at most, naming the asker and not their session.
    assert 1 <= log.count("refused presence states over a client's fair share") <= math.ceil(SECONDS / 10) + 1, log[-2000:]
