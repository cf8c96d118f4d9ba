"""The Tornado handler that carries Socket.IO, hardened for a browser-facing,
cookie-authenticated endpoint that anyone can reach.

It wraps python-socketio's own Tornado handler and changes only this:
- the Origin policy, on both transports, before anything is upgraded;
- no XSRF check (polling POSTs carry no form token; the Origin policy protects them);
- TCP_NODELAY and no permessage-deflate on WebSockets;
- bounded memory per connection, whatever the client sends or fails to read:
  a WebSocket message larger than a packet is refused from its frame header, at most
  `INBOUND_FRAMES` frames wait for engineio (then Tornado stops reading that connection),
  at most `max_unsent_bytes` wait to be sent (then the socket is dropped), and an oversized
  polling POST is answered at once and its Engine.IO session ended;
- frames engineio cannot parse kept away from it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from asyncio import Future
from collections.abc import Callable, Iterable
from typing import Any

import socketio
from tornado.iostream import StreamBufferFullError, StreamClosedError
from tornado.web import HTTPError, RequestHandler
from tornado.websocket import WebSocketClosedError

from .cookies import read_session_id
from .origins import origin_allowed
from .sockets import ProtocolGuardedServer

log = logging.getLogger(__name__)

# What browsers send in Sec-Fetch-Mode / Sec-Fetch-Dest for a resource load that is not the
# Socket.IO client's fetch or WebSocket (a <script>, <img>, <iframe>, a navigation).
NOT_A_SOCKET_MODES = frozenset({"no-cors", "navigate", "nested-navigate"})
SOCKET_DESTINATIONS = frozenset({"empty", "websocket"})
INBOUND_FRAMES = 16  # frames queued for engineio per connection before Tornado stops reading
DEFAULT_MAX_UNSENT_BYTES = 256 * 1024  # unsent data per socket before it is dropped as a slow reader


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


def make_socketio_handler(
    sio: ProtocolGuardedServer,
    allowed_origins: Iterable[str],
    max_unsent_bytes: int = DEFAULT_MAX_UNSENT_BYTES,
) -> type[RequestHandler]:
    """A handler class for `/socket.io/` bound to this server, Origin policy and limits."""
    engineio_handler: type[RequestHandler] = socketio.get_tornado_handler(sio)
    allowed = frozenset(allowed_origins)
    max_packet_bytes: int = sio.eio.max_http_buffer_size

    class SocketIOHandler(engineio_handler):  # type: ignore[misc, valid-type]
        # Set when this request's refusal has been logged already, so the access log adds
        # no second line for it.
        refusal_logged = False
        _room_for_frames: Future[None] | None = None
        _ignored_frames = 0

        def set_default_headers(self) -> None:
            super().set_default_headers()
            # No answer of this endpoint is ever a script, a style sheet or an image.
            self.set_header("X-Content-Type-Options", "nosniff")

        def prepare(self) -> None:
            refusal = self._refusal()
            if refusal is not None:
                status, reason, detail = refusal
                log.info("refused socket from %s: %s", self.request.remote_ip, detail)
                self.refusal_logged = True
                raise HTTPError(status, reason=reason)

        def _refusal(self) -> tuple[int, str, str] | None:
            """(status, reason, what to log) when this request may not reach engineio: on both
            transports before anything is upgraded (engineio's handler accepts a WebSocket
            first and refuses late, so a client would hang for tens of seconds)."""
            headers = self.request.headers
            origin = headers.get("Origin")
            if origin is not None and not self.check_origin(origin):
                return 403, "origin not allowed", f"origin {origin!r} not allowed"
            # A <script>, <img> or <iframe> on any page may load this URL with the person's
            # cookie (a same-site page even with SameSite=Lax) and without an Origin header.
            # Browsers mark such loads; the Socket.IO client only ever fetches or upgrades.
            if (headers.get("Sec-Fetch-Mode") in NOT_A_SOCKET_MODES
                    or headers.get("Sec-Fetch-Dest", "empty") not in SOCKET_DESTINATIONS):
                return 403, "not a socket request", (f"not a socket request (Sec-Fetch-Dest {headers.get('Sec-Fetch-Dest')!r}, "
                                                     f"Sec-Fetch-Mode {headers.get('Sec-Fetch-Mode')!r})")
            if "j" in self.request.query_arguments:
                # JSONP wraps packets in a script that any page can include; never served.
                return 400, "JSONP is not served", "JSONP polling is not served"
            eio_sid = self.get_query_argument("sid", None)
            if eio_sid is not None and not sio.same_session(eio_sid, read_session_id(self)):
                # An Engine.IO session belongs to the session cookie it was opened with: a
                # stolen sid alone (a leaked URL, a script that read it) opens nothing.
                return 403, "connection of another session", "the connection belongs to another session"
            return None

        async def open(self, *args: Any, **kwargs: Any) -> None:
            # Without this, Nagle's algorithm holds the second small frame of a handshake
            # until the client's delayed ACK: about 40 ms on every connect. (Polling needs
            # nothing: Tornado's HTTP/1 connection flushes each response with Nagle off.)
            self.set_nodelay(True)
            # Tornado's write buffer is unbounded: a client that never reads would make it
            # hold every broadcast for good. Past this, write_message refuses (see there).
            self.ws_connection.stream.max_write_buffer_size = max_unsent_bytes
            await super().open(*args, **kwargs)

        async def post(self, *args: Any, **kwargs: Any) -> None:
            if len(self.request.body) > max_packet_bytes:
                await self._refuse_oversized_post()
                return
            await super().post(*args, **kwargs)

        async def _refuse_oversized_post(self) -> None:
            """engineio answers an over-long payload by closing the socket and then waiting
            for a GET to collect the close packet, so the POST would hang holding its body.
            Answer now and end the Engine.IO session (a pending GET gets the close)."""
            log.info("refused a polling packet of %d bytes from %s (at most %d)",
                     len(self.request.body), self.request.remote_ip, max_packet_bytes)
            self.refusal_logged = True
            sid = self.get_query_argument("sid", None)
            if sid:
                await sio.end_engineio_session(sid, sio.eio.reason.TRANSPORT_ERROR)
            self.set_status(413)
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish("packet too large\n")

        @property
        def max_message_size(self) -> int:
            """A WebSocket message can be no larger than a packet: Tornado then refuses a
            bigger one from its frame header, before reading (and holding) its body."""
            return max_packet_bytes

        def on_message(self, message: str | bytes) -> Future[None] | None:
            # Not a coroutine (engineio's is): Tornado then starts no task per frame, which
            # is cheaper, and none is left for asyncio.run() to cancel when the server stops
            # (Tornado would log that as an uncaught exception).
            if not engineio_can_decode(message):
                self._ignored_frames += 1
                if self._ignored_frames == 1:  # one line per connection, not one per frame
                    log.info("ignored a frame from %s that is not an Engine.IO packet", self.request.remote_ip)
                return None
            self.receive_queue.put_nowait(message)
            if self.receive_queue.qsize() < INBOUND_FRAMES:
                return None
            # Backpressure: Tornado reads no further frame of this connection until the
            # returned future is done, that is until engineio has taken a frame.
            self._room_for_frames = asyncio.get_running_loop().create_future()
            return self._room_for_frames

        async def get_next_message(self) -> str | bytes | None:
            message = await self.receive_queue.get()
            self._make_room_for_frames()
            return message

        def on_close(self) -> None:
            super().on_close()
            self._make_room_for_frames()

        def _make_room_for_frames(self) -> None:
            # Assign only when there is a waiter: a new attribute on a handler costs every
            # socket ~1.5 KiB (its __dict__ leaves the shared-key layout).
            room = self._room_for_frames
            if room is not None:
                self._room_for_frames = None
                if not room.done():
                    room.set_result(None)

        def write_message(self, message: str | bytes | dict[str, Any], binary: bool = False) -> Future[None]:
            try:
                future = super().write_message(message, binary=binary)
            except StreamBufferFullError:
                future = self._write_past_the_cap(lambda: super(SocketIOHandler, self).write_message(message, binary=binary))
            # engineio's driver never awaits this future: when a client vanishes with
            # messages still buffered for it, asyncio would log each lost write as an
            # unretrieved exception. The disconnect itself is handled (and logged once).
            future.add_done_callback(_retrieve_exception)
            return future

        def write_frame(self, frame: bytes) -> None:
            """Write a WebSocket frame built by frames.py (engine.py's direct path): one frame
            shared by every recipient of a broadcast, and no task per write (Tornado's
            write_message starts one). Raises WebSocketClosedError like write_message."""
            connection = self.ws_connection
            if connection is None or connection.is_closing():
                raise WebSocketClosedError()
            stream = connection.stream
            try:
                stream.write(frame)  # its future retrieves its own exception
            except StreamBufferFullError:
                self._write_past_the_cap(lambda: stream.write(frame))
            except StreamClosedError:
                raise WebSocketClosedError() from None

        def _write_past_the_cap(self, write: Callable[[], Future[None]]) -> Future[None]:
            """Drop a socket whose client leaves more than the cap unread; but let one message
            larger than the cap through to a socket that has nothing else waiting."""
            stream = self.ws_connection.stream
            if stream.writing():
                self._drop_slow_reader()
                raise WebSocketClosedError()  # engineio's writer then stops
            stream.max_write_buffer_size = None
            try:
                return write()
            finally:
                stream.max_write_buffer_size = max_unsent_bytes

        def _drop_slow_reader(self) -> None:
            if self.ws_connection is None or self.ws_connection.stream.closed():
                return
            log.info("dropped the socket of %s: more than %d KiB unsent (the client does not read)",
                     self.request.remote_ip, max_unsent_bytes // 1024)
            # Close the stream itself: a close frame would only queue behind the rest.
            self.ws_connection.stream.close()

        def check_origin(self, origin: str) -> bool:
            return origin_allowed(origin, self.request.protocol, self.request.host, allowed)

        def get_compression_options(self) -> None:
            """No permessage-deflate (engineio's handler turns it on): a zlib compressor per
            socket costs memory and CPU for messages of a few dozen bytes. socket.io 4
            servers have it off by default too."""
            return None

        def check_xsrf_cookie(self) -> None:
            """Skip Tornado's XSRF check: polling POSTs carry no form token; Origin protects us."""

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish(f"{self._reason}\n")

    return SocketIOHandler
