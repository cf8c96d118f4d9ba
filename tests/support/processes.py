"""Child processes a test starts and reads: the plain server (`python -m tornado_app`, started
by deploy/app_process.py) with its first line and its log, and any other command (the
launcher, say)."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from deploy.app_process import APP, StartedApp


class ChildProcess:
    """A child process whose output is read line by line and whose log (stderr) goes to a
    file, so a chatty child never blocks on a full pipe."""

    def __init__(self, command: list[str], cwd: Path | str, env: dict[str, str]) -> None:
        self.log_file = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (the process's, closed when it ends)
        self.process = subprocess.Popen(command, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=self.log_file)

    def log(self) -> str:
        self.log_file.seek(0)
        return self.log_file.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()
        self.log_file.close()


class ServerProcess:
    """The plain server, `python -m tornado_app ARGS`, in a child process, once it says it
    serves (deploy/app_process.py StartedApp: AppDidNotStart, with its exit status and the
    end of its log, if it does not): its first line, its URL as it says it (with the last
    "/"), and its log (stderr) apart from what it prints (stdout).

    Its /readyz is not waited for, so that a test may start one over TLS; it says it serves
    only once its store answers. `program` runs the app in place of `python -m tornado_app`
    (a wrapper that sets limits first: test_server.py)."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None, log_path: Path | None = None,
                 program: Sequence[str] = APP) -> None:
        self.app = StartedApp(*args, env=env, log_path=log_path, ready=False, program=program)
        self.process = self.app.process
        self.first_line = self.app.first_line  # "Serving on URL  (Ctrl-C to stop)"
        self.url = self.app.url + "/"

    def log(self) -> str:
        return self.app.log()

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 5) -> tuple[int, str, str]:
        """Signal the server and wait: (exit status, everything printed, the log)."""
        status = self.app.stop(signum, timeout)
        return status, self.app.printed(), self.app.log()

    def close(self) -> None:
        self.app.close()


def socket_inodes_of(pid: int) -> set[str]:
    """The inodes of the sockets a process holds open."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes
