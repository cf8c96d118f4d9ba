"""Who gets in: connections per client address, request bodies per route and in flight,
and accepting connections when the process runs out of file descriptors.

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

The caps per route still let many connections each hold a body up to its route's size:
1,000 connections from 5 addresses each sending 64,999 bytes of a 65,000-byte polling POST
and stalling took RSS from 53 to 144 MiB (issue 21, item 13). So the bodies being received
are bounded for the whole server too (`BodyBudget`): each body reserves its size from its
headers, and past the server's budget, or past one client's share of it, a new body is
refused at once (`503`, `429`), before a byte of it is read. When a wave of bodies is
over, the freed heap is given back to the OS (heap.py). A body must also arrive within
`body_timeout`: one that does not has its connection closed, said in one line per 10 s
(Tornado's own timeout logs a line per connection).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from tornado import httputil
from tornado.iostream import IOStream, SSLIOStream, StreamClosedError
from tornado.netutil import is_valid_ip

from .health import PROBE_METHODS, PROBE_PATHS
from .heap import give_back
from .memo import string_memo
from .patches.accept import ACCEPT_PAUSE_SECONDS, AcceptLoopHTTPServer
from .refusals import RefusalReport
from .settings import PRODUCTION

log = logging.getLogger(__name__)

LINGER_SECONDS = 1.0  # after a refusal, read (and drop) what the client still sends, so it reads our answer
# One client address may hold this fraction of the request bodies being received at once
# (settings.max_body_kib_in_flight; 1 MiB by default: 16 full packets, or hundreds of
# ordinary POSTs from an office behind one NAT address), so that one address alone cannot
# use up the budget and lock everyone else's POSTs out.
CLIENT_SHARE_OF_BODIES = 1 / 16
# A wave of bodies this large, once mostly over, is worth handing its memory back for;
# the heap is trimmed a little after it ends, when refused connections have lingered out,
# and at most once per TRIM_EVERY_SECONDS: a trim of a large fragmented heap holds the loop
# for tens of ms (96 ms for 700 MiB of small objects measured), which waves of bodies from a
# few addresses must not be able to repeat at will.
TRIM_AFTER_BYTES = 4 * 1024 * 1024
TRIM_DELAY_SECONDS = LINGER_SECONDS + 1.0
TRIM_EVERY_SECONDS = 10.0
# client_key's memo (memo.py): parsing an address with `ipaddress` cost ~4 us, asked three
# times per connect (the connection cap, the Engine.IO session cap, twice); a hit ~0.2 us.
# At most this many addresses of at most CLIENT_KEY_LONGEST characters are kept (about
# 1 MiB when full): a flood of new addresses evicts the old ones, it does not grow it.
CLIENT_KEYS_KEPT = 4096
CLIENT_KEY_LONGEST = 64  # an IPv6 address is at most 45 characters; a scope id may add some


@string_memo(maxsize=CLIENT_KEYS_KEPT, longest=CLIENT_KEY_LONGEST)
def client_key(ip: str) -> str:
    """What every per-address cap and rate counts by (the connection caps here, Engine.IO
    sessions per address, the login and connect rates): the IPv4 address (an IPv4-mapped
    IPv6 address is its IPv4 address), or the IPv6 /64 (one host usually has a whole /64,
    so counting single IPv6 addresses would cap nothing). Remembered (CLIENT_KEYS_KEPT)."""
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


class BodyBudget:
    """Request-body bytes being received: at most `total` for the whole server and `share`
    per client. Each body reserves its size from its headers (its `Content-Length`, or its
    route's cap when chunked) and gives it back once it has arrived or its connection closed.
    `high_water` is the most reserved at once since the caller last reset it."""

    def __init__(self, total: int, share: int) -> None:
        self.total = total
        self.share = share
        self.in_flight = 0
        self.by_client: dict[str, int] = {}
        self.high_water = 0

    def reserve(self, key: str, size: int) -> Literal["reserved", "over the client's share", "over the server's budget"]:
        held = self.by_client.get(key, 0)
        if held + size > self.share:
            return "over the client's share"
        if self.in_flight + size > self.total:
            return "over the server's budget"
        self.by_client[key] = held + size
        self.in_flight += size
        self.high_water = max(self.high_water, self.in_flight)
        return "reserved"

    def release(self, key: str, size: int) -> None:
        self.in_flight -= size
        held = self.by_client.pop(key, 0) - size
        if held > 0:
            self.by_client[key] = held


class CountedBy(Protocol):
    """What a stream is counted by: a ConnectionCounter by client address, or, until the
    launcher's secret is shown, launch_admission's WaitingRoom by the stream itself."""

    def release(self, key: Any, /) -> None: ...


class _CountedStream:
    """An IOStream that gives its client's place back when its file descriptor closes
    (every way a stream closes, WebSocket or HTTP, ends in `close_fd`, once)."""

    counter: CountedBy | None = None
    counted_as: object = None

    def count_as(self, counter: CountedBy, key: object) -> None:
        self.counter = counter
        self.counted_as = key

    def uncount(self) -> None:
        if self.counter is not None and self.counted_as is not None:
            self.counter.release(self.counted_as)
        self.counted_as = None

    def close_fd(self) -> None:
        try:
            super().close_fd()  # type: ignore[misc]  # a mixin: IOStream's close_fd follows it in the MRO
        finally:
            self.uncount()


class CountedIOStream(_CountedStream, IOStream):
    pass


class CountedSSLIOStream(_CountedStream, SSLIOStream):
    pass


class AdmittingHTTPServer(AcceptLoopHTTPServer):
    """Tornado's HTTPServer with its own accept loop, a cap on connections per client
    address, and a body cap per route (see the module docstring)."""

    def initialize(
        self,
        *args: Any,
        max_connections_per_ip: int = PRODUCTION.max_connections_per_ip,
        body_cap: Callable[[str], int] | None = None,
        on_oversized_body: Callable[[str, str, httputil.HTTPHeaders], Awaitable[None] | None] | None = None,
        max_body_bytes_in_flight: int = PRODUCTION.max_body_bytes_in_flight,
        body_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        # The body deadline is kept here (_Gate), not given to Tornado, which would log a
        # line for every connection that misses it.
        kwargs["body_timeout"] = None
        super().initialize(*args, **kwargs)
        self.connections = ConnectionCounter(max_connections_per_ip)
        self.body_cap = body_cap
        self.on_oversized_body = on_oversized_body
        largest_body = int(kwargs.get("max_body_size") or 0)
        self.bodies = BodyBudget(max_body_bytes_in_flight, max(largest_body, int(max_body_bytes_in_flight * CLIENT_SHARE_OF_BODIES)))
        self.body_deadline = body_timeout
        self.over_the_cap = RefusalReport(f"refused connections over --max-connections-per-ip ({max_connections_per_ip})", logger=log)
        self.too_large = RefusalReport("refused request bodies over their route's size", logger=log)
        budget = f"--max-body-kib-in-flight ({max_body_bytes_in_flight // 1024} KiB)"
        self.over_the_share = RefusalReport(f"refused request bodies over a client's share of {budget}", logger=log)
        self.over_the_budget = RefusalReport(f"refused request bodies over {budget}", logger=log)
        self.too_slow = RefusalReport(f"closed connections whose request body did not arrive within {body_timeout:g} s"
                                      if body_timeout else "closed slow request bodies", logger=log)
        self.paused_accepting = RefusalReport("paused accepting connections", logger=log)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._trim: asyncio.TimerHandle | None = None
        self._trimmed_at = float("-inf")

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
        if status in (429, 503):
            head += "Retry-After: 5\r\n"
        task = asyncio.ensure_future(_answer_and_close(stream, head.encode() + b"\r\n" + body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def body_done(self, key: str, size: int) -> None:
        """A reserved body has arrived or its connection closed. Once a large wave of bodies
        is mostly over, hand the heap it used back to the OS (heap.py), a little later."""
        self.bodies.release(key, size)
        wave = self.bodies.high_water
        if wave >= TRIM_AFTER_BYTES and self.bodies.in_flight <= wave // 8 and self._trim is None:
            loop = asyncio.get_running_loop()
            delay = max(TRIM_DELAY_SECONDS, self._trimmed_at + TRIM_EVERY_SECONDS - loop.time())
            self._trim = loop.call_later(delay, self._trim_heap)

    def stop(self) -> None:
        """Stop accepting; a heap trim still waiting is not left to run after the server."""
        if self._trim is not None:
            self._trim.cancel()
            self._trim = None
        super().stop()

    def _trim_heap(self) -> None:
        self._trim = None
        self._trimmed_at = asyncio.get_running_loop().time()
        self.bodies.high_water = self.bodies.in_flight
        give_back()

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
    except (TimeoutError, StreamClosedError, OSError):
        pass
    finally:
        stream.close()


def _is_probe(start_line: httputil.RequestStartLine) -> bool:
    """A GET or HEAD of /healthz or /readyz (health.is_probe, from the request line)."""
    return start_line.method in PROBE_METHODS and start_line.path.partition("?")[0] in PROBE_PATHS


class _Gate(httputil.HTTPMessageDelegate):
    """Sees each request's headers before the application: counts the request against the
    client behind a proxy, refuses a body larger than its route takes or than the server's
    budget has room for, and closes the connection if the body does not arrive in time."""

    def __init__(self, server: AdmittingHTTPServer, delegate: httputil.HTTPMessageDelegate, request_conn: Any) -> None:
        self.server = server
        self.delegate = delegate
        self.request_conn = request_conn
        self.reserved: tuple[str, int] | None = None  # (client key, bytes) of the body being received
        self.deadline: asyncio.TimerHandle | None = None

    def headers_received(
        self, start_line: httputil.RequestStartLine | httputil.ResponseStartLine, headers: httputil.HTTPHeaders
    ) -> Awaitable[None] | None:
        server = self.server
        assert isinstance(start_line, httputil.RequestStartLine)
        stream = getattr(self.request_conn, "stream", None)
        peer = self.request_conn.context.remote_ip
        client = proxied_client_ip(headers, peer) if server.xheaders else peer
        key: str | None = None  # client_key(client), parsed only where needed: most requests have no body
        if server.xheaders and isinstance(stream, _CountedStream) and not _is_probe(start_line):
            # Behind a proxy, one of its connections carries many clients' requests in turn
            # (nginx keeps a pool): it counts for the client of its latest request. A probe
            # (health.py) is not counted for anyone: the address it names (the balancer's,
            # or a person's on the proxy's machine) may be at its cap, and the process is
            # not dead for that. The proxy bounds its own connections.
            key = client_key(client)
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
            chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
            size = cap if chunked else max(announced, 0)
            if size and not self._reserve(key or client_key(client), client, size):
                return None
        return self.delegate.headers_received(start_line, headers)

    def _reserve(self, key: str, client: str, size: int) -> bool:
        """Reserve the body's bytes (some) in the server's budget, or refuse it from its headers."""
        server = self.server
        answer = server.bodies.reserve(key, size)
        if answer == "over the client's share":
            server.over_the_share.refused(f"answered 429, the latest from {client}")
            server.refuse(self.request_conn, 429, "Too Many Requests", "too many request bodies from your address at once\n")
            return False
        if answer == "over the server's budget":
            server.over_the_budget.refused(f"answered 503, the latest from {client}")
            server.refuse(self.request_conn, 503, "Service Unavailable", "the server is busy receiving other requests: try again\n")
            return False
        self.reserved = (key, size)
        if server.body_deadline is not None:
            self.deadline = asyncio.get_running_loop().call_later(server.body_deadline, self._too_slow, client)
        return True

    def _too_slow(self, client: str) -> None:
        self.deadline = None
        self.server.too_slow.refused(f"the latest from {client}")
        stream = getattr(self.request_conn, "stream", None)
        if stream is not None:
            stream.close()  # the body's read fails; Tornado then calls on_connection_close

    def _received(self) -> None:
        """The body has arrived, or will not: give its place in the budget back, once."""
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if self.reserved is not None:
            key, size = self.reserved
            self.reserved = None
            self.server.body_done(key, size)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self._received()
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self._received()
        self.delegate.on_connection_close()
