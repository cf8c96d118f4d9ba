"""The one way to start an app process: `python -m tornado_app ARGS` in a child process, waited
for until it serves, with its pid, port, URL and log, stopped by a signal within a time limit.

`make cluster`'s apps (deploy/services.py AppProcess), the tests' ServerProcess and
AttackedServer, the hostile mix and the benchmarks all start theirs here. A start that fails
raises AppDidNotStart with the child's exit status and the end of its log (this start's
lines only, cleared of the secrets it was given), where the real reason is: never a bare
time-out, nor a missing URL found later.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from tornado_app.cli import COOKIE_SECRET_ENV, REDIS_URL_ENV

ROOT = Path(__file__).resolve().parent.parent
APP = (sys.executable, "-m", "tornado_app")
START_SECONDS = 30.0  # until it serves (and is ready): a loaded machine imports slowly
STOP_SECONDS = 10.0  # after the signal, before SIGKILL
TAIL_LINES = 40  # the end of its log that a failed start shows: a whole traceback, usually
EXIT_GRACE_SECONDS = 5  # for an app whose address we could not probe to say why itself
POLL_SECONDS = 0.02
# Printed on stdout once it accepts connections (tornado_app/cli.py): `http://HOST:PORT/`,
# `https://...` or `unix:PATH`.
SERVING = re.compile(r"^Serving on (\S+).*\n", re.MULTILINE)


class AppDidNotStart(RuntimeError):
    """An app process that does not serve: `why` in a few words (its exit status, if it
    exited), and the end of its log since this start (`tail`, cleared of the secrets it was
    given), where the real reason is."""

    def __init__(self, where: str, why: str, tail: list[str], status: int | None = None) -> None:
        self.why = why
        self.tail = tail
        self.status = status
        said = "\n".join(f"  {line}" for line in tail) if tail else "  (nothing: it wrote no line)"
        super().__init__(f"the app on {where} did not start ({why}); the end of its log:\n{said}")


class Redactor:
    """Replaces each known secret in a text by `***`."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        self.secrets = sorted({secret for secret in secrets if secret}, key=len, reverse=True)

    @classmethod
    def of_app(cls, env: Mapping[str, str]) -> Redactor:
        """The secrets an app process is given: the cookie secret and the Redis URL's password."""
        url = env.get(REDIS_URL_ENV) or ""
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        return cls([env.get(COOKIE_SECRET_ENV), password])

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def log_tail(text: str, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log that are not blank."""
    return [line for line in text.splitlines() if line.strip()][-lines:]


def listening_on(args: Sequence[str]) -> str:
    """Where an app started with `args` listens, as its flags say (the last of a flag wins,
    as with argparse): `unix:PATH` or `ADDRESS:PORT`. Known before it says so itself, for a
    start that fails."""
    flags = dict(itertools.pairwise(args))
    if "--unix-socket" in flags:
        return f"unix:{flags['--unix-socket']}"
    address = flags.get("--address", "127.0.0.1")
    return f"{f'[{address}]' if ':' in address else address}:{flags.get('--port', '8888')}"


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (an app started with --unix-socket)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def probe(where: str, path: str = "/readyz", timeout: float = 3.0) -> tuple[int, str]:
    """GET `path` (/healthz or /readyz) from an app directly where it listens (`unix:PATH`
    or `HOST:PORT`, StartedApp.where), as a load balancer or an orchestrator would: by
    address, whatever the app's --allowed-host. (status, body); OSError if nothing answers
    within `timeout` s (a stuck loop answers nothing)."""
    if where.startswith("unix:"):
        connection: http.client.HTTPConnection = _UnixHTTPConnection(where[len("unix:"):], timeout)
    else:
        connection = http.client.HTTPConnection(where, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace").strip()
    except http.client.HTTPException as error:
        raise OSError(f"no HTTP answer from {where}: {error}") from error
    finally:
        connection.close()


def _read(file: IO[bytes], offset: int = 0) -> str:
    """What `file` holds after `offset` bytes, read without moving its position: the child
    writes through the same open file."""
    size = os.fstat(file.fileno()).st_size
    return os.pread(file.fileno(), max(0, size - offset), offset).decode("utf-8", "replace")


class _NotServing(Exception):
    """The start is not going to serve: why, in a few words."""



def stop_process(process: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = STOP_SECONDS) -> int:
    """Send `sig` to `process` unless it has ended, wait for its exit, SIGKILL after `timeout`
    s; its exit status (-N: killed by signal N)."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class StartedApp:
    """`python -m tornado_app *args` in a child process (cwd: the repository), started and
    waited for: it has said `Serving on ...` (it accepts connections) and, with `ready`, its
    /readyz answers 200 (its Redis answers), as a balancer would wait before sending it
    anyone (not asked without `ready`: a server over TLS, which the probe cannot ask). Where
    it listens comes from `args` (--port 0: a port it picks).

    Its log (stderr; stdout too with `stdout_in_log`, as make cluster keeps it) goes to
    `log_path` (mode 0600, appended to: a restart's lines follow the last) or, without one,
    to a temporary file that `close` removes; stdout otherwise goes to a file of its own
    (`printed`). Files, not pipes: a chatty child never blocks on one nobody reads.

    `env` is added to ours; `program` is what runs the app (a wrapper that sets limits
    first, say). A start that fails within `timeout` s raises AppDidNotStart, the child
    ended."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None, log_path: Path | None = None,
                 stdout_in_log: bool = False, ready: bool = True, timeout: float = START_SECONDS,
                 program: Sequence[str] = APP) -> None:
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        # Held open while it runs (the child writes through them); `close` closes them.
        if log_path is None:
            self.log_file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        else:
            self.log_file = os.fdopen(os.open(log_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600), "r+b")
        self.started_at = os.fstat(self.log_file.fileno()).st_size  # in bytes: where this start's lines begin
        self.stdout_file = self.log_file if stdout_in_log else tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen([*program, *args], cwd=ROOT, env=self.env, stdout=self.stdout_file,
                                        stderr=self.log_file, text=True)
        self.pid = self.process.pid
        self.where = listening_on(args)
        self.first_line = ""  # "Serving on URL  (Ctrl-C to stop)\n", once said
        self.url = ""  # what it serves on, as it says, without the last "/" (https://..., unix:PATH)
        self.port = 0
        try:
            self._wait_until_serving(timeout, ready)
        except (_NotServing, OSError) as error:
            if isinstance(error, OSError):  # our own look failed (a socket path too long): the app says it too
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(EXIT_GRACE_SECONDS)
            status = self.process.poll()  # once it has exited, its last lines are in the file
            why = f"it exited with status {status} before it was ready" if status is not None else str(error)
            redact = Redactor.of_app(self.env)
            tail = [redact(line) for line in log_tail(self.log_since_start())]
            where = self.where
            self.close()  # one that runs without serving is ended too, and its files closed
            raise AppDidNotStart(where, redact(why), tail, status) from None
        except BaseException:  # interrupted (Ctrl-C) while it starts: nothing left running
            self.close()
            raise

    def _wait_until_serving(self, timeout: float, ready: bool) -> None:
        deadline = time.monotonic() + timeout
        offset = self.started_at if self.stdout_file is self.log_file else 0
        while (said := SERVING.search(_read(self.stdout_file, offset))) is None:
            if self.process.poll() is not None:
                raise _NotServing("it exited before serving")
            if time.monotonic() > deadline:
                raise _NotServing(f"it did not say it serves within {timeout:g} s")
            time.sleep(POLL_SECONDS)
        self.first_line = said.group(0)
        self.url = said.group(1).rstrip("/")
        if not self.url.startswith("unix:"):
            parts = urlsplit(self.url)
            self.where, self.port = parts.netloc, parts.port or 0
        while ready:
            try:
                status, why = probe(self.where)
            except OSError as error:
                status, why = 0, str(error)
            if status == 200:
                return
            if self.process.poll() is not None:
                raise _NotServing("it exited before it was ready")
            if time.monotonic() > deadline:
                raise _NotServing(f"it serves but is not ready: {why or status}")
            time.sleep(0.05)

    def log(self) -> str:
        """Its whole log file (after a restart, the earlier starts' lines too)."""
        return self.log_path.read_text(errors="replace") if self.log_path is not None else _read(self.log_file)

    def log_since_start(self) -> str:
        """This start's lines of its log."""
        return _read(self.log_file, self.started_at)

    def printed(self) -> str:
        """What it printed on stdout (with `stdout_in_log`, this start's whole log)."""
        return self.log_since_start() if self.stdout_file is self.log_file else _read(self.stdout_file)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_SECONDS) -> int:
        """Send `sig` (SIGTERM: it drains over --drain-seconds; SIGINT: it stops at once) and
        wait for it to exit, SIGKILL after `timeout` s; its exit status (-N: killed by signal
        N). Its log stays readable until `close`."""
        return stop_process(self.process, sig, timeout)

    def close(self) -> None:
        """End it at once (SIGKILL) if it still runs, and close its files."""
        self.stop(signal.SIGKILL)
        self.log_file.close()
        self.stdout_file.close()
