"""Start and stop the parts of a multi-process deployment on one machine: redis-server (or a
replicated Redis: a primary, a replica and three Sentinels), the app processes and nginx, each
on a free port or socket with its files in a temporary directory.

`deploy/cluster.py` (`make cluster`) runs them for a person; the tests and the benchmarks
start their own.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any, BinaryIO

from deploy.app_process import StartedApp, probe, stop_process

ROOT = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = Path(__file__).resolve().parent / "nginx.conf"
# Started by root, nginx's master drops its workers to this user (its own group too), created
# when missing. The workers hold every request, session cookies included, and nginx makes
# them ptrace-able by their user (prctl PR_SET_DUMPABLE): a user shared with other programs
# (`nobody`, Debian's `www-data`) could read the cookies out of their memory.
NGINX_USER = "session-sockets-nginx"


class ServiceMissing(Exception):
    """A program the deployment needs is not installed; the message says which and how."""


def ephemeral_ports() -> range:
    """The ports the kernel gives outgoing connections (Linux says which; elsewhere, the
    IANA range)."""
    try:
        low, high = (int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 49152, 65535
    return range(low, high + 1)


def free_port() -> int:
    """A loopback port free now, for a service to bind next (the one `free_port` of the
    repository: deploy/cluster.py, the tests and bench/compare.sh use it).

    Chosen outside the ephemeral range: a service restarted on its port (make cluster, the
    restart tests) must find it free, and any outgoing connection made meanwhile (a client,
    nginx to an upstream) could otherwise have been given that very port."""
    ephemeral = ephemeral_ports()
    candidates = [port for port in range(10000, 65536) if port not in ephemeral]
    for _ in range(200):
        port = random.choice(candidates)
        if _free_on_every_loopback(port):
            return port
    with socket.socket() as probe:  # everything tried was taken: let the kernel choose
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@functools.cache
def has_ipv6_loopback() -> bool:
    """Whether this machine has ::1: where it has, a server on 127.0.0.1 that answers to
    `localhost` must hold ::1 on its port too, or another local user could (browsers try both)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _free_on_every_loopback(port: int) -> bool:
    """Whether `port` is free on 127.0.0.1 and, where the machine has it, on ::1."""
    families = [(socket.AF_INET, "127.0.0.1")] + ([(socket.AF_INET6, "::1")] if has_ipv6_loopback() else [])
    for family, address in families:
        with socket.socket(family) as probe:
            try:
                probe.bind((address, port))
            except OSError:
                return False
    return True


def nginx_worker_user() -> str | None:
    """Run as root: the user nginx's workers run as (NGINX_USER, created if missing: a system
    user with its own group, no home, no shell). Otherwise None: nginx runs as whoever runs
    it, workers included, and no other user can read their memory."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(NGINX_USER)
    except KeyError:
        command = [find_program("useradd", sbin=True), "--system", "--user-group", "--no-create-home", "--home-dir",
                   "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "Session Sockets nginx workers", NGINX_USER]
        created = subprocess.run(command, capture_output=True, text=True, check=False)  # its failure is read below
        try:
            pwd.getpwnam(NGINX_USER)  # ours, or made meanwhile by another start (useradd then fails)
        except KeyError:
            raise RuntimeError(f"cannot create the user {NGINX_USER} for nginx's workers: {created.stderr.strip()}") from None
    return NGINX_USER


def open_to_nginx(directory: Path, mode: int) -> None:
    """Give `directory` the group of nginx's workers and `mode` (0o710: they may enter it and
    open what they know the name of; 0o2710: Unix sockets made in it take that group), or,
    where nginx runs as we do, keep it to its owner (0700)."""
    user = nginx_worker_user()
    if user is None:
        directory.chmod(0o700)
        return
    os.chown(directory, -1, grp.getgrnam(user).gr_gid)
    directory.chmod(mode)


def reachable_by(path: Path, user: str) -> bool:
    """Whether `user` (by its uid and primary group) may enter every directory down to `path`."""
    entry = pwd.getpwnam(user)
    for directory in [*reversed(path.resolve().parents), path.resolve()]:
        status = directory.stat()
        if status.st_uid == entry.pw_uid:
            allowed = status.st_mode & 0o100
        elif status.st_gid == entry.pw_gid:
            allowed = status.st_mode & 0o010
        else:
            allowed = status.st_mode & 0o001
        if not allowed:
            return False
    return True


def _program(process: subprocess.Popen[Any]) -> str:
    """The program `process` runs, for a message (ours are all started from a list)."""
    args = process.args
    return str(args[0] if isinstance(args, (list, tuple)) else args)


def wait_for_port(port: int, process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{_program(process)} exited with status {process.returncode} before listening on {port}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"{_program(process)} is not listening on port {port} after {timeout} s")


def find_program(name: str, sbin: bool = False) -> str:
    found = shutil.which(name) or (shutil.which(name, path="/usr/sbin:/sbin") if sbin else None)
    if found is None:
        raise ServiceMissing(f"{name} is not installed (Debian: sudo make system-deps)")
    return found


class Service:
    """A child process we started and must stop, and can start again on the same port."""

    process: subprocess.Popen[str]

    def start(self) -> None:
        """Start the process (again, after it ended) with the same port, files and environment."""
        raise NotImplementedError

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        return stop_process(self.process, sig, timeout)

    def kill(self) -> None:
        """SIGKILL: the process dies without a word, as in a crash."""
        self.stop(signal.SIGKILL)


class RedisServer(Service):
    """redis-server on a free loopback port, its files in `workdir`, and a password: any local
    user can reach a loopback port, and Redis holds the session ids (the bearer credentials)
    and the channels every process obeys.

    With `persistent`, it keeps its data across its own restart (make cluster): every write
    goes to an append-only file in `workdir`/appendonlydir, fsynced once a second
    (`appendfsync everysec`), read back by the next start. A Redis that is killed loses at
    most its last write (redis.conf's own words); a machine that stops (power, a kernel panic)
    loses up to about the last second of writes. Without it (the tests' own Redis), a
    restart is empty.

    The password is in `redis.conf` (mode 0600, in the caller's private temporary directory)
    and in `url`, which goes to the app processes through $TORNADO_APP_REDIS_URL: never on a
    command line, which every local user can read in /proc/PID/cmdline. Its files (the log, the
    append-only file with every session id) are made 0600, whatever our umask."""

    def __init__(self, workdir: Path, port: int | None = None, password: str | None = None, persistent: bool = False) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password or secrets.token_urlsafe(32)
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"
        self.config_path = workdir / "redis.conf"
        persistence = "appendonly yes\nappendfsync everysec\nappenddirname appendonlydir\n" if persistent else "appendonly no\n"
        # Created 0600 before the password is written: never readable by others, not even briefly.
        descriptor = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as config:
            config.write(f'port {self.port}\nbind 127.0.0.1\nprotected-mode yes\ndir "{workdir}"\nsave ""\n'
                         f'{persistence}logfile "{workdir / "redis.log"}"\nrequirepass "{self.password}"\n')
        self.start()

    def start(self) -> None:
        command = [find_program("redis-server", sbin=True), str(self.config_path)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, umask=0o077)
        wait_for_port(self.port, self.process)


APP_START_SECONDS = 10  # an app that does not serve by then has not started (make cluster restarts it)


class AppProcess(Service):
    """`python -m tornado_app` on a free port, or on the Unix socket `unix_socket` (then with
    no TCP port at all: give it --behind-proxy and --allowed-host), its log (stdout and
    stderr) in `log_path` (mode 0600), started (and started again) by deploy/app_process.py:
    it counts as started once its /readyz answers 200; AppDidNotStart otherwise, with the end
    of its log."""

    def __init__(self, log_path: Path, *args: str, port: int | None = None, unix_socket: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.unix_socket = unix_socket
        self.port = 0 if unix_socket else port or free_port()
        self.args = args
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.started: StartedApp | None = None
        self.start()

    @property
    def where(self) -> str:
        """Where it listens, as nginx's `server` line names it."""
        return f"unix:{self.unix_socket}" if self.unix_socket else f"127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.started is not None:
            self.started.close()  # the files of a process that ended by itself (stop() closes its own)
        listen = ["--unix-socket", str(self.unix_socket)] if self.unix_socket else ["--port", str(self.port)]
        self.started = StartedApp(*listen, *self.args, env=self.env, log_path=self.log_path, stdout_in_log=True,
                                  timeout=APP_START_SECONDS)
        self.process = self.started.process
        self.url = f"http://127.0.0.1:{self.port}"  # (on a Unix socket, only nginx reaches it)

    def ready(self) -> tuple[int, str]:
        """Its /readyz now: (status, body)."""
        return probe(self.where)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        """SIGINT: the app stops at once, as at Ctrl-C (SIGTERM would drain its sockets over
        --drain-seconds first: a rolling restart sends that itself)."""
        assert self.started is not None
        status = self.started.stop(sig, timeout)
        self.started.close()
        return status

    def log(self) -> str:
        return self.log_path.read_text()


def nginx_site(template: str, servers: list[str], listen: str, logs: Path, down: Collection[str] = (),
               forwarded_for_from_loopback: bool = False) -> str:
    """deploy/nginx.conf (`template`) made into the site that Nginx runs: its `listen` line,
    its upstream's `server` lines for `servers` (with the template's own parameters, such as
    `max_fails=0`, and `down` for those in `down`), its logs in `logs`. Everything else is the
    template's, so the documented file and what make cluster and the tests run stay one."""
    site = template.replace("listen 8080;", listen)
    upstream = re.search(r"^upstream tornado_app \{\n(.*?)^\}", site, flags=re.DOTALL | re.MULTILINE)
    if upstream is None:
        raise ValueError("nginx.conf has no `upstream tornado_app { ... }`")
    lines = list(re.finditer(r"^(\s*)server (\S+?)((?: [^;]*)?);\n", upstream.group(1), flags=re.MULTILINE))
    if not lines:
        raise ValueError("nginx.conf's upstream tornado_app has no `server` line")
    indent, parameters = lines[0].group(1), lines[0].group(3)
    ours = "".join(f"{indent}server {where}{parameters}{' down' if where in down else ''};\n" for where in servers)
    start, end = upstream.start(1) + lines[0].start(), upstream.start(1) + lines[-1].end()
    site = site[:start] + ours + site[end:]
    site = site.replace("/var/log/nginx/tornado_app.", f"{logs}/")
    if forwarded_for_from_loopback:
        site = site.replace("    server_name _;\n", "    server_name _;\n    set_real_ip_from 127.0.0.1;\n"
                            "    real_ip_header X-Forwarded-For;\n", 1)
    return site


def children_of(pid: int) -> dict[int, str]:
    """The live child processes of `pid` (Linux /proc), each with its command line as it
    shows it now (nginx writes its role there: `nginx: worker process`, `... is shutting down`)."""
    children: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat[stat.rindex(")") + 2:].split()[1])  # after `(comm)`: state, then ppid
            if parent == pid:
                children[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    return children


class Nginx(Service):
    """nginx in front of the app processes on one port, with deploy/nginx.conf's settings; its
    logs in `workdir`/logs, its temporary files in `workdir`/nginx. `upstreams` are where the
    apps listen: ports on 127.0.0.1, or `unix:PATH` (AppProcess.where).

    Run by root, its workers run as NGINX_USER, which must be able to enter `workdir` (see
    open_to_nginx) and reach the apps' sockets; otherwise they run as we do.

    It runs in a process group of its own: a master that dies without a word (SIGKILL) leaves
    its worker serving on the port, so `start` and `stop` end whatever is left of the group.

    `set_down` marks some upstreams `down` (a rolling restart: no new client goes there) and
    reloads; `reloaded` says when the new configuration serves.

    `forwarded_for_from_loopback` is for tests only: nginx takes the client's address from
    X-Forwarded-For when the peer is 127.0.0.1 (realip), so that one test can be many clients."""

    def __init__(self, workdir: Path, upstreams: list[int] | list[str], port: int | None = None,
                 forwarded_for_from_loopback: bool = False) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.user = nginx_worker_user()
        if self.user is not None and not reachable_by(workdir, self.user):
            raise RuntimeError(f"nginx's workers run as {self.user}, who cannot enter {workdir} (see deploy.services.open_to_nginx)")
        self.upstreams = [f"127.0.0.1:{upstream}" if isinstance(upstream, int) else upstream for upstream in upstreams]
        self.forwarded_for_from_loopback = forwarded_for_from_loopback
        self.down: frozenset[str] = frozenset()
        self.logs = workdir / "logs"
        self.logs.mkdir(mode=0o700, exist_ok=True)  # opened by the master: the workers inherit them
        self.temporary = workdir / "nginx"  # request bodies and responses that overflow memory
        self.temporary.mkdir(mode=0o700, exist_ok=True)
        if self.user is not None:
            os.chown(self.temporary, pwd.getpwnam(self.user).pw_uid, grp.getgrnam(self.user).gr_gid)
        self.config_path = workdir / "nginx.conf"
        self._write_config()
        self._old_workers: set[int] = set()  # the workers of the configuration before the last reload
        self._launch()

    def _write_config(self) -> None:
        # Both loopbacks: the apps answer to `localhost`, which a browser may send to ::1.
        listen = f"listen 127.0.0.1:{self.port};" + (f"\n    listen [::1]:{self.port};" if has_ipv6_loopback() else "")
        site = nginx_site(NGINX_TEMPLATE.read_text(), self.upstreams, listen, self.logs, self.down, self.forwarded_for_from_loopback)
        temporary, logs, workdir, user = self.temporary, self.logs, self.workdir, self.user
        text = ((f"user {user} {user};\n" if user else "")
                + f"daemon off;\nworker_processes 1;\npid {workdir}/nginx.pid;\nerror_log {logs}/nginx.log warn;\n"
                f"events {{ worker_connections 4096; }}\n"
                f"http {{\n    client_body_temp_path {temporary}/body;\n    proxy_temp_path {temporary}/proxy;\n"
                f"    fastcgi_temp_path {temporary}/fastcgi;\n    uwsgi_temp_path {temporary}/uwsgi;\n"
                f"    scgi_temp_path {temporary}/scgi;\n"
                f"{site}\n}}\n")
        # Whole or not at all: a master started (or reloaded) meanwhile never reads half a file.
        partial = self.config_path.with_suffix(".conf.new")
        partial.write_text(text)
        partial.replace(self.config_path)

    def set_down(self, down: Collection[str]) -> None:
        """Mark the upstreams in `down` (AppProcess.where) `down`, and the others up, and have
        nginx read its configuration again (SIGHUP to the master): new workers serve with it
        while the old ones finish the connections they hold (WebSockets included) and end.
        A master not running reads the file when it starts again."""
        self.down = frozenset(down)
        self._write_config()
        if self.process.poll() is not None:
            self._old_workers = set()
            return
        self._old_workers = set(children_of(self.process.pid))
        self.process.send_signal(signal.SIGHUP)

    def reloaded(self) -> bool:
        """Whether the configuration of the last `set_down` serves now: a new worker runs,
        and every worker of the old configuration has stopped taking connections (it says
        `is shutting down`) or ended. (True also when the master has ended: its restart
        reads the file.)"""
        if self.process.poll() is not None:
            return True
        workers = children_of(self.process.pid)
        new = [pid for pid, title in workers.items() if pid not in self._old_workers and "worker process" in title]
        still_taking = [pid for pid, title in workers.items() if pid in self._old_workers and "shutting down" not in title]
        return bool(new) and not still_taking

    def start(self) -> None:
        """Start again once the master has ended, after ending any worker it left on the port."""
        self._end_orphans()
        self._launch()

    def _launch(self) -> None:
        command = [find_program("nginx", sbin=True), "-p", str(self.workdir), "-c", str(self.config_path)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, process_group=0)
        wait_for_port(self.port, self.process)

    def stop(self, sig: int = signal.SIGQUIT, timeout: float = 10) -> int:
        """SIGQUIT: nginx's graceful shutdown."""
        status = super().stop(sig, timeout)
        self._end_orphans()
        return status

    def _end_orphans(self) -> None:
        """Once the master has ended: SIGKILL any worker it left (none after a graceful stop),
        and close its stderr pipe."""
        if self.process.poll() is None:
            return  # the master is alive: its workers are not orphans
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the group is empty
        # A killed worker lets go of the port when it has died, a moment later: until then a
        # new master could not bind it, and the port would seem served by the dying worker.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    break
            time.sleep(0.02)
        if self.process.stderr is not None:
            self.process.stderr.close()


# --- A replicated Redis behind Sentinel (make cluster --redis-ha; tests/support/sentinel.py) ---

SENTINEL_SERVICE = "session-sockets"  # the Sentinels' name for the primary, the URL's last part
DOWN_AFTER_MS = 1000  # a primary silent this long is down for a Sentinel (2 of 3 agreeing: failover)
FAILOVER_TIMEOUT_MS = 5000  # Sentinel's failover-timeout: another try after twice this
# A killed server of the set is started again only after this long, so that the Sentinels
# notice it is gone and promote the replica first. Started at once, a primary would come back
# before it was missed, and stay primary, with what its AOF kept (a crash can lose its last second).
REPLICATED_RESTART_SECONDS = 5.0


def _write_private(path: Path, text: str) -> None:
    """Write `path` as mode 0600 from its creation (it holds a password: never readable by
    others, not even briefly)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


class ReplicatedRedisServer(Service):
    """One redis-server of a replicated set: the primary at first, or a replica of the server
    on `primary_port`. Each has its own directory and its own config file, which Sentinel
    rewrites (CONFIG REWRITE) when it promotes or demotes it; a server restarted keeps its
    role from there, or, if it was the primary when it died, starts as one and is turned into
    a replica of the new primary by the Sentinels. `masterauth` is the same password, so any
    of them can follow any other. AOF (fsync every second) so that a restarted server starts
    with its data rather than empty."""

    def __init__(self, workdir: Path, password: str, primary_port: int | None = None, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        workdir.mkdir(mode=0o700, exist_ok=True)
        self.config_path = workdir / "redis.conf"
        _write_private(self.config_path,
                       f'port {self.port}\nbind 127.0.0.1\nprotected-mode yes\ndir "{workdir}"\nsave ""\n'
                       f'appendonly yes\nappendfsync everysec\nlogfile "{workdir / "redis.log"}"\n'
                       f'requirepass "{password}"\nmasterauth "{password}"\n'
                       + (f"replicaof 127.0.0.1 {primary_port}\n" if primary_port else ""))
        self.start()

    def start(self) -> None:
        command = [find_program("redis-server", sbin=True), str(self.config_path)]
        # umask 077: the config file Sentinel has it rewrite (CONFIG REWRITE) stays 0600.
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, umask=0o077)
        wait_for_port(self.port, self.process)


class SentinelServer(Service):
    """`redis-server sentinel.conf --sentinel`: one of the Sentinels that watch the primary
    (quorum 2) and promote the replica when it is down. It requires the same password as the
    servers (`requirepass`; `sentinel sentinel-pass` for the other Sentinels), and rewrites
    its own config file as it learns the set (so a restarted Sentinel knows it again)."""

    def __init__(self, workdir: Path, password: str, primary_port: int, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        workdir.mkdir(mode=0o700, exist_ok=True)
        self.config_path = workdir / "sentinel.conf"
        name = SENTINEL_SERVICE
        _write_private(self.config_path,
                       f'port {self.port}\nbind 127.0.0.1\nprotected-mode yes\ndir "{workdir}"\n'
                       f'logfile "{workdir / "sentinel.log"}"\nrequirepass "{password}"\n'
                       f'sentinel sentinel-pass "{password}"\n'
                       f"sentinel monitor {name} 127.0.0.1 {primary_port} 2\n"
                       f'sentinel auth-pass {name} "{password}"\n'
                       f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}\n"
                       f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}\n"
                       f"sentinel parallel-syncs {name} 1\n")
        self.start()

    def start(self) -> None:
        command = [find_program("redis-server", sbin=True), str(self.config_path), "--sentinel"]
        # umask 077: the config file it rewrites as it learns the set stays 0600.
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, umask=0o077)
        wait_for_port(self.port, self.process)


class ReplicatedRedis:
    """A primary, a replica and three Sentinels on free loopback ports, their files in
    `workdir`/redis-1, redis-2, sentinel-1..3, one generated password for all of them.

    `url` (redis+sentinel://, with the password) goes to the apps through
    $TORNADO_APP_REDIS_URL only, like RedisServer's: never on a command line. On one machine
    this shows the mechanism; in production the Sentinels (3 or more) and the servers are on
    separate machines, or one machine's loss takes the quorum with it."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.password = password or secrets.token_urlsafe(32)
        workdir.mkdir(mode=0o700, exist_ok=True)
        self.servers: list[ReplicatedRedisServer] = []
        self.sentinels: list[SentinelServer] = []
        try:
            self.servers.append(ReplicatedRedisServer(workdir / "redis-1", self.password))
            self.servers.append(ReplicatedRedisServer(workdir / "redis-2", self.password, primary_port=self.servers[0].port))
            for number in (1, 2, 3):
                self.sentinels.append(SentinelServer(workdir / f"sentinel-{number}", self.password, self.servers[0].port))
        except BaseException:
            self.stop()
            raise
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        self.url = f"redis+sentinel://:{self.password}@{hosts}/0/{SENTINEL_SERVICE}"

    def wait_until_watched(self, timeout: float = 20) -> None:
        """Wait until every Sentinel sees the primary, the replica in sync, and the two other
        Sentinels: only then can they fail over. RuntimeError if not within `timeout` s."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                states = [self._ask(sentinel.port, "SENTINEL", "MASTER", SENTINEL_SERVICE) for sentinel in self.sentinels]
                replicas = self._ask(self.sentinels[0].port, "SENTINEL", "REPLICAS", SENTINEL_SERVICE)
            except (OSError, RuntimeError) as error:
                last = str(error)
            else:
                if all(_fields(state).get("num-other-sentinels") == "2" for state in states) and replicas and all(
                        "s_down" not in _fields(replica).get("flags", "") and _fields(replica).get("master-link-status") == "ok"
                        for replica in replicas):
                    return
                last = f"Sentinels see {[_fields(state).get('num-other-sentinels') for state in states]} other Sentinels, replicas {replicas}"
            time.sleep(0.1)
        raise RuntimeError(f"the Sentinels do not watch the replicated Redis after {timeout} s: {last}")

    def primary_port(self) -> int:
        """The primary's port, as the first Sentinel that answers says."""
        for sentinel in self.sentinels:
            try:
                _, port = self._ask(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE)
            except (OSError, RuntimeError, ValueError):
                continue
            return int(port)
        raise RuntimeError("no Sentinel answers")

    def primary(self) -> ReplicatedRedisServer:
        port = self.primary_port()
        return next(server for server in self.servers if server.port == port)

    def stop(self) -> None:
        for service in [*self.sentinels, *self.servers]:
            service.stop()

    def _ask(self, port: int, *command: str) -> RedisReply:
        return ask_redis(port, self.password, *command)


def _fields(reply: object) -> dict[str, str]:
    """A Sentinel's flat [name, value, name, value, ...] reply as a dict."""
    items = list(reply) if isinstance(reply, list) else []
    return dict(zip(items[::2], items[1::2], strict=False))


# A RESP2 reply: a str, None, or a list of replies. Any: each caller knows the shape of the
# answer to the command it sent (a list for SENTINEL MASTER, a str for PING).
RedisReply = Any


def ask_redis(port: int, password: str, *command: str, timeout: float = 2.0) -> RedisReply:
    """One command to the Redis or Sentinel on 127.0.0.1:`port`, after AUTH: its reply as
    strings and lists (RESP2). RuntimeError for an error reply. (No client library: make
    cluster runs this before any app, and it needs no more than this.)"""
    # The file too is closed on the way out: while it is open, closing the socket leaves its
    # descriptor open (a ResourceWarning later, in whichever test collects it).
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection, connection.makefile("rb") as reader:
        for words in (("AUTH", password), command):
            connection.sendall(b"".join([f"*{len(words)}\r\n".encode()]
                                        + [f"${len(word.encode())}\r\n{word}\r\n".encode() for word in words]))
            reply = _read_reply(reader)
        return reply


def _read_reply(reader: BinaryIO) -> RedisReply:
    line = reader.readline()
    if not line:
        raise OSError("the connection closed")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+" or kind == b":":
        return rest
    if kind == b"-":
        raise RuntimeError(rest)
    if kind == b"$":
        if int(rest) < 0:
            return None
        data = reader.read(int(rest) + 2)
        return data[:-2].decode()
    if kind == b"*":
        return None if int(rest) < 0 else [_read_reply(reader) for _ in range(int(rest))]
    raise OSError(f"not a RESP reply: {line[:40]!r}")
