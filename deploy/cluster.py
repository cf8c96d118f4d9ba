#!/usr/bin/env python3
"""`make cluster`: one site served by several processes on this machine, as in production.

It starts redis-server with a generated password, N app processes (`python -m tornado_app`,
default: one per core) each on a Unix socket, and nginx in front of them on one port
(deploy/nginx.conf: sticky per session cookie, per client address without one, WebSocket
upgrades passed, X-Forwarded-* set, a refused connect or a draining app's 503 passed on to
the next app), every file in a private temporary directory. With --redis-ha the Redis is a
replicated one instead: a primary, a replica and three Sentinels, the apps finding the primary
through them (`redis+sentinel://`), a killed primary failed over to the replica. It prints the
URL, each process's pid and socket, and its own pid for a rolling restart, then supervises:

- A part that ends, whatever the way (an exit status, a signal, a crash), is started again on
  the same port or socket (nginx's list of upstreams is fixed) with the same flags and environment,
  after a back-off: 0.5 s, doubled for each end that follows a run shorter than 30 s, at most
  30 s, so a crash loop neither spins nor floods the terminal. One line says which part ended,
  how and when it restarts, one more when it is back:

      app 2 (pid 1234) killed by SIGKILL; restarting in 0.5 s
      app 2 back (pid 1240)

  Meanwhile the other processes serve, and nginx sends new connections to them (it tries
  each app for every request, `max_fails=0`, and a refused connect goes on to the next at
  once); a page whose socket was on the process that ended reconnects through nginx, still
  logged in. An app
  counts as started (first, and "back") once its own `GET /readyz` answers 200 (its Redis
  answers), asked directly on its socket as a balancer or an orchestrator would probe it
  (deploy/app_process.py `probe`); nginx itself cannot: open-source nginx has no active
  health checks, only `max_fails`/`fail_timeout` on real requests.
- redis-server and nginx are restarted the same way (our call: it is safe, so we do not stop
  everything). nginx holds no state, and its process group goes with it, so a worker left by
  a master that was killed cannot keep the port. Redis reads its data back from its
  append-only file (`appendonly yes`, `appendfsync everysec`, in the directory): people stay
  logged in, and the line says so; a machine that stops can lose about its last second of
  writes. The app processes ride out the gap by themselves. A Redis given with --redis-url is
  not ours and is not watched.
- SIGUSR1 (`kill -USR1 <its pid>`) restarts the apps one at a time, each taken out of nginx,
  drained over --drain-seconds, started again and put back (deploy/rolling_restart.py).
- Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal closing) stops everything at once (the apps
  get SIGINT: no drain), even during a back-off, a restart or a rolling restart, and removes
  the directory; the exit status is 0.

Who can reach what: the temporary directory is its owner's (0700), or, run as root, also
enterable (0710, nothing listed) by the group of nginx's workers, which run as a user of their
own (deploy/services.py NGINX_USER, created if missing) rather than nginx's default `nobody`:
any process of the workers' user could read the cookies out of their memory. The apps' sockets
are in `sockets/` (2710: the workers' group may connect, no one else), nginx's temporary files
in `nginx/` (the workers' own, 0700), the logs 0600 or in `logs/` (0700).

The Redis URL (with its password) and the cookie secret reach the app processes only through
$TORNADO_APP_REDIS_URL and $TORNADO_APP_COOKIE_SECRET, restarts included: a command line is
world-readable in /proc/PID/cmdline, and the secret with one session id from Redis makes a
cookie that works.

The apps are labelled app1, app2, ... (--process-label: their pages show it). Each app's
WARNING and ERROR lines are printed as they are written, prefixed with its name; an app that
does not start says the end of its log; on exit the logs (the apps' and Redis's) are kept in
a new private directory, and the last lines say where (deploy/applogs.py).

    .venv/bin/python deploy/cluster.py --help
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy import applogs
from deploy.rolling_restart import RestartRequests, RollingRestart
from deploy.services import (
    REPLICATED_RESTART_SECONDS,
    AppProcess,
    Nginx,
    RedisServer,
    ReplicatedRedis,
    Service,
    ServiceMissing,
    free_port,
    open_to_nginx,
)
from tornado_app.cli import COOKIE_SECRET_ENV, REDIS_URL_ENV
from tornado_app.redis.bus import redacted

FIRST_DELAY = 0.5  # seconds before restarting a part that had been up a while
MAX_DELAY = 30.0  # the longest wait, for a part that keeps ending as soon as it starts
STEADY_SECONDS = 30.0  # a run this long was healthy: the next wait is FIRST_DELAY again
POLL_SECONDS = 0.2  # how often the parts are looked at: an end is noticed this late at most
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Said when make cluster's own Redis ended (its data is in its append-only file, read back).
REDIS_RESTART_NOTE = " (its data comes back from its append-only file: people stay logged in)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Serve the site from several processes behind nginx, sharing Redis; "
                                     "restart any of them that ends, until Ctrl-C.")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2, help="app processes (default: one per core, %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="nginx's port on 127.0.0.1 (default: %(default)s; 0 picks a free one)")
    parser.add_argument("--drain-seconds", type=non_negative_seconds, default=10.0,
                        help="passed to every app: on SIGTERM (a rolling restart: kill -USR1 <the cluster's pid>) it ends "
                        "its sockets in batches over this long (default: %(default)g; 0: all at once)")
    parser.add_argument("--redis-url", default=os.environ.get(REDIS_URL_ENV) or None,
                        help=f"use this Redis instead of starting one (default: ${REDIS_URL_ENV}; prefer the variable, "
                        "since a password on a command line is readable by every local user)")
    parser.add_argument("--redis-ha", action="store_true",
                        help="a replicated Redis instead of one: a primary, a replica and three Sentinels, the apps "
                        "finding the primary through the Sentinels (redis+sentinel://); a killed primary is failed over")
    return parser


def non_negative_seconds(text: str) -> float:
    """--drain-seconds: a number of seconds, 0 or more."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return seconds


def say(line: str) -> None:
    """One line to the person at the terminal, at once (stdout may be a pipe), whole even
    while the apps' log lines are printed (deploy/applogs.py)."""
    applogs.say(line)


def how_it_ended(status: int) -> str:
    """Popen's returncode in words: `exited (status 1)` or `killed by SIGKILL`. (An app
    process stopped by SIGTERM or SIGINT shuts down cleanly and exits with status 0.)"""
    if status >= 0:
        return f"exited (status {status})"
    try:
        return f"killed by {signal.Signals(-status).name}"
    except ValueError:
        return f"killed by signal {-status}"


class Backoff:
    """The wait before a restart: short after a healthy run, doubled for each run that ends
    soon after it started, so that a part that cannot start is retried ever more calmly."""

    def __init__(self, first: float = FIRST_DELAY, cap: float = MAX_DELAY, steady: float = STEADY_SECONDS) -> None:
        self.first = first
        self.cap = cap
        self.steady = steady
        self.delay = first

    def after_run(self, seconds: float) -> float:
        """The wait before starting again a part that ran for `seconds`."""
        if seconds >= self.steady:
            self.delay = self.first
        delay = self.delay
        self.delay = min(delay * 2, self.cap)
        return delay


class Supervised:
    """One part of the cluster kept running: started again on its port when it ends."""

    def __init__(self, name: str, service: Service, restart_note: str = "") -> None:
        self.name = name
        self.service = service
        self.restart_note = restart_note  # what a restart costs, said with the line that announces it
        self.backoff = Backoff()
        self.up_since = time.monotonic()
        self.restart_at: float | None = None  # while it is down: when it starts again
        self.held = False  # ended and started by a rolling restart (deploy/rolling_restart.py), not here

    @property
    def pid(self) -> int:
        return self.service.process.pid

    def tend(self, now: float) -> None:
        """Notice that it ended, or start it again once its wait is over."""
        if self.held:
            return
        if self.restart_at is None:
            status = self.service.process.poll()
            if status is not None:
                self._ended(status, now)
        elif now >= self.restart_at:
            self._restart()

    def start_again_now(self) -> None:
        """Take it back from a rolling restart that ended it: start it at the next look, with
        the usual lines and, if it does not start, the usual retries."""
        self.held = False
        self.up_since = time.monotonic()  # an asked-for end does not count towards a back-off
        self.restart_at = time.monotonic()

    def _ended(self, status: int, now: float) -> None:
        delay = self.backoff.after_run(now - self.up_since)
        self.restart_at = now + delay
        say(f"{self.name} (pid {self.pid}) {how_it_ended(status)}; restarting in {delay:g} s{self.restart_note}")

    def _restart(self) -> None:
        try:
            self.service.start()
        except (RuntimeError, OSError, ServiceMissing) as error:
            self.service.stop()  # one that runs without serving is ended too
            delay = self.backoff.after_run(0)
            self.restart_at = time.monotonic() + delay
            say(applogs.did_not_start(self.name, error, delay))  # for an app, with the end of its log: the real reason
            return
        self.restart_at = None
        self.up_since = time.monotonic()
        say(f"{self.name} back (pid {self.pid})")


def start_parts(args: argparse.Namespace, workdir: Path, parts: list[Supervised]) -> str:
    """Start Redis (unless one was given), the app processes and nginx, each added to `parts`
    as soon as it runs (so that a failure part way stops those); returns the line to print."""
    redis_url = args.redis_url
    if redis_url is None and args.redis_ha:  # --redis-ha: see start_replicated_redis
        redis_url = start_replicated_redis(workdir, parts)
    if redis_url is None:
        redis = RedisServer(workdir, persistent=True)
        parts.append(Supervised("redis-server", redis, restart_note=REDIS_RESTART_NOTE))
        redis_url = redis.url
    port = args.port or free_port()
    # Secrets through the environment only, for every start and restart.
    env = {COOKIE_SECRET_ENV: os.environ.get(COOKIE_SECRET_ENV) or secrets.token_urlsafe(32), REDIS_URL_ENV: redis_url}
    flags = ("--behind-proxy", "--allowed-host", f"127.0.0.1:{port}", "--allowed-host", f"localhost:{port}",
             "--drain-seconds", f"{args.drain_seconds:g}")
    # The apps listen on Unix sockets that only nginx's workers (and we) can reach: a local
    # user who could reach an app would be trusted for any X-Real-Ip it sends.
    open_to_nginx(workdir, 0o710)
    sockets = workdir / "sockets"
    sockets.mkdir()
    open_to_nginx(sockets, 0o2710)
    apps: list[AppProcess] = []
    for number in range(1, args.processes + 1):
        apps.append(AppProcess(workdir / f"app{number}.log", *flags, "--process-label", f"app{number}",
                               unix_socket=sockets / f"app{number}.sock", env=env))
        parts.append(Supervised(f"app {number}", apps[-1]))
    nginx = Nginx(workdir, [app.where for app in apps], port=port)
    parts.append(Supervised("nginx", nginx))
    processes = ", ".join(f"app {number} (pid {app.process.pid}) on {app.where}" for number, app in enumerate(apps, 1))
    return f"Serving on {nginx.url}/  ({processes}; Redis at {redacted(redis_url)}; logs in {workdir}; Ctrl-C to stop{how_to_restart()})"


def how_to_restart() -> str:
    """The end of the first line: the cluster's pid, and how to ask it for a rolling restart."""
    return f"; kill -USR1 {os.getpid()} for a rolling restart"


def rolling_restart_of(parts: list[Supervised], drain_seconds: float, requests: RestartRequests) -> RollingRestart | None:
    """The rolling restart of the app parts behind the nginx part (None without nginx)."""
    apps = [part for part in parts if isinstance(part.service, AppProcess)]
    nginx = next((part for part in parts if isinstance(part.service, Nginx)), None)
    return RollingRestart(apps, nginx, drain_seconds, say, requests) if nginx is not None else None


def start_replicated_redis(workdir: Path, parts: list[Supervised]) -> str:
    """--redis-ha: a primary, a replica and three Sentinels (deploy/services.py ReplicatedRedis),
    each supervised like the rest, once the Sentinels watch the set; the apps' URL.

    A killed server is started again only after REPLICATED_RESTART_SECONDS, once the Sentinels
    have promoted the replica: it comes back with its AOF, and the Sentinels turn it into a
    replica of the new primary. Started at once, a primary would be back before it was missed."""
    replicated = ReplicatedRedis(workdir / "redis-ha")
    for number, server in enumerate(replicated.servers, 1):
        part = Supervised(f"redis {number}", server, restart_note=" (if it was the primary, the Sentinels fail over "
                          "to the replica meanwhile; it comes back as a replica)")
        part.backoff = Backoff(first=REPLICATED_RESTART_SECONDS)
        parts.append(part)
    for number, sentinel in enumerate(replicated.sentinels, 1):
        parts.append(Supervised(f"sentinel {number}", sentinel))
    replicated.wait_until_watched()
    return replicated.url


def supervise(parts: list[Supervised], rolling: RollingRestart | None = None) -> NoReturn:
    """Restart whatever ends, and move on any rolling restart, until a KeyboardInterrupt
    (Ctrl-C, SIGTERM or SIGHUP)."""
    while True:
        now = time.monotonic()
        for part in parts:
            part.tend(now)
        if rolling is not None:
            rolling.tick(time.monotonic())
        time.sleep(POLL_SECONDS)


def stop_all(parts: list[Supervised]) -> None:
    """Stop every part, nginx first and Redis last. A second Ctrl-C is ignored here rather than
    leave processes behind: each stop has its own time limit, then SIGKILL."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    for part in reversed(parts):
        part.service.stop()


def follow_app_logs(parts: list[Supervised]) -> applogs.LogFollowers:
    """Print each app's WARNING and ERROR lines as they are written, prefixed with its name."""
    return applogs.LogFollowers([applogs.LogFollower(part.name, part.service.log_path, applogs.Redactor.of_app(part.service.env))
                                 for part in parts if isinstance(part.service, AppProcess)]).start()


def keep_logs(workdir: Path) -> None:
    """The apps' logs (and Redis's) outlive the cluster's directory, which goes: moved to a
    new private one, and said where."""
    kept = applogs.keep_logs([*sorted(workdir.glob("app*.log")), workdir / "redis.log"])
    if kept is not None:
        say(f"logs kept in {kept}")


def interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    """SIGTERM and SIGHUP stop the cluster as Ctrl-C does."""
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt: SIGINT even where it was inherited
    ignored (a script's `make cluster &`), so that `kill -INT` stops it as Ctrl-C does, but
    SIGHUP not where it was ignored (`nohup make cluster`)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop_on_signals()
    requests = RestartRequests()
    requests.listen()  # before the first line names the pid, so that no SIGUSR1 ends the cluster
    parts: list[Supervised] = []
    with tempfile.TemporaryDirectory(prefix="tornado-app-cluster-") as workdir:
        try:
            line = start_parts(args, Path(workdir), parts)
        except (ServiceMissing, RuntimeError, OSError) as error:
            stop_all(parts)
            print(f"make cluster: {error}", file=sys.stderr)
            keep_logs(Path(workdir))
            return 2
        except KeyboardInterrupt:
            stop_all(parts)
            keep_logs(Path(workdir))
            return 0
        followers = None
        try:  # whatever ends it (Ctrl-C even as the first line is printed, or a bug), no part outlives it
            say(line)
            followers = follow_app_logs(parts)
            supervise(parts, rolling_restart_of(parts, args.drain_seconds, requests))
        except KeyboardInterrupt:
            pass
        finally:
            stop_all(parts)
            if followers is not None:
                followers.stop()
            keep_logs(Path(workdir))
        say("stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main())
