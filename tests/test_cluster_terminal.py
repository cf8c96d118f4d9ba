"""`make cluster`'s terminal: its apps are labelled app1, app2, ... (the label each page's
welcome says), each app's WARNING and ERROR lines are printed as they happen with the app's
name, an app that does not start says the real reason (the end of its log), and the apps'
logs are kept when it stops.

make cluster itself runs as a person runs it (deploy/cluster.py in a child process, with its
own redis-server and nginx: skipped with the reason where they are missing, failed under
REQUIRE_E2E=1); the log follower and AppProcess are also checked on their own.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from deploy.applogs import AppDidNotStart, LogFollower, Redactor, did_not_start
from deploy.services import ROOT, AppProcess
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browser_missing, log_in_page
from tests.support.cluster import MakeCluster
from tests.support.constants import OUTPUT_DIR
from tests.support.e2e import e2e_unavailable
from tests.support.forms import http_session, log_in
from tests.support.make_cluster import started_make_cluster
from tests.support.matching import found
from tests.support.wire import WireSocket

COOKIE_SECRET = "a-cookie-secret-that-must-never-reach-a-terminal"
STAMP = "2026-12-05 05:14:25,123"


def record(level: str, message: str, logger: str = "tornado_app.x") -> str:
    """A record's line as the text log writes it."""
    return f"{STAMP} {level} {logger}: {message}\n"


# --- The log follower, on files written here ---


def test_the_follower_prints_warnings_errors_and_their_tracebacks_and_an_outage_being_over_and_nothing_else(tmp_path: Path) -> None:
    log = tmp_path / "app2.log"
    follower = LogFollower("app 2", log, Redactor([]))
    assert follower.new_lines() == []  # not written yet
    log.write_text("Serving on unix:/x/app2.sock  (Ctrl-C to stop)\n" + record("INFO", "login: 'ada' from 127.0.0.1")
                   + record("WARNING", "session store unavailable: Redis at redis://***@127.0.0.1:6379/0: Timeout", "tornado_app.redis.bus")
                   + record("INFO", "refused sockets without a session: 3 in 10 s"))
    assert follower.new_lines() == ["app 2: WARNING tornado_app.redis.bus: session store unavailable: Redis at redis://***@127.0.0.1:6379/0: Timeout"]
    assert follower.new_lines() == []  # each line once
    with log.open("a") as more:
        more.write(record("ERROR", "chat failed") + "Traceback (most recent call last):\n  File \"x.py\", line 1, in chat\n"
                   "ValueError: bad\n" + record("INFO", "session store is back: Redis at redis://***@127.0.0.1:6379/0 answers again")
                   + record("INFO", "stopped") + "Serving on unix:/x/app2.sock  (Ctrl-C to stop)\n")
    assert follower.new_lines() == [
        "app 2: ERROR tornado_app.x: chat failed", "app 2: Traceback (most recent call last):",
        "app 2:   File \"x.py\", line 1, in chat", "app 2: ValueError: bad",
        "app 2: INFO tornado_app.x: session store is back: Redis at redis://***@127.0.0.1:6379/0 answers again",
    ]


def test_the_follower_waits_for_a_whole_line_reads_bytes_as_utf8_and_starts_over_on_a_truncated_file(tmp_path: Path) -> None:
    log = tmp_path / "app1.log"
    follower = LogFollower("app 1", log, Redactor([]))
    line = record("WARNING", "refused 'Ωμέγα 🎉'").encode()
    log.write_bytes(line[:-9])  # cut inside the emoji: a line being written
    assert follower.new_lines() == []
    with log.open("ab") as rest:
        rest.write(line[-9:])
    assert follower.new_lines() == ["app 1: WARNING tornado_app.x: refused 'Ωμέγα 🎉'"]
    log.write_text(record("ERROR", "after a truncation"))  # shorter than what was read
    assert follower.new_lines() == ["app 1: ERROR tornado_app.x: after a truncation"]


def test_the_follower_never_prints_a_secret_it_knows_and_sums_up_a_flood(tmp_path: Path) -> None:
    log = tmp_path / "app1.log"
    redact = Redactor.of_app({"TORNADO_APP_COOKIE_SECRET": COOKIE_SECRET, "TORNADO_APP_REDIS_URL": "redis://:hunter2hunter2@127.0.0.1:1/0"})
    log.write_text(record("ERROR", f"a future bug logs {COOKIE_SECRET} and redis://:hunter2hunter2@127.0.0.1:1/0")
                   + "".join(record("WARNING", f"flood {n}") for n in range(100)))
    lines = LogFollower("app 1", log, redact).new_lines()
    assert lines[0] == "app 1: ERROR tornado_app.x: a future bug logs *** and redis://:***@127.0.0.1:1/0"
    assert len(lines) == 41 and lines[-1] == "app 1: … and 61 more lines in app1.log"


def test_a_part_that_did_not_start_is_said_with_the_end_of_its_log() -> None:
    error = AppDidNotStart("unix:/x/app2.sock", "it exited with status 2 before it was ready", ["tornado-app: error: /x/app2.sock is already in use"])
    assert did_not_start("app 2", error, 1) == ("app 2 did not start (it exited with status 2 before it was ready); retrying in 1 s; the end of its log:\n"
                                                "app 2: tornado-app: error: /x/app2.sock is already in use")
    assert str(error).endswith("the end of its log:\n  tornado-app: error: /x/app2.sock is already in use")
    assert did_not_start("app 2", AppDidNotStart("unix:/x", "it exited with status 1 before it was ready", []), 2).endswith(
        "retrying in 2 s; its log says nothing")
    assert did_not_start("nginx", RuntimeError("nginx exited with status 1 before listening on 80"), 0.5) == (
        "nginx did not start (nginx exited with status 1 before listening on 80); retrying in 0.5 s")


# --- AppProcess: a start, and a start that fails, after a log with names in it ---


@pytest.mark.process
def test_an_app_whose_log_holds_non_ascii_names_starts_again_and_a_failed_start_says_the_real_reason(tmp_path: Path) -> None:
    """The issue's "the end of its log:" followed by nothing: the start was looked for at a
    byte offset counted in characters, so after names like 'Ωμέγα' in the log a start was
    missed (10 s, then "did not start") and the end of the log was read past its end."""
    log = tmp_path / "app.log"
    log.write_text(record("INFO", "login: 'Ωμέγα' from 127.0.0.1") * 200)
    app = AppProcess(log, "--process-label", "app1")
    try:
        assert app.ready() == (200, "ready")
    finally:
        app.stop()
    started = time.monotonic()
    with pytest.raises(AppDidNotStart) as refused:
        AppProcess(log, "--process-label", "not a label")
    assert time.monotonic() - started < 8  # said when it exits, not after a time-out
    assert refused.value.why == "it exited with status 2 before it was ready"
    assert refused.value.tail[-1] == ("tornado-app: error: argument --process-label: 'not a label' is not a process label: "
                                      "1 to 32 letters, digits, '.', '-' or '_' (e.g. app2)")
    assert all("Ωμέγα" not in line for line in refused.value.tail)  # this start's lines only


# --- make cluster, run as a person runs it ---


def redis_pid(cluster: MakeCluster) -> int:
    return next(pid for pid, command in children(cluster.process.pid) if "redis-server" in command)


def children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except (OSError, IndexError, ValueError):
                continue
    return found


def test_make_cluster_labels_its_apps_prints_their_warnings_and_why_one_cannot_start_and_keeps_their_logs(redis_server: Any) -> None:
    cluster = started_cluster()
    try:
        url, workdir = cluster.url, cluster.workdir
        redis_password = found(r'^requirepass "(.+)"$', Path(workdir, "redis.conf").read_text(), re.MULTILINE).group(1)

        async def welcomed() -> None:
            """The welcome names the app that serves the socket: with that app paused (SIGSTOP)
            the socket gets no answer, with the other paused it does."""
            async with http_session() as http:
                ada = await WireSocket.connect(http, url, await log_in(http, url, "ada"), origin=url)
                label = (await ada.next("welcome"))["process"]
                assert label in ("app1", "app2")
                serving, other = (cluster.apps[int(label[3:])][0], cluster.apps[3 - int(label[3:])][0])
                for paused, answers in ((other, True), (serving, False)):
                    os.kill(paused, signal.SIGSTOP)
                    try:
                        answer = await ada.call("whoami", timeout=3) if answers else await answered_within(ada, 2)
                        assert answer if answers else answer is None, (label, paused)
                    finally:
                        os.kill(paused, signal.SIGCONT)
                assert (await ada.call("whoami", timeout=10))["username"] == "ada"
                await ada.close()

        asyncio.run(welcomed())

        # A Redis that hangs: every app says so in make cluster's terminal as it logs it, and
        # then that it is back.
        redis = redis_pid(cluster)
        os.kill(redis, signal.SIGSTOP)
        hung = time.monotonic()
        try:
            assert printed_by_each_app(cluster, r"WARNING tornado_app\.redis\.bus: session store unavailable: "
                                       r"Redis at redis://\*\*\*@127\.0\.0\.1:\d+/0: .+")
            printed_at, said_after = time.time(), time.monotonic() - hung
        finally:
            os.kill(redis, signal.SIGCONT)
        assert printed_by_each_app(cluster, r"INFO tornado_app\.redis\.bus: session store is back: .+")
        logged_at = max(logged_time(Path(workdir, f"app{number}.log"), "WARNING tornado_app.redis.bus") for number in (1, 2))
        print(f"a hung Redis: both apps logged it {said_after:.1f} s after it hung, and make cluster printed the "
              f"later line {printed_at - logged_at:.2f} s after it was logged")
        assert printed_at - logged_at < 3  # as it happens (read every 0.2 s)

        # App 2 killed, and its socket taken meanwhile by a stray process: it cannot start, and says why.
        pid, path = cluster.apps[2]
        os.kill(pid, signal.SIGKILL)
        os.unlink(path)
        with socket.socket(socket.AF_UNIX) as stray:
            stray.bind(path)
            stray.listen()
            asyncio.run(cluster.next_line(rf"app 2 \(pid {pid}\) killed by SIGKILL; restarting in \d+(\.\d+)? s", 30))
            asyncio.run(cluster.next_line(r"app 2 did not start \(it exited with status 2 before it was ready\); "
                                          r"retrying in \d+(\.\d+)? s; the end of its log:", 30))
            asyncio.run(cluster.next_line(rf"app 2: tornado-app: error: {re.escape(path)} is already in use", 5))
        back = asyncio.run(cluster.next_line(r"app 2 back \(pid (\d+)\)", 60))
        assert int(back.group(1)) != pid

        assert cluster.interrupt() == 0, cluster.stderr()
        kept = cluster.kept_logs
        assert cluster.lines[-2:] == [f"logs kept in {kept}", "stopped"] and "Traceback" not in cluster.stderr()
        assert not os.path.exists(workdir) and kept is not None and Path(kept).parent == Path(workdir).parent
        assert stat.S_IMODE(os.stat(kept).st_mode) == 0o700
        assert {"app1.log", "app2.log"} <= set(os.listdir(kept))
        for number in (1, 2):
            log = Path(kept, f"app{number}.log")
            assert stat.S_IMODE(log.stat().st_mode) == 0o600
            assert "WARNING tornado_app.redis.bus: session store unavailable" in log.read_text()
        assert f"tornado-app: error: {path} is already in use" in Path(kept, "app2.log").read_text()
        printed = "\n".join([cluster.first_line, *cluster.lines, cluster.stderr()])
        assert COOKIE_SECRET not in printed and redis_password not in printed
    finally:
        cluster.close()


def started_cluster() -> MakeCluster:
    """make cluster with two processes on a free port, with a cookie secret the test knows,
    to look for it in what is printed."""
    return started_make_cluster(env={"TORNADO_APP_COOKIE_SECRET": COOKIE_SECRET})


async def answered_within(socket: WireSocket, seconds: float) -> Any:
    """The answer to a `whoami` within `seconds`, or None if none came."""
    try:
        return await socket.call("whoami", timeout=seconds)
    except TimeoutError:
        return None


def logged_time(log: Path, what: str) -> float:
    """When the first line holding `what` was logged (its local time stamp, to the millisecond)."""
    line = next(line for line in log.read_text().splitlines() if what in line)
    return time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000


def printed_by_each_app(cluster: MakeCluster, pattern: str, within: float = 30) -> bool:
    """Wait until both apps printed a line `app N: <pattern>` (in either order)."""
    numbers = {int(asyncio.run(cluster.next_line(rf"app ([12]): {pattern}", within)).group(1)) for _ in range(2)}
    return numbers == {1, 2}


@pytest.mark.e2e
def test_through_make_cluster_two_pages_show_the_process_their_welcome_named(redis_server: Any) -> None:
    """Two browsers (two sessions) through nginx: each Socket card says which of app1 and app2
    serves it, as its welcome named it (its handshake log says the welcome's words); that the
    welcome names the very process is the wire test's above."""
    missing = browser_missing()
    if missing:
        e2e_unavailable(missing)
    from playwright.async_api import async_playwright

    shots = OUTPUT_DIR / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    cluster = started_cluster()
    try:
        url = cluster.url

        async def scenario() -> None:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
                for name in ("ada", "grace"):
                    page = await log_in_page(browser, url, name)
                    await page.wait_for_selector("#socket-process:not([hidden])")
                    label = await page.text_content("#socket-process-label")
                    assert label in ("app1", "app2")
                    logged = await page.text_content("#handshake-log")
                    assert f"welcome as {name}, served by {label}" in logged
                    await page.screenshot(path=shots / f"18-make-cluster-{name}-served-by-{label}.png")
                    print(f"{name}'s page: served by {label}")
                await browser.close()

        asyncio.run(scenario())
        assert cluster.interrupt() == 0, cluster.stderr()
    finally:
        cluster.close()


@pytest.mark.process
def test_make_cluster_that_cannot_start_an_app_says_the_apps_own_reason_and_keeps_its_log(tmp_path: Path) -> None:
    """A system temporary directory so deep that an app's socket path is over the kernel's
    limit (108 bytes): make cluster stops with status 2 and the app's own words, not its own
    "AF_UNIX path too long" with no word of which path."""
    deep = tmp_path / ("d" * (100 - len(str(tmp_path))))
    deep.mkdir()
    result = subprocess.run([sys.executable, str(ROOT / "deploy" / "cluster.py"), "--processes", "2", "--port", "0"], cwd=ROOT,
                            env={**os.environ, "TMPDIR": str(deep)}, check=False, capture_output=True, text=True, timeout=120)
    if "not installed" in result.stderr:
        e2e_unavailable(result.stderr.strip())
    said = result.stderr.splitlines()
    assert result.returncode == 2 and len(said) == 2, result.stderr
    told = re.fullmatch(r"make cluster: the app on unix:(\S+/sockets/app1\.sock) did not start "
                        r"\(it exited with status 2 before it was ready\); the end of its log:", said[0])
    assert told is not None, said[0]
    socket_path = told.group(1)
    assert said[1] == f"  tornado-app: error: cannot listen on {socket_path}: AF_UNIX path too long"
    kept_in = re.fullmatch(r"logs kept in (\S+)", result.stdout.strip())
    assert kept_in is not None, result.stdout
    kept = kept_in.group(1)
    assert Path(kept).parent == deep and "AF_UNIX path too long" in Path(kept, "app1.log").read_text()
