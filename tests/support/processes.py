"""Child processes a test starts and reads: the plain server (`python -m tornado_app`) with
its first line and its log, and any other command (the launcher, say)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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


class ServerProcess(ChildProcess):
    """The plain server, `python -m tornado_app`, in a child process."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        super().__init__([sys.executable, "-m", "tornado_app", *args], cwd=ROOT, env={**os.environ, **(env or {})})
        assert self.process.stdout is not None  # a pipe, above
        self.first_line = self.process.stdout.readline()  # "Serving on URL ..." once it listens
        match = re.search(r"http://\S+/", self.first_line)
        self.url = match.group(0) if match else ""

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 5) -> tuple[int, str, str]:
        """Signal the server and wait: (exit status, everything printed, the log)."""
        self.process.send_signal(signum)
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, self.first_line + out, self.log()


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
