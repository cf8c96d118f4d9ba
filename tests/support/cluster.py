"""Several app processes sharing one Redis, as a test starts them (the `cluster` fixture), and
`make cluster` itself (deploy/cluster.py) run by a test.

Each process is deploy/services.py's AppProcess; the Redis is the test's own (conftest's
`redis_url`). test_cluster.py, redis/test_values.py, test_outages.py, test_sentinel.py
and the other Redis-mode tests use it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from deploy.services import ROOT, AppProcess
from tests.support.waiting import GENEROUS_SECONDS, eventually

from .matching import found

SECRET = "a-secret-shared-by-every-process"


class Cluster:
    """App processes on one Redis, started (and stopped) by the test."""

    def __init__(self, redis_url: str, workdir: Path) -> None:
        self.redis_url = redis_url
        self.workdir = workdir
        self.apps: list[AppProcess] = []

    def start(self, *args: str, name: str | None = None, port: int | None = None, unix_socket: Path | None = None) -> AppProcess:
        """One more process on this Redis, with `args` for its command line, on a port or on
        the Unix socket `unix_socket`; its log is `<name>.log` in the test's directory."""
        log = self.workdir / f"{name or f'app{len(self.apps) + 1}'}.log"
        # Secrets through the environment, as in deployment: never on a command line.
        # Every simulated person logs in from 127.0.0.1: the per-address rates are lifted here
        # (tests/test_ratelimit.py attacks them, across processes too).
        app = AppProcess(log, "--log-level", "info", "--login-rate", "off", "--connect-rate", "off", *args, port=port,
                         unix_socket=unix_socket, env={"TORNADO_APP_COOKIE_SECRET": SECRET, "TORNADO_APP_REDIS_URL": self.redis_url})
        self.apps.append(app)
        return app

    def stop(self) -> None:
        for app in self.apps:
            app.stop()


class MakeCluster:
    """deploy/cluster.py (what `make cluster` runs) in a child process. Its first line is read
    at once (the URL, the work directory, each app's pid and port); a thread collects every
    later line as it comes, so that a test can wait for one while the cluster runs."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (the process's, closed when it ends)
        self.process = subprocess.Popen([sys.executable, str(ROOT / "deploy" / "cluster.py"), *args], cwd=ROOT,
                                        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=self.errors, text=True)
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline()
        # Each app process as the first line lists it: its number -> (pid, Unix socket path).
        self.apps = {int(number): (int(pid), path)
                     for number, pid, path in re.findall(r"app (\d+) \(pid (\d+)\) on unix:(\S+?\.sock)", self.first_line)}
        self.lines: list[str] = []
        self._read_up_to = 0  # lines before this one were matched by next_line already
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def serving(self) -> bool:
        return self.first_line.startswith("Serving on")

    @property
    def url(self) -> str:
        return found(r"http://\S+/", self.first_line).group(0).rstrip("/")

    @property
    def workdir(self) -> str:
        return found(r"logs in (\S+);", self.first_line).group(1)

    @property
    def kept_logs(self) -> str | None:
        """Where it said it kept the apps' logs as it stopped (None before it said so)."""
        said = [line[len("logs kept in "):].rstrip("\n") for line in [self.first_line, *self.lines] if line.startswith("logs kept in ")]
        return said[-1] if said else None

    def stderr(self) -> str:
        self.errors.seek(0)
        return self.errors.read()

    async def next_line(self, pattern: str, within: float = GENEROUS_SECONDS) -> re.Match[str]:
        """The next line (after the last one this returned) that matches `pattern`, waiting
        for it up to `within` seconds."""
        found: list[re.Match[str]] = []

        def arrived() -> bool:
            for index in range(self._read_up_to, len(self.lines)):
                match = re.fullmatch(pattern, self.lines[index])
                if match:
                    self._read_up_to = index + 1
                    found.append(match)
                    return True
            return False

        await eventually(arrived, within, f"make cluster printed a line matching {pattern!r}; it printed {self.lines}")
        return found[0]

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C: SIGINT, then its exit status once it has stopped everything."""
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout)
        self._reader.join(timeout)
        return status

    def close(self) -> None:
        """After the test, whatever happened: stopped as by Ctrl-C, killed if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.errors.close()
        if self.kept_logs and Path(self.kept_logs).name.startswith("tornado-app-cluster-logs-"):
            shutil.rmtree(self.kept_logs, ignore_errors=True)  # a person keeps them; a test has read them


def connections_to(path: str) -> int:
    """How many connections to the Unix socket at `path` are open now (Linux: /proc/net/unix
    lists each accepted one under the listening socket's path).

    Behind nginx, it tells which app process serves a page: every request of the page comes
    from one address, so nginx sends them all to one process, and the others have none."""
    count = 0
    with open("/proc/net/unix") as table:
        next(table)
        for row in table:
            fields = row.split()
            if len(fields) == 8 and fields[7] == path and fields[5] == "03":  # 03: connected
                count += 1
    return count


def as_nobody(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python `code` (with `args` in sys.argv[1:]) as uid and gid `nobody`, no other
    group: another local user. Needs root; the system's python3, which any user can run."""
    nobody = pwd.getpwnam("nobody")
    return subprocess.run(["/usr/bin/python3", "-c", code, *args], user=nobody.pw_uid, group=nobody.pw_gid,
                          extra_groups=[], cwd="/", check=False, capture_output=True, text=True, timeout=30)
