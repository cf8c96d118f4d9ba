"""`make cluster`'s view of its apps' logs: their WARNING and ERROR records in its own terminal as
they are written, the end of a log when an app does not start, and the logs kept at exit.

Each app writes its log (text format, stdout and stderr) to a file that a restart appends to
(deploy/services.py AppProcess). The apps never log a secret (tests/test_logs.py); what is
printed here is also cleared of the two the cluster knows, the cookie secret and the Redis
password, so that a future log line cannot put them on a screen or in a terminal's scrollback.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from deploy.app_process import AppDidNotStart, Redactor

# A record's first line in the text format (tornado_app/logs.py TEXT_FORMAT); the lines that
# follow it until the next one are its traceback.
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ([A-Z]+) ")
SHOWN_LEVELS = {"WARNING", "ERROR", "CRITICAL"}
# An INFO record that says an outage a WARNING announced is over ("session store is back: ..."):
# shown too, or the terminal would say only that Redis went away.
OVER = re.compile(r"INFO \S+: [^:]* is back: ")
# Lines an app prints on stdout, into the same file: never part of a record before them.
NOT_A_RECORD = ("Serving on ", "usage: ", "tornado-app: ")
TAIL_LINES = 10  # the end of a log said each time an app does not start again (the error holds more)
MOST_LINES_PER_READ = 40  # an app that floods its log is summed up, not copied to the terminal
MOST_LINE_CHARACTERS = 500
MOST_BYTES_PER_READ = 1 << 20
FOLLOW_SECONDS = 0.2  # how often the logs are read: a line shows this late at most
_terminal = threading.Lock()


def say(line: str) -> None:
    """One or more whole lines to the terminal at once, whichever thread says them."""
    with _terminal:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def shown(line: str) -> str:
    """A log line as the terminal shows it: no date (it is printed as it happens), clipped."""
    match = RECORD.match(line)
    line = line[match.start(1):] if match else line
    return line if len(line) <= MOST_LINE_CHARACTERS else line[:MOST_LINE_CHARACTERS] + "…"


def did_not_start(name: str, error: Exception, delay: float) -> str:
    """The lines that say a part did not start again: why, when it is tried again, and for an
    app the end of its log (where the real reason is), each of those lines with its name."""
    if isinstance(error, AppDidNotStart):
        why, tail = error.why, error.tail[-TAIL_LINES:]
    else:
        why, *tail = str(error).splitlines() or [type(error).__name__]
    said = [f"{name} did not start ({why}); retrying in {delay:g} s"
            + ("; the end of its log:" if tail else "; its log says nothing" if isinstance(error, AppDidNotStart) else "")]
    return "\n".join(said + [f"{name}: {line}" for line in tail])


class LogFollower:
    """One app's log file, read on from where it was last read: the WARNING and ERROR records
    (with their tracebacks), and the INFO ones that say an outage is over, written since. A file that shrank (truncated) is read
    again from its start; one not written yet is simply empty."""

    def __init__(self, name: str, path: Path, redact: Redactor) -> None:
        self.name = name
        self.path = path
        self.redact = redact
        self.offset = 0
        self.partial = b""  # a line being written: kept until its end arrives
        self.in_shown_record = False  # the lines that follow belong to a record being shown

    def new_lines(self) -> list[str]:
        """The lines to print, each prefixed with the app's name."""
        try:
            with open(self.path, "rb") as log:
                if os.fstat(log.fileno()).st_size < self.offset:
                    self.offset, self.partial, self.in_shown_record = 0, b"", False
                log.seek(self.offset)
                data = log.read(MOST_BYTES_PER_READ)
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        if len(self.partial) > MOST_BYTES_PER_READ:  # no end in sight: shown as it is
            complete.append(self.partial)
            self.partial = b""
        picked = [line for line in (raw.decode("utf-8", "replace").rstrip("\r") for raw in complete) if self._shown(line)]
        printed = [f"{self.name}: {self.redact(shown(line))}" for line in picked[:MOST_LINES_PER_READ]]
        if len(picked) > MOST_LINES_PER_READ:
            printed.append(f"{self.name}: … and {len(picked) - MOST_LINES_PER_READ} more lines in {self.path.name}")
        return printed

    def _shown(self, line: str) -> bool:
        record = RECORD.match(line)
        if record:
            self.in_shown_record = record.group(1) in SHOWN_LEVELS or bool(OVER.match(line, record.start(1)))
        elif line.startswith(NOT_A_RECORD):
            self.in_shown_record = False
        return self.in_shown_record and bool(line.strip())


class LogFollowers:
    """Every app's LogFollower, read by a thread of its own every FOLLOW_SECONDS, so that a
    line is printed as it happens even while the supervisor waits (an app starting again)."""

    def __init__(self, followers: list[LogFollower], interval: float = FOLLOW_SECONDS) -> None:
        self.followers = followers
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="app logs", daemon=True)

    def start(self) -> LogFollowers:
        self._thread.start()
        return self

    def print_new(self) -> None:
        for follower in self.followers:
            lines = follower.new_lines()
            if lines:
                say("\n".join(lines))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.print_new()

    def stop(self) -> None:
        """Stop following, once what was written until now is printed."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.print_new()


def keep_logs(paths: Iterable[Path]) -> Path | None:
    """Move the logs that exist into a new private directory (0700) under the system's
    temporary directory, before the cluster's own is removed; None if there were none."""
    existing = [path for path in paths if path.exists()]
    if not existing:
        return None
    kept = Path(tempfile.mkdtemp(prefix="tornado-app-cluster-logs-"))
    for path in existing:
        shutil.move(path, kept / path.name)
    return kept
