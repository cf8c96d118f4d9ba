"""Who gets in: connections per client address, request bodies per route, and accepting
connections when the process runs out of file descriptors.

Tornado's HTTPServer takes every connection it can accept and reads every body up to one
server-wide size. Three attacks followed from that (issue 14):
- a thousand connections each announcing a 1 MiB POST and sending part of it held 1.1 GiB;
- at the open-files limit, `tornado.netutil.add_accept_handler` let EMFILE escape from
  `accept()` while the listening socket stayed readable: the loop spun a core and logged a
  traceback per attempt (148 MB of log in 20 s), and nobody else could connect;
- nothing bounded how many connections one address holds.

`AdmittingHTTPServer` is Tornado's HTTPServer with its own accept loop for the listening
sockets (patches/accept.py: EMFILE/ENFILE pause accepting for `ACCEPT_PAUSE_SECONDS`, with
one log line per episode here, not per attempt), a cap on open connections per client
address (refused at `accept()` when the TCP peer is the client; answered `429` when a proxy
is in front and the client's address is in its headers), and a cap per route on request
bodies, checked against `Content-Length` before a byte of the body is read (`413`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tornado import httputil
from tornado.iostream import IOStream, SSLIOStream, StreamClosedError
from tornado.netutil import is_valid_ip

from .patches.accept import ACCEPT_PAUSE_SECONDS, AcceptLoopHTTPServer
from .refusals import RefusalReport

log = logging.getLogger(__name__)

# A browser opens about 6 connections per site, and a page here holds one WebSocket; an office
# behind one NAT address shares the cap, so it allows some dozens of people per address while
# one address can no longer take every file descriptor of the process.
DEFAULT_MAX_CONNECTIONS_PER_IP = 200
LINGER_SECONDS = 1.0  # after a refusal, read (and drop) what the client still sends, so it reads our answer


def client_key(ip: str) -> str:
    """What a per-address cap counts by: the IPv4 address, or the IPv6 /64 (one host
    usually has a whole /64, so counting single IPv6 addresses would cap nothing)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def proxied_client_ip(headers: httputil.HTTPHeaders, peer: str) -> str:
    """The client's address as Tornado's `xheaders` reads it (X-Real-Ip, else the last
    X-Forwarded-For entry), or the TCP peer when those are missing or not an address."""
    forwarded = headers.get("X-Forwarded-For", peer).split(",")[-1].strip()
    ip = headers.get("X-Real-Ip", forwarded)
    return ip if is_valid_ip(ip) else peer


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft open-files limit to its hard limit (systemd and most shells
    start services at 1024, which a few hundred clients reach); returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, error)
            return soft, soft
        return soft, target
    return soft, soft


class ConnectionCounter:
    """Open connections per client address, up to `limit` each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}

    def try_add(self, key: str) -> bool:
        count = self.open.get(key, 0)
        if count >= self.limit:
            return False
        self.open[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self.open.pop(key, 0) - 1
        if count > 0:
            self.open[key] = count


class _CountedStream:
    """An IOStream that gives its client's place back when its file descriptor closes
    (every way a stream closes, WebSocket or HTTP, ends in `close_fd`, once)."""

    counter: ConnectionCounter | None = None
    counted_as: str | None = None

    def count_as(self, counter: ConnectionCounter, key: str | None) -> None:
        self.counter = counter
        self.counted_as = key

    def uncount(self) -> None:
        if self.counter is not None and self.counted_as is not None:
            self.counter.release(self.counted_as)
        self.counted_as = None

    def close_fd(self) -> None:
        try:
            super().close_fd()  # type: ignore[misc]
        finally:
            self.uncount()


class CountedIOStream(_CountedStream, IOStream):
    pass


class CountedSSLIOStream(_CountedStream, SSLIOStream):
    pass


class AdmittingHTTPServer(AcceptLoopHTTPServer):
    """Tornado's HTTPServer with its own accept loop, a cap on connections per client
    address, and a body cap per route (see the module docstring)."""

    def initialize(  # type: ignore[override]
        self,
        *args: Any,
        max_connections_per_ip: int = DEFAULT_MAX_CONNECTIONS_PER_IP,
        body_cap: Callable[[str], int] | None = None,
        on_oversized_body: Callable[[str, str, httputil.HTTPHeaders], Awaitable[None] | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().initialize(*args, **kwargs)
        self.connections = ConnectionCounter(max_connections_per_ip)
        self.body_cap = body_cap
        self.on_oversized_body = on_oversized_body
        self.over_the_cap = RefusalReport(f"refused connections over --max-connections-per-ip ({max_connections_per_ip})", logger=log)
        self.too_large = RefusalReport("refused request bodies over their route's size", logger=log)
        self.paused_accepting = RefusalReport("paused accepting connections", logger=log)
        self._tasks: set[asyncio.Future[Any]] = set()

    def accepting_paused(self, error: OSError) -> None:
        self.paused_accepting.refused(
            f"out of file descriptors ({error.strerror}, limit "
            f"{resource.getrlimit(resource.RLIMIT_NOFILE)[0]}): accepting again every {ACCEPT_PAUSE_SECONDS:g} s")

    def admit(self, connection: socket.socket, address: Any) -> None:
        """Count a new connection against its address (unless a proxy is the peer: then each
        request is counted by the client address in its headers), and serve it."""
        key = None
        if not self.xheaders:
            key = client_key(address[0]) if isinstance(address, tuple) else "?"
            if not self.connections.try_add(key):
                connection.close()
                self.over_the_cap.refused(f"closed at once, the latest from {address[0]}")
                return
        try:
            stream = self.open_stream(connection, CountedIOStream, CountedSSLIOStream)
        except Exception:
            if key is not None:
                self.connections.release(key)
            raise
        if stream is None:
            if key is not None:
                self.connections.release(key)
            return
        stream.count_as(self.connections, key)
        self.handle_stream(stream, address)

    # --- each request --------------------------------------------------------------------

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _Gate(self, super().start_request(server_conn, request_conn), request_conn)

    def refuse(self, request_conn: Any, status: int, reason: str, text: str) -> None:
        """Answer without reading the body, close the connection once the client has had
        the answer (reading and dropping what it still sends, for at most LINGER_SECONDS)."""
        stream = request_conn.detach()  # Tornado's request loop ends here, reading nothing more
        body = text.encode()
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n")
        if status == 429:
            head += "Retry-After: 5\r\n"
        task = asyncio.ensure_future(_answer_and_close(stream, head.encode() + b"\r\n" + body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def keep(self, awaitable: Awaitable[None] | None) -> None:
        if awaitable is not None:
            task = asyncio.ensure_future(awaitable)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _answer_and_close(stream: IOStream, response: bytes) -> None:
    stream.read_chunk_size = 4096  # what is read from here on is dropped: hold little of it at a time
    try:
        await stream.write(response)
        deadline = time.monotonic() + LINGER_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.wait_for(stream.read_bytes(4096, partial=True), left)
    except (StreamClosedError, asyncio.TimeoutError, OSError):
        pass
    finally:
        stream.close()


class _Gate(httputil.HTTPMessageDelegate):
    """Sees each request's headers before the application: counts the request against the
    client behind a proxy, and refuses a body larger than its route takes."""

    def __init__(self, server: AdmittingHTTPServer, delegate: httputil.HTTPMessageDelegate, request_conn: Any) -> None:
        self.server = server
        self.delegate = delegate
        self.request_conn = request_conn

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> Awaitable[None] | None:
        server = self.server
        assert isinstance(start_line, httputil.RequestStartLine)
        stream = getattr(self.request_conn, "stream", None)
        peer = self.request_conn.context.remote_ip
        if server.xheaders and isinstance(stream, _CountedStream):
            # Behind a proxy, one of its connections carries many clients' requests in turn
            # (nginx keeps a pool): it counts for the client of its latest request.
            key = client_key(proxied_client_ip(headers, peer))
            if key != stream.counted_as:
                stream.uncount()
                if not server.connections.try_add(key):
                    server.over_the_cap.refused(f"answered 429, the latest for {key}")
                    server.refuse(self.request_conn, 429, "Too Many Requests", "too many connections from your address\n")
                    return None
                stream.count_as(server.connections, key)
        if server.body_cap is not None:
            path, _, query = start_line.path.partition("?")
            cap = server.body_cap(path)
            try:
                announced = int(headers.get("Content-Length", "0"))
            except ValueError:
                announced = 0  # Tornado answers 400 for that itself
            if announced > cap:
                server.too_large.refused(f"{announced} bytes for {path} (at most {cap}), the latest from {peer}")
                if server.on_oversized_body is not None:
                    server.keep(server.on_oversized_body(path, query, headers))
                server.refuse(self.request_conn, 413, "Payload Too Large", "request body too large\n")
                return None
            self.request_conn.set_max_body_size(cap)  # a chunked body is held to it too
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()
