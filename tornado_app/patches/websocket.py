"""engineio's Tornado handler, with what one connection can make the server hold bounded.

engineio's handler (python-engineio's async_drivers/tornado.py, through
`socketio.get_tornado_handler`) queues every WebSocket frame in an unbounded `receive_queue`
from a coroutine `on_message` (a task per frame), hands them on in `get_next_message`, and
writes through Tornado's `write_message`, whose buffer is unbounded. Here, reaching into
engineio's handler and Tornado's WebSocket connection (`ws_connection`, its stream's
`max_write_buffer_size`):
- a WebSocket message larger than a packet is refused from its frame header;
- at most `INBOUND_FRAMES` frames wait for engineio, then Tornado stops reading;
- at most `max_unsent_bytes` wait to be sent, then the socket is dropped as a slow reader;
- frames engineio cannot parse are kept away from it (and polling payloads likewise:
  `polling_payload_problem`, used by transport.py);
- frames built once by frames.py are written without a task per write (`write_frame`), and
  straight to the connection's socket when nothing of it waits in Tornado's buffer (the
  stream's `socket` and `writing()`);
- no permessage-deflate, and no Nagle delay;
- a WebSocket engineio would not serve is refused before it is upgraded, and each is closed
  once engineio is done with it (upgrades.py);
- a client's frames are read from what the stream holds, a chunk at a time
  (`ChunkReadingProtocol`), not with three stream reads per frame;
- a frame for engineio's reader that is waiting for one is handed to it, not queued (the
  queue holds the frames that come while it is busy). A reader cancelled in the instant a
  frame was handed to it loses that frame, but it is only ever cancelled as its connection
  ends (engineio's watchdog, a shutdown), and the frames queued behind it go with that.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from asyncio import Future
from collections.abc import Callable
from typing import Any

import socketio
from engineio.payload import Payload
from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError
from tornado.web import RequestHandler
from tornado.websocket import (
    WebSocketClosedError,
    WebSocketProtocol,
    WebSocketProtocol13,
    _WebSocketParams,
)

from .queues import ShortQueue
from .upgrades import refuse_websocket, serve_websocket, websocket_refusal

log = logging.getLogger(__name__)

INBOUND_FRAMES = 16  # frames queued for engineio per connection before Tornado stops reading
PLAIN_WRITE = IOStream.write_to_fd  # a stream with this one sends its bytes to its socket as they are
READ_AHEAD_BYTES = 64 * 1024  # at most this much more than a frame needs is taken from the stream at once


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


POLLING_SEPARATOR = "\x1e"  # between the packets of one polling payload
# What a client sends by polling POST: close `1`, pong `3` (both without data) and messages
# `4` (a Socket.IO packet, which starts with its type's digit). Open, ping, upgrade and noop
# only ever come from the server, or over a WebSocket.
CLIENT_SIGNALS = frozenset({"1", "3"})
MESSAGE = "4"


def polling_payload_problem(body: bytes) -> str | None:
    """Why this polling POST body must not reach engineio (None: it may).

    engineio decodes a payload inside its POST handler: what it cannot parse (not UTF-8,
    an unknown type, more than `Payload.max_decode_packets`, JSON nested a thousand deep)
    is logged as a traceback and answered 200, and a type a client never sends (open, ping,
    noop) makes it disconnect the session in a way that waits for a GET that may never
    come, holding the POST, its request and the socket for good. A payload a real client
    sends passes.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    if not text:
        return None  # engineio takes it as no packets
    if text.startswith("d="):
        return "a JSONP payload"  # engineio would parse it as a form; JSONP is not served
    packets = text.split(POLLING_SEPARATOR)
    if len(packets) > Payload.max_decode_packets:
        return f"more than {Payload.max_decode_packets} packets"
    for packet in packets:
        if packet in CLIENT_SIGNALS:
            continue
        if packet[:1] == MESSAGE and (len(packet) == 1 or packet[1].isnumeric()):
            continue  # engineio JSON-decodes the data of any other message
        if packet[:1] == "b" and engineio_can_decode(packet):
            continue  # a binary message, base64 (this app ignores it; the protocol allows it)
        return f"a packet no client sends (type {packet[:1]!r})"
    return None


class ChunkReadingProtocol(WebSocketProtocol13):
    """Tornado's WebSocket protocol, reading a client's frames from a chunk of the stream.

    Tornado parses a frame with three or four `_read_bytes` calls (header, mask, payload),
    each a stream read with its future, and each leaving the rest of the frame in the
    stream's buffer, so that the stream stops listening for reads at the first one and
    starts again at the next frame (two epoll_ctl calls and Tornado's update_handler per
    frame). Here `_read_bytes` takes whatever the stream holds (up to READ_AHEAD_BYTES past
    what it needs) in one read, and hands the frame's pieces out of it: one stream read per
    chunk the client sent, and the stream keeps listening. Tornado's own parsing (lengths,
    masks, control frames, fragments, `max_message_size` from the header) is unchanged.

    What this holds is bounded: a chunk of at most READ_AHEAD_BYTES plus the frame being
    read (itself at most `max_message_size`); nothing more is read while Tornado waits for
    room (INBOUND_FRAMES), as before. An idle connection holds nothing (b"").
    """

    # In slots, not in the instance's dict: Tornado's protocol has 29 attributes already, and
    # two more would make its dict leave the shared-key layout (+1.3 KiB per socket).
    __slots__ = ("_unread", "_unread_at")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unread = b""  # what was taken from the stream and not yet handed out, from _unread_at
        self._unread_at = 0

    async def _read_bytes(self, n: int) -> bytes:
        unread, start = self._unread, self._unread_at
        end, size = start + n, len(unread)
        if end > size:
            have = size - start
            pieces = [unread[start:]] if have else []
            while have < n:
                piece = await self.stream.read_bytes(max(n - have, READ_AHEAD_BYTES), partial=True)
                pieces.append(piece)
                have += len(piece)
            unread = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            start, end, size = 0, n, have
        self._wire_bytes_in += n
        if end < size:
            self._unread, self._unread_at = unread, end
            return unread[start:end]
        self._unread, self._unread_at = b"", 0
        return unread if start == 0 else unread[start:]


def _retrieve_exception(future: Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def bounded_engineio_handler(sio: socketio.AsyncServer, max_unsent_bytes: int) -> type[RequestHandler]:
    """engineio's Tornado handler class for `sio`, bounded as the module docstring says."""
    engineio_handler: type[RequestHandler] = socketio.get_tornado_handler(sio)
    max_packet_bytes: int = sio.eio.max_http_buffer_size

    class BoundedEngineIOHandler(engineio_handler):  # type: ignore[misc, valid-type]  # a class python-socketio makes at run time
        _room_for_frames: Future[None] | None = None
        _ignored_frames = 0
        # engineio's reader, waiting in get_next_message for a frame: in a slot, as the
        # handler's dict must not grow (see _make_room_for_frames); the handler keeps its
        # dict (engineio's class has one) for every other attribute.
        __slots__ = ("_reader",)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._reader: Future[str | bytes | None] | None = None
            # engineio's is an asyncio.Queue: four empty deques, ~3 KiB for the socket's life.
            # This one is kept short (INBOUND_FRAMES), so a list does (queues.py).
            self.receive_queue = ShortQueue()  # type: ignore[misc]  # in the instance's dict (mypy sees only __slots__)

        async def open(self, *args: Any, **kwargs: Any) -> None:
            # Without this, Nagle's algorithm holds the second small frame of a handshake
            # until the client's delayed ACK: about 40 ms on every connect. (Polling needs
            # nothing: Tornado's HTTP/1 connection flushes each response with Nagle off.)
            self.set_nodelay(True)
            # Tornado's write buffer is unbounded: a client that never reads would make it
            # hold every broadcast for good. Past this, write_message refuses (see there).
            self.ws_connection.stream.max_write_buffer_size = max_unsent_bytes
            serve_websocket(sio.eio, self)  # the driver's open(), and a close when engineio is done

        async def get(self, *args: Any, **kwargs: Any) -> None:
            if self.request.headers.get("Upgrade", "").lower() == "websocket":  # as the driver tells
                refusal = websocket_refusal(sio.eio, self.request.query)
                if refusal is not None:
                    self.refuse_websocket(refusal)
                    return
            await super().get(*args, **kwargs)

        def refuse_websocket(self, reason: str) -> None:
            """Answer a WebSocket request engineio would not serve: 400 and its reason, and
            its connection closed, where the driver would accept it and then hold it open,
            silent (upgrades.py)."""
            refuse_websocket(self, reason)

        def get_websocket_protocol(self) -> WebSocketProtocol | None:
            # Tornado's, making ours: building Tornado's and then ours from its parameters
            # left ~0.6 KiB more per idle socket (bench rss phase).
            if self.request.headers.get("Sec-WebSocket-Version") != "13":
                return super().get_websocket_protocol()
            params = _WebSocketParams(ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
                                      max_message_size=self.max_message_size, compression_options=self.get_compression_options())
            return ChunkReadingProtocol(self, False, params)

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
                self._ignored_frames += 1  # type: ignore[misc]  # in the instance's dict (mypy sees only __slots__)
                if self._ignored_frames == 1:  # one line per connection, not one per frame
                    log.info("ignored a frame from %s that is not an Engine.IO packet", self.request.remote_ip)
                return None
            if self._hand_to_reader(message):
                return None
            self.receive_queue.put_nowait(message)
            if self.receive_queue.qsize() < INBOUND_FRAMES:
                return None
            # Backpressure: Tornado reads no further frame of this connection until the
            # returned future is done, that is until engineio has taken a frame.
            self._room_for_frames = asyncio.get_running_loop().create_future()  # type: ignore[misc]  # as above
            return self._room_for_frames

        async def get_next_message(self) -> str | bytes | None:
            """The next frame for engineio's reader: from the queue, or else handed to it as
            it comes (`_hand_to_reader`), which spares asyncio.Queue's put and get (a dozen
            calls per frame) for a reader that keeps up, as a reader of round trips does."""
            queue = self.receive_queue
            if queue.empty():
                reader: Future[str | bytes | None] = asyncio.get_running_loop().create_future()
                self._reader = reader
                return await reader
            message: str | bytes | None = queue.get_nowait()
            self._make_room_for_frames()
            return message

        def _hand_to_reader(self, message: str | bytes | None) -> bool:
            """Give `message` to engineio's reader if it is waiting for one (then nothing
            is queued: the queue is empty while it waits); False if it is not."""
            reader = self._reader
            if reader is None:
                return False
            self._reader = None
            if reader.done():  # cancelled with its task
                return False
            reader.set_result(message)
            return True

        def on_close(self) -> None:
            if not self._hand_to_reader(None):  # None: engineio's "connection closed"
                super().on_close()  # engineio's: a None in the queue
            self._make_room_for_frames()

        def _make_room_for_frames(self) -> None:
            # Assign only when there is a waiter: a new attribute on a handler costs every
            # socket ~1.5 KiB (its __dict__ leaves the shared-key layout).
            room = self._room_for_frames
            if room is not None:
                self._room_for_frames = None  # type: ignore[misc]  # as above
                if not room.done():
                    room.set_result(None)

        def write_message(self, message: str | bytes | dict[str, Any], binary: bool = False) -> Future[None]:
            try:
                future = super().write_message(message, binary=binary)
            except StreamBufferFullError:
                future = self._write_past_the_cap(lambda: super(BoundedEngineIOHandler, self).write_message(message, binary=binary))
            # engineio's driver never awaits this future: when a client vanishes with
            # messages still buffered for it, asyncio would log each lost write as an
            # unretrieved exception. The disconnect itself is handled (and logged once).
            future.add_done_callback(_retrieve_exception)
            return future

        def write_frame(self, frame: bytes) -> None:
            """Write a WebSocket frame built by frames.py (engineio_server.py's direct path): one frame
            shared by every recipient of a broadcast, and no task per write (Tornado's
            write_message starts one). Raises WebSocketClosedError like write_message."""
            connection = self.ws_connection
            if connection is None or connection.is_closing():
                raise WebSocketClosedError()
            stream = connection.stream
            if type(stream).write_to_fd is PLAIN_WRITE and not stream.writing():  # (is_closing: not closed)
                # Nothing of this connection waits to be sent: straight to its socket, as
                # Tornado's write would do after a future, a callback and its bookkeeping
                # (half the CPU of a small frame's write, measured: ~4 µs of ~9). What the
                # kernel does not take goes to Tornado's buffer, behind it, under its cap.
                # (Only for a stream that writes to its socket as IOStream does: not TLS's.)
                try:
                    sent = stream.socket.send(frame)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    sent = 0  # a connection lost: Tornado's write below finds it and closes the stream
                if sent == len(frame):
                    return
                frame = frame[sent:]
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

        def get_compression_options(self) -> dict[str, Any] | None:
            """No permessage-deflate (engineio's handler turns it on): a zlib compressor per
            socket costs memory and CPU for messages of a few dozen bytes. socket.io 4
            servers have it off by default too."""
            return None

    return BoundedEngineIOHandler
