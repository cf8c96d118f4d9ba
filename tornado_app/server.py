"""Running the app: bind a port, serve until told to stop, then close everything in order.

Binding is separate from serving so that a caller (the desktop launcher) can take the port on
its main thread, know the URL, and serve from another thread.

Listening on one loopback address binds the other one too, on the same port: a browser tries
`localhost` on ::1 first, so a server that answers to `localhost` but holds only 127.0.0.1
lets another local user bind [::1]:PORT and receive the person's `http://localhost:PORT`
requests, cookies included (issue 21, item 11). Where the other loopback cannot be had, the
server stops answering to the names that would reach it (`BoundSockets.loopback_names`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets, bind_unix_socket

from .admission import AdmittingHTTPServer
from .app import TornadoApp
from .drain import StopSignals
from .drain import drain as drain_sockets
from .launch_admission import LaunchAdmittingHTTPServer

log = logging.getLogger(__name__)

# The most any route takes (a polling POST: one 64 KiB packet); each route's own cap is
# smaller or equal (TornadoApp.max_body_bytes) and is checked from the request's headers.
MAX_BODY_BYTES = 64 * 1024
# Tornado reads a connection 64 KiB at a time by default, and keeps what it read past the
# headers: a connection that sends headers and some body held 64 KiB before any handler ran.
READ_CHUNK_BYTES = 16 * 1024
SHUTDOWN_GRACE_SECONDS = 1.0  # then stop waiting for stragglers: Ctrl-C must feel instant
# A Unix socket's own mode: its owner and its group may connect. Who else can reach it is the
# directory's business (make cluster: 2710, group nginx's workers; the socket takes that group).
UNIX_SOCKET_MODE = 0o660

IPV4_LOOPBACK, IPV6_LOOPBACK = "127.0.0.1", "::1"
# The loopback address that listening on an address leaves to others, bound beside it.
OTHER_LOOPBACK = {IPV4_LOOPBACK: IPV6_LOOPBACK, "0.0.0.0": IPV6_LOOPBACK, IPV6_LOOPBACK: IPV4_LOOPBACK, "::": IPV4_LOOPBACK}
FREE_PORT_ATTEMPTS = 20  # port 0: tries for a port free on both loopbacks
# Connections the kernel queues before the loop accepts them (Tornado's default: 128; the
# kernel caps it at net.core.somaxconn). 2,000 pages reconnecting at once after a restart
# overflowed 128 about 2,000 times, each a client waiting 1 to 7 s to try again
# (bench/resume.py); the admission caps still bound what is accepted.
LISTEN_BACKLOG = 2048


class CannotBind(OSError):
    """The address and port cannot be listened on (taken, forbidden, or not ours)."""


@dataclass(frozen=True)
class BoundSockets:
    """Listening sockets, already bound, and the address they answer on."""

    sockets: list[socket.socket]
    address: str
    port: int
    scheme: str = "http"
    unix_inode: int | None = None  # a Unix socket: `address` is its path, this its file
    # The names of the loopback addresses held on `port`: "localhost" only with both.
    loopback_names: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        if self.unix_inode is not None:
            return f"unix:{self.address}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{host}:{self.port}/"

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        if self.unix_inode is not None:
            _remove_if_ours(self.address, self.unix_inode)


def bind(address: str, port: int, scheme: str = "http") -> BoundSockets:
    """Bind now (port 0 picks a free one, on both loopbacks where it can), and the other
    loopback address beside a loopback one (see the module docstring); raises CannotBind with
    a one-line message."""
    other = OTHER_LOOPBACK.get(address)
    attempts = FREE_PORT_ATTEMPTS if port == 0 and other else 1
    for attempt in range(1, attempts + 1):
        sockets = _bind_or_explain(address, port)
        chosen = sockets[0].getsockname()[1]
        if other is None:
            break
        try:
            sockets += bind_sockets(chosen, other, backlog=LISTEN_BACKLOG)
        except OSError as error:
            if error.errno == errno.EADDRINUSE and attempt < attempts:
                for sock in sockets:
                    sock.close()
                continue  # port 0: another one, free on both
            _say_why_not(other, chosen, error)
        break
    return BoundSockets(sockets, address, chosen, scheme, loopback_names=_loopback_names(sockets))


def _bind_or_explain(address: str, port: int) -> list[socket.socket]:
    try:
        return bind_sockets(port, address, backlog=LISTEN_BACKLOG)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            message = f"port {port} on {address} is already in use"
        else:
            message = f"cannot listen on {address}:{port}: {error.strerror or error}"
        raise CannotBind(error.errno, message) from error


def _say_why_not(address: str, port: int, error: OSError) -> None:
    if error.errno == errno.EADDRINUSE:
        log.warning("port %d on %s is taken by another program: not answering to localhost, whose requests "
                    "a browser may send there", port, address)
    else:  # no IPv6 (or IPv4) on this machine: nobody else can have it either
        log.debug("cannot listen on %s:%d too (%s): not answering to localhost", address, port, error.strerror or error)


def _loopback_names(sockets: list[socket.socket]) -> tuple[str, ...]:
    """The names that reach these sockets through a loopback address: "127.0.0.1" and
    "[::1]" for each held, "localhost" only when both are (a browser may try either)."""
    held = {sock.getsockname()[0] for sock in sockets}
    ipv4 = bool(held & {IPV4_LOOPBACK, "0.0.0.0"})
    ipv6 = bool(held & {IPV6_LOOPBACK, "::"})
    return (*(["127.0.0.1"] if ipv4 else []), *(["localhost"] if ipv4 and ipv6 else []), *(["[::1]"] if ipv6 else []))


def bind_unix(path: str, scheme: str = "http") -> BoundSockets:
    """Bind a Unix socket at `path`, mode 0660, for a proxy on this machine; raises CannotBind
    with a one-line message. A socket file left by a process that ended is replaced (a
    restart on the same path); one that a live process answers on is not taken from it."""
    if _answers(path):
        raise CannotBind(errno.EADDRINUSE, f"{path} is already in use")
    try:
        sock = bind_unix_socket(path, mode=UNIX_SOCKET_MODE, backlog=LISTEN_BACKLOG)
    except ValueError as error:  # Tornado: the path is some other kind of file
        raise CannotBind(errno.EEXIST, f"cannot listen on {path}: {error}") from error
    except OSError as error:
        raise CannotBind(error.errno, f"cannot listen on {path}: {error.strerror or error}") from error
    return BoundSockets([sock], path, 0, scheme, unix_inode=os.stat(path).st_ino)


def _answers(path: str) -> bool:
    """Whether a process accepts connections on the Unix socket at `path` now."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _remove_if_ours(path: str, inode: int) -> None:
    """Remove our socket file, unless another process has bound the path since."""
    try:
        if os.stat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass


def sweep_interval(session_ttl: float) -> float:
    """How often to look for expired sessions: often enough that none outlives its TTL by much."""
    return max(1.0, min(30.0, session_ttl / 4))


async def serve(
    app: TornadoApp,
    bound: BoundSockets,
    stop: asyncio.Event,
    *,
    ssl_context: ssl.SSLContext | None = None,
    behind_proxy: bool = False,
    on_ready: Callable[[], None] | None = None,
    drain: StopSignals | None = None,
) -> None:
    """Connect the app's backend, serve until `stop` is set, then disconnect every socket and
    close every connection. `on_ready` is called once the server accepts connections; if the
    backend does not answer, BackendUnreachable is raised first (and the port is let go).

    With `drain` (the command line's signals: drain.py), a stop asked for by SIGTERM first
    drains: /readyz says "draining" and new pages, logins and handshakes are refused at once
    (app.stopping), while the listener stays open; the sockets are ended in batches over
    the drain's seconds; then everything closes as in a stop at once. A second signal
    ends the drain there.

    With `ssl_context` it serves HTTPS. With `behind_proxy` it takes the client's address
    and scheme from the proxy's X-Forwarded-For / X-Real-Ip and X-Forwarded-Proto headers
    (Tornado's xheaders): only do that when a proxy you run is the only way in.

    The connection caps and timeouts are the app's settings (make_app, settings.py): a client
    address holds at most `max_connections_per_ip` connections, the request bodies being
    received hold at most `max_body_kib_in_flight` KiB at once, a client address a sixteenth
    of it (admission.py), and a request's headers and body get `header_timeout` and
    `body_timeout` seconds each.
    """
    config = app.config
    # The launcher's server counts a connection against its address only once it has shown
    # the launch secret (launch_admission.py): every local user shares 127.0.0.1.
    launch = {"launch_token": app.launch_token} if app.launch_token is not None else {}
    server = (LaunchAdmittingHTTPServer if launch else AdmittingHTTPServer)(
        app,
        max_connections_per_ip=config.max_connections_per_ip,
        max_body_bytes_in_flight=config.max_body_bytes_in_flight,
        body_cap=app.max_body_bytes,
        on_oversized_body=app.oversized_body,
        max_body_size=MAX_BODY_BYTES,
        chunk_size=READ_CHUNK_BYTES,
        idle_connection_timeout=config.header_timeout,
        body_timeout=config.body_timeout,
        ssl_options=ssl_context,
        xheaders=behind_proxy,
        **launch,
    )
    try:
        await app.backend.start()  # connects to Redis, or says why it cannot
        await app.sockets.start()  # hears the other processes before the first socket comes
    except BaseException:
        bound.close()
        raise
    server.add_sockets(bound.sockets)
    if on_ready is not None:
        on_ready()
    sweeper = PeriodicCallback(app.sweep_expired_sessions, sweep_interval(app.backend.store.ttl) * 1000)
    sweeper.start()
    log.debug("serving on %s", bound.url)
    try:
        await stop.wait()
        app.stopping = True  # /readyz says "draining"; no new page, login or handshake (app.py)
        if drain is not None and not drain.at_once.is_set():
            await drain_sockets(app.sockets, drain.drain_seconds, drain.at_once)
    finally:
        app.stopping = True
        sweeper.stop()
        server.stop()  # no new connections
        await app.sockets.shutdown()
        try:
            await asyncio.wait_for(server.close_all_connections(), SHUTDOWN_GRACE_SECONDS)
        except TimeoutError:
            log.warning("some connections did not close within %s s", SHUTDOWN_GRACE_SECONDS)
        bound.close()
        await app.backend.close()
        log.info("stopped")
