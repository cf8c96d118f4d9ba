"""The Tornado handler that carries Socket.IO: Origin policy, XSRF opt-out, TCP_NODELAY, no
compression, and frames engineio cannot parse kept away from it.

It wraps python-socketio's own Tornado handler and changes only what a browser-facing,
cookie-authenticated endpoint needs.
"""

from __future__ import annotations

import base64
import binascii
import logging
from asyncio import Future
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import socketio
from tornado.web import HTTPError, RequestHandler

log = logging.getLogger(__name__)


def origin_allowed(origin: str, host: str, allowed_origins: Iterable[str]) -> bool:
    """True for the server's own origin (same host and port) or one configured explicitly."""
    if origin in allowed_origins:
        return True
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.lower()


def engineio_can_decode(frame: str | bytes) -> bool:
    """Whether engineio can parse this WebSocket frame into a packet.

    engineio 4 parses a frame outside its error handling: an empty frame, a first character
    that is not a packet type, or bad base64 after `b` kills the socket's reader task, and
    the socket hangs until its ping timeout; a packet type above 6 makes it log a traceback.
    These are the frames that would do it.
    """
    if isinstance(frame, bytes):
        return True
    if not frame:
        return False
    if frame[0] == "b":
        try:
            base64.b64decode(frame[1:])
        except (binascii.Error, ValueError):
            return False
        return True
    try:
        return 0 <= int(frame[0]) <= 6  # open, close, ping, pong, message, upgrade, noop
    except ValueError:
        return False


def _retrieve_exception(future: Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def make_socketio_handler(sio: socketio.AsyncServer, allowed_origins: Iterable[str]) -> type[RequestHandler]:
    """A handler class for `/socket.io/` bound to this server and Origin policy."""
    engineio_handler: type[RequestHandler] = socketio.get_tornado_handler(sio)
    allowed = frozenset(allowed_origins)

    class SocketIOHandler(engineio_handler):  # type: ignore[misc, valid-type]
        def prepare(self) -> None:
            # Refuse a foreign Origin here, on both transports, before anything is upgraded:
            # engineio's handler accepts the WebSocket first and refuses late, so a client
            # would hang for tens of seconds.
            origin = self.request.headers.get("Origin")
            if origin is not None and not self.check_origin(origin):
                log.info("refused socket from %s: origin %r not allowed", self.request.remote_ip, origin)
                raise HTTPError(403)

        async def open(self, *args: Any, **kwargs: Any) -> None:
            # Without this, Nagle's algorithm holds the second small frame of a handshake
            # until the client's delayed ACK: about 40 ms on every connect. (Polling needs
            # nothing: Tornado's HTTP/1 connection flushes each response with Nagle off.)
            self.set_nodelay(True)
            await super().open(*args, **kwargs)

        def on_message(self, message: str | bytes) -> None:
            # Not a coroutine (engineio's is): Tornado then starts no task per frame, which
            # is cheaper, and none is left for asyncio.run() to cancel when the server stops
            # (Tornado would log that as an uncaught exception). The queue is unbounded.
            if not engineio_can_decode(message):
                log.info("ignored a frame from %s that is not an Engine.IO packet", self.request.remote_ip)
                return
            self.receive_queue.put_nowait(message)

        def write_message(self, message: str | bytes | dict[str, Any], binary: bool = False) -> Future[None]:
            # engineio's driver never awaits this future: when a client vanishes with
            # messages still buffered for it, asyncio would log each lost write as an
            # unretrieved exception. The disconnect itself is handled (and logged once).
            future = super().write_message(message, binary=binary)
            future.add_done_callback(_retrieve_exception)
            return future

        def check_origin(self, origin: str) -> bool:
            return origin_allowed(origin, self.request.host, allowed)

        def get_compression_options(self) -> None:
            """No permessage-deflate (engineio's handler turns it on): a zlib compressor per
            socket costs memory and CPU for messages of a few dozen bytes. socket.io 4
            servers have it off by default too."""
            return None

        def check_xsrf_cookie(self) -> None:
            """Skip Tornado's XSRF check: polling POSTs carry no form token; Origin protects us."""

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish("origin not allowed\n" if status_code == 403 else f"{self._reason}\n")

    return SocketIOHandler
