"""deploy/app_process.py, the one way every test, benchmark and `make cluster` starts an app:
a start that serves says where, answers and stops on a signal; a start that fails says why,
with the child's exit status and the end of its log (before, two of the five starters it
replaced failed with an AttributeError, and one with an empty URL found later)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.app_process import TAIL_LINES, AppDidNotStart, StartedApp, listening_on, probe
from tornado_app.cli import COOKIE_SECRET_ENV

# This module's fixtures that start processes: a test using one is marked `process` (conftest).
PROCESS_FIXTURES = {"start"}


@pytest.fixture
def start() -> Iterator[Callable[..., StartedApp]]:
    """A factory: `start(*args, **options)` is StartedApp's; every app started is ended after
    the test (one that did not start was ended by the starter itself)."""
    started: list[StartedApp] = []

    def starter(*args: str, **options: Any) -> StartedApp:
        app = StartedApp(*args, **options)
        started.append(app)
        return app

    yield starter
    for app in started:
        app.close()


def test_where_it_listens_is_read_from_its_flags_as_argparse_reads_them() -> None:
    assert listening_on([]) == "127.0.0.1:8888"
    assert listening_on(["--port", "0", "--log-level", "info", "--port", "9000"]) == "127.0.0.1:9000"
    assert listening_on(["--address", "::1", "--port", "0"]) == "[::1]:0"
    assert listening_on(["--port", "1", "--unix-socket", "/run/app.sock", "--behind-proxy"]) == "unix:/run/app.sock"


def test_an_app_that_starts_says_where_answers_there_and_stops_on_a_signal(
        start: Callable[..., StartedApp], tmp_path: Path) -> None:
    app = start("--port", "0", "--log-level", "info", log_path=tmp_path / "app.log")
    assert (tmp_path / "app.log").stat().st_mode & 0o777 == 0o600  # it may hold what a person typed
    assert app.port > 0 and app.url == f"http://127.0.0.1:{app.port}" and app.where == f"127.0.0.1:{app.port}"
    assert app.first_line.startswith(f"Serving on {app.url}/") and app.printed() == app.first_line
    assert probe(app.where) == (200, "ready")  # waited for: it was ready when the start returned
    assert app.stop(signal.SIGTERM) == 0
    assert "stopped" in app.log() and "Serving on" not in app.log()  # what it prints is apart from its log


@pytest.mark.parametrize("failure", ["bad flag", "port taken"])
def test_an_app_that_cannot_start_raises_with_its_exit_status_and_the_end_of_its_log(
        start: Callable[..., StartedApp], failure: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args, said = {
            "bad flag": (("--port", "0", "--login-rate", "lots"), "argument --login-rate: 'lots' is not a rate like 30/minute"),
            "port taken": (("--port", str(port)), f"tornado-app: error: port {port} on 127.0.0.1 is already in use"),
        }[failure]
        started = time.monotonic()
        with pytest.raises(AppDidNotStart) as refused:
            start(*args)
    assert time.monotonic() - started < 20  # said when it exits, not after the time limit (30 s)
    assert refused.value.status == 2 and refused.value.why == "it exited with status 2 before it was ready"
    assert said in refused.value.tail[-1]
    message = str(refused.value)
    assert f"the app on {listening_on(args)} did not start (it exited with status 2 before it was ready)" in message
    assert message.endswith(refused.value.tail[-1])  # the end of its log, in the message itself


def _child(code: str) -> tuple[str, ...]:
    """A program in place of the app: Python running `code`."""
    return (sys.executable, "-c", code)


def test_a_failed_start_shows_the_last_lines_of_a_long_log_and_none_of_its_secrets(
        start: Callable[..., StartedApp], tmp_path: Path) -> None:
    secret = "a-cookie-secret-that-no-message-may-show"
    log_path = tmp_path / "app.log"
    log_path.write_text("a line of an earlier start\n")
    code = ("import os, sys\n"
            "for number in range(1, 101): print(f'line {number} of a traceback', file=sys.stderr)\n"
            f"print('the secret is ' + os.environ['{COOKIE_SECRET_ENV}'], file=sys.stderr)\n"
            "sys.exit(3)")
    with pytest.raises(AppDidNotStart) as refused:
        start("--port", "0", program=_child(code), env={COOKIE_SECRET_ENV: secret}, log_path=log_path)
    tail = refused.value.tail
    assert refused.value.status == 3 and len(tail) == TAIL_LINES == 40
    assert tail[0] == "line 62 of a traceback" and tail[-2] == "line 100 of a traceback"
    assert tail[-1] == "the secret is ***"
    assert secret not in str(refused.value) and "earlier start" not in str(refused.value)  # this start's lines only
    assert secret in log_path.read_text()  # the log itself is the app's own, untouched


def test_a_start_that_never_serves_is_ended_at_its_time_limit_with_the_end_of_its_log(start: Callable[..., StartedApp]) -> None:
    code = "import os, sys, time\nprint(f'pid {os.getpid()}, stuck', file=sys.stderr, flush=True)\ntime.sleep(600)"
    started = time.monotonic()
    with pytest.raises(AppDidNotStart) as refused:
        start("--port", "0", program=_child(code), timeout=1)
    assert time.monotonic() - started < 10
    assert refused.value.why == "it did not say it serves within 1 s" and refused.value.status is None
    pid = int(refused.value.tail[-1].split()[1].rstrip(","))
    assert not Path(f"/proc/{pid}").exists()  # ended and reaped: nothing left running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
