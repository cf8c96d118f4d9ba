"""Connections to the desktop launcher: counted against their address only once they have
shown the launch secret (launch_token.py).

The server caps open connections per client address (admission.py), counted as they are
accepted, before a byte is read. On 127.0.0.1 every local user is the same address: another
user holding 200 idle connections made the server close the window's next connection at once
(a page reset; issue 21, item 7). Here a new connection waits, uncounted by address, among at
most `WAITING_CONNECTIONS` (every address together: 127/8 is 16 million of them); when that
room is full the oldest waiting connection is closed to make room, never the newcomer. The
first request that carries the secret (its cookie, or `?launch=SECRET` to exchange for it)
takes its connection out of the room and counts it against its address as before. A browser sends its request as soon as it connects, so the
window's connections leave the room at once, whatever another user keeps there.

A request without the secret (neither the cookie nor, in a GET, `?launch=SECRET` to exchange
for it) is answered 403 here, from its headers, and its connection closed: it reaches
neither the body caps (which may end an Engine.IO session) nor the application.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qs

from tornado import httputil
from tornado.iostream import IOStream

from .admission import AdmittingHTTPServer, CountedIOStream, CountedSSLIOStream, client_key
from .launch_token import LAUNCH_PARAMETER, LaunchToken
from .refusals import RefusalReport

log = logging.getLogger(__name__)

# Above the accept loop's batch (patches/accept.py, 128): a flood between a connection's
# accept and the reading of its request cannot push it out in one go.
WAITING_CONNECTIONS = 256
NOT_FROM_THE_LAUNCHER = ("Open this app from its window: this server answers only to the window its launcher opened "
                         "(or to the private address the launcher printed, with its ?launch= part).\n")


class WaitingRoom:
    """Connections that have not shown the secret yet, oldest first. It is what their
    streams are counted by until then (admission._CountedStream calls `release`)."""

    def __init__(self, limit: int = WAITING_CONNECTIONS) -> None:
        self.limit = limit
        self.streams: OrderedDict[IOStream, None] = OrderedDict()

    def enter(self, stream: IOStream) -> IOStream | None:
        """Seat `stream`; returns the oldest one if it must go to make room."""
        self.streams[stream] = None
        if len(self.streams) > self.limit:
            oldest, _ = self.streams.popitem(last=False)
            return oldest
        return None

    def release(self, stream: IOStream) -> None:
        self.streams.pop(stream, None)


class LaunchAdmittingHTTPServer(AdmittingHTTPServer):
    """AdmittingHTTPServer for the launcher: see the module docstring."""

    def initialize(self, *args: Any, launch_token: LaunchToken, **kwargs: Any) -> None:  # type: ignore[override]  # one more argument, required
        super().initialize(*args, **kwargs)
        self.launch_token = launch_token
        self.waiting = WaitingRoom()
        self.without_secret = RefusalReport("refused requests without the launcher's secret (another local program?)", logger=log)
        self.made_room = RefusalReport(f"closed connections that showed no launch secret, to make room ({WAITING_CONNECTIONS} may wait)", logger=log)

    def admit(self, connection: Any, address: Any) -> None:
        stream = self.open_stream(connection, CountedIOStream, CountedSSLIOStream)
        if stream is None:
            return
        stream.count_as(self.waiting, stream)
        oldest = self.waiting.enter(stream)
        if oldest is not None:
            self.made_room.refused(f"the latest from {address[0] if isinstance(address, tuple) else '?'}")
            oldest.close()
        self.handle_stream(stream, address)

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _ShowsTheSecret(self, super().start_request(server_conn, request_conn), request_conn)


class _ShowsTheSecret(httputil.HTTPMessageDelegate):
    """Takes a connection out of the waiting room once one of its requests carries the
    secret, and counts it against its address from then on (over the cap: 429)."""

    def __init__(self, server: LaunchAdmittingHTTPServer, delegate: httputil.HTTPMessageDelegate, request_conn: Any) -> None:
        self.server = server
        self.delegate = delegate
        self.request_conn = request_conn

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        server = self.server
        carried = server.launch_token.carried_in(headers) or self.hands_over_the_secret(start_line)
        if not carried:
            server.without_secret.refused(f"{start_line.method} {start_line.path.partition('?')[0]}, "
                                          f"the latest from {self.request_conn.context.remote_ip}")
            server.refuse(self.request_conn, 403, "Forbidden", NOT_FROM_THE_LAUNCHER)
            return None
        stream = getattr(self.request_conn, "stream", None)
        if stream is not None and stream.counted_as is stream and carried:
            stream.uncount()
            key = client_key(self.request_conn.context.remote_ip)
            if not server.connections.try_add(key):
                server.over_the_cap.refused(f"answered 429, the latest from {key}")
                server.refuse(self.request_conn, 429, "Too Many Requests", "too many connections from your address\n")
                return None
            stream.count_as(server.connections, key)
        return self.delegate.headers_received(start_line, headers)

    def hands_over_the_secret(self, start_line: Any) -> bool:
        """A GET of the address the launcher opens, `?launch=SECRET` (the app exchanges it)."""
        if start_line.method not in ("GET", "HEAD"):
            return False
        given = parse_qs(start_line.path.partition("?")[2]).get(LAUNCH_PARAMETER, [])
        return len(given) == 1 and self.server.launch_token.matches(given[0])

    def data_received(self, chunk: bytes) -> Any:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()
