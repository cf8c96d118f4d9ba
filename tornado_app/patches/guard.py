"""python-socketio's server, hardened against clients that misbehave (see the class), and
bound to the web session each Engine.IO connection was opened with (read from its
handshake by the app's `session_id_of`: this module knows nothing of cookies).

It overrides python-socketio's private `_handle_eio_connect`, `_handle_connect`,
`_handle_eio_disconnect`, `_handle_eio_message`, `_handle_event_internal` (an event's ACK
encoded without a walk for bytes), `_trigger_event` (with `_get_event_handler`: an `async
def` handler awaited without asking inspect each time) and `_engineio_server_class`, and
returns its private `not_handled` marker from a catch-all handler (`count_unknown_events`);
the tests in tests/patches/ check that python-socketio still calls them as this relies on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from inspect import CO_COROUTINE
from types import FunctionType
from typing import Any

import socketio
from tornado.httputil import HTTPHeaders

from .engineio_server import TunedEngineIOServer

log = logging.getLogger(__name__)

SESSION_ID = "tornado_app.session_id"  # the key, in a socket's environ, of the session it rides on
BINARY_PACKET_TYPES = ("5", "6")  # Socket.IO BINARY_EVENT and BINARY_ACK
# What a connected socket's environ is read for from then on: its handler (the client's
# address, its connection) and the session it is bound to (same_session, a new connect).
KEPT_FOR_LIFE = ("tornado.handler", SESSION_ID)


def shed_handshake(environ: dict[str, Any]) -> None:
    """Let go of what only the handshake needed, once the socket is connected: python-socketio
    keeps the handshake's environ for the socket's life (`environ[eio_sid]`), and it keeps the
    Tornado request, whose headers and query arguments nothing reads again. tracemalloc over
    1,000 idle sockets: ~3 KiB each (the environ's ~40 keys and values, the request's header
    strings and lists, two argument dicts), and ~1.2 KiB more for the handler's response
    headers (Tornado's `_headers`, once written: a polling handshake's or the 101's).

    The environ is emptied and refilled rather than replaced: engineio's frames that carry the
    socket hold the same dict, and a cleared dict gives its table back (deleting keys would
    not). The headers are emptied in place for the same reason (their `__init__` again: new
    tables, 0.6 us where deleting a dozen names one by one took 2): Tornado's WebSocket handler
    holds them in a frame of its own for the connection's life."""
    kept = {key: environ[key] for key in KEPT_FOR_LIFE if key in environ}
    environ.clear()
    environ.update(kept)
    handler = kept.get("tornado.handler")
    request = getattr(handler, "request", None)
    if handler is None or request is None:
        return
    HTTPHeaders.__init__(request.headers)  # emptied in place: new tables for the held object
    request.arguments = {}
    request.query_arguments = {}
    if getattr(handler, "_headers_written", False):
        # Tornado's response headers (the 101's), never read once written: ~1.2 KiB.
        handler._headers = HTTPHeaders()


class ProtocolGuardedServer(socketio.AsyncServer):  # type: ignore[misc]  # python-socketio has no types
    """python-socketio's server, hardened against clients that misbehave:

    - a malformed Socket.IO packet is ignored with one log line. python-socketio raises on
      those (bad JSON, JSON nested too deep, an event that is not a list with a name, an ack
      id of 100 digits, a CONNECT_ERROR from a client) and engineio logs the traceback at
      ERROR; the connection itself is fine;
    - an Engine.IO connection that sends no Socket.IO connect within `connect_timeout` is
      closed (the JavaScript server does the same after 45 s; python-socketio never does, so
      a client answering pings could hold a connection forever without authenticating).
    """

    manager_initialized: bool  # python-socketio's: whether its manager was started

    def __init__(self, *args: Any, session_id_of: Callable[[Any], str | None],
                 connect_timeout: float, **kwargs: Any) -> None:
        """`session_id_of(handler)`: the web session id a request carries (None: none), given
        the Tornado handler of an Engine.IO handshake."""
        super().__init__(*args, **kwargs)
        self.session_id_of = session_id_of
        self.connect_timeout = connect_timeout
        self._connect_deadlines: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._ignored_packets: dict[str, int] = {}  # per Engine.IO session, to log once

    async def start_manager(self, timeout: float) -> bool:
        """Start the client manager now, and wait up to `timeout` s until it hears the other
        processes (a Redis manager: its channel subscribed); whether it does. python-socketio
        starts its manager at the first Engine.IO connection, so a broadcast from another
        process right after that connection was accepted went unheard (1 in 4 runs of
        test_cluster.py's chat across two processes)."""
        if not self.manager_initialized:
            self.manager_initialized = True
            self.manager.initialize()
        subscribed: asyncio.Event | None = getattr(self.manager, "subscribed", None)
        if subscribed is None:
            return True  # one process: nothing to hear
        try:
            await asyncio.wait_for(subscribed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        # The web session this Engine.IO session was opened with: the only one it may ever
        # act for (see same_session). Read once, here, from the handshake's cookie.
        environ[SESSION_ID] = self.session_id_of(environ["tornado.handler"])
        await super()._handle_eio_connect(eio_sid, environ)
        self._arm_connect_deadline(eio_sid)

    def _arm_connect_deadline(self, eio_sid: str) -> None:
        self._cancel_connect_deadline(eio_sid)
        self._connect_deadlines[eio_sid] = asyncio.get_running_loop().call_later(
            self.connect_timeout, self._connect_timed_out, eio_sid
        )

    def count_unknown_events(self, heard: Callable[[], None]) -> None:
        """Call `heard()` for each event that no handler is for (the metrics' "other"), and
        leave it unanswered as before: python-socketio's catch-all handler ("*") would answer
        a client's ack request unless it returns python-socketio's `not_handled` marker."""
        not_handled = self.not_handled

        async def unknown(*_: object) -> object:
            heard()
            return not_handled

        self.on("*", unknown)

    def is_open(self, eio_sid: str) -> bool:
        """Whether this Engine.IO session is open here (opened, and not yet closed)."""
        return eio_sid in self.environ

    def same_session(self, eio_sid: str, session_id: str | None) -> bool:
        """Whether a request on this Engine.IO session carries the session it was opened
        with. False for a session that is not open here: nothing may act on it."""
        environ = self.environ.get(eio_sid)
        return environ is not None and environ.get(SESSION_ID) == session_id

    def expect_a_new_connect(self, eio_sid: str) -> None:
        """After a Socket.IO disconnect the Engine.IO connection may stay open (a client's
        `41`, or a page that ignores the server's DISCONNECT): it gets `connect_timeout` to
        connect again, like a new one, and is closed otherwise. Not when the Engine.IO
        connection is itself closing (a closed tab): python-socketio runs the disconnect
        handlers before that connection is gone, and its deadline would then fire for nothing."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and not (socket.closing or socket.closed):
            self._arm_connect_deadline(eio_sid)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        # What the connect sends (the app's welcome, history and presence, then the CONNECT
        # ack, or the refusal) leaves in one stream write (engineio_server.py).
        with self.eio.writes_gathered(eio_sid):
            await super()._handle_connect(eio_sid, namespace, data)
        if self.manager.sid_from_eio_sid(eio_sid, namespace or "/") is not None:
            self._cancel_connect_deadline(eio_sid)  # accepted: its timer would cost ~1 KiB for 10 s
            environ = self.environ.get(eio_sid)
            if environ is not None:
                shed_handshake(environ)

    def _cancel_connect_deadline(self, eio_sid: str) -> None:
        deadline = self._connect_deadlines.pop(eio_sid, None)
        if deadline is not None:
            deadline.cancel()

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        self._cancel_connect_deadline(eio_sid)
        ignored = self._ignored_packets.pop(eio_sid, 0)
        if ignored > 1:
            log.info("ignored %d malformed packets in all from %s", ignored, self._remote_ip(eio_sid))
        await super()._handle_eio_disconnect(eio_sid, reason)

    def _tornado_handler(self, eio_sid: str) -> Any:
        """The Tornado handler that opened this Engine.IO session (None once it is gone)."""
        return (self.environ.get(eio_sid) or {}).get("tornado.handler")

    def _remote_ip(self, eio_sid: str) -> str:
        # engineio's Tornado driver puts 127.0.0.1 in REMOTE_ADDR; the real peer is here.
        handler = self._tornado_handler(eio_sid)
        return handler.request.remote_ip if handler is not None else "?"

    def _ignored(self, eio_sid: str, what: str) -> None:
        """Log the first packet ignored on a connection; count the rest (a client sending
        thousands a second must not write thousands of log lines a second)."""
        count = self._ignored_packets.get(eio_sid, 0) + 1
        self._ignored_packets[eio_sid] = count
        if count == 1:
            log.info("ignored %s from %s (further ones on this connection are counted, not logged)", what, self._remote_ip(eio_sid))

    def _connect_timed_out(self, eio_sid: str) -> None:
        self._connect_deadlines.pop(eio_sid, None)
        if self.manager.sid_from_eio_sid(eio_sid, "/") is not None:
            return  # connected (or refused and retried successfully) in time
        if eio_sid not in self.eio.sockets:
            return  # gone already: there is nothing to close
        log.info("closed a connection from %s: no Socket.IO connect within %g s", self._remote_ip(eio_sid), self.connect_timeout)
        task = asyncio.ensure_future(self.end_engineio_session(eio_sid, self.reason.TRANSPORT_ERROR))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _engineio_server_class(self) -> type[TunedEngineIOServer]:
        return TunedEngineIOServer

    async def end_engineio_session(self, eio_sid: str, reason: str) -> None:
        """End an Engine.IO session now (see engineio_server.py: engineio's own way could wait forever)."""
        await self.eio.end_session(eio_sid, reason, websocket_handler=self._tornado_handler(eio_sid))

    async def _trigger_event(self, event: str, namespace: str, *args: Any) -> Any:
        """python-socketio's, which asks `inspect.iscoroutinefunction` of the handler for
        every event (eight calls, a tenth of an event's dispatch): here a handler that is a
        plain `async def` function, as all of this app's are, is awaited as python-socketio
        awaits one (a cancelled handler answers nothing); any other handler, and every
        'disconnect' (python-socketio retries a legacy one-argument handler), go its way."""
        handler, handler_args = self._get_event_handler(event, namespace, args)
        if event == "disconnect" or type(handler) is not FunctionType or not handler.__code__.co_flags & CO_COROUTINE:
            return await super()._trigger_event(event, namespace, *args)
        try:
            return await handler(*handler_args)
        except asyncio.CancelledError:
            return None

    async def _handle_event_internal(self, server: socketio.AsyncServer, sid: str, eio_sid: str, data: list[Any],
                                     namespace: str, id: int | None) -> None:
        """python-socketio's: run the event's handler, then send its answer as the ACK the
        client asked for, unless no handler took it. The ACK is encoded here as python-
        socketio's Packet encodes JSON data (`ack_text`), without its walk through the answer
        looking for bytes (a dozen calls for a small dict), which was a tenth of an ack's
        encoding; an answer with bytes (which JSON cannot write) still goes as python-socketio
        sends it (a binary ACK)."""
        answer = await server._trigger_event(data[0], namespace, sid, *data[1:])
        if answer == self.not_handled or id is None:
            return
        arguments = [] if answer is None else list(answer) if isinstance(answer, tuple) else [answer]
        text = ack_text(self.packet_class, namespace, id, arguments)
        if text is None:
            await server._send_packet(eio_sid, self.packet_class(socketio.packet.ACK, namespace=namespace, id=id, data=arguments))
        else:
            await self.eio.send(eio_sid, text)

    async def _handle_eio_message(self, eio_sid: str, data: object) -> None:
        if eio_sid not in self.environ:
            return  # frames still queued when the connection was ended: nobody to hear them
        if not isinstance(data, str) or data[:1] in BINARY_PACKET_TYPES:
            # This app exchanges JSON only. A binary header would make python-socketio take
            # the following frames as its attachments, silencing the socket for good.
            self._ignored(eio_sid, "a binary Socket.IO packet (this server takes JSON only)")
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as error:
            self._ignored(eio_sid, f"a malformed Socket.IO packet ({type(error).__name__}: {str(error)[:80]})")


def ack_text(packet_class: type, namespace: str | None, id: int, arguments: list[Any]) -> str | None:
    """The ACK packet python-socketio's `Packet(ACK, namespace, id, arguments).encode()` makes
    of JSON arguments, through the JSON module it was given; None where only its Packet can
    say: arguments JSON cannot write (bytes: a binary ACK), or another serializer's packets."""
    if packet_class is not socketio.packet.Packet:
        return None
    try:
        body = packet_class.json.dumps(arguments, separators=(",", ":"))
    except TypeError:
        return None
    prefix = "" if namespace is None or namespace == "/" else namespace + ","
    return f"{socketio.packet.ACK}{prefix}{id}{body}"
