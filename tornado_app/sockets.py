"""The Socket.IO side: who may connect, which socket belongs to whom, and the events.

A socket is accepted only when its handshake carries the cookie of a live session. The
session's id and username are remembered per socket, so every later event knows who sent
it, and ending a session (logout, expiry, eviction) disconnects exactly its sockets.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import socketio
from socketio.exceptions import ConnectionRefusedError

from .cookies import read_session_id
from .engine import DirectManager, TunedEngineIOServer
from .history import ChatHistory, MemoryHistory
from .presence import PRESENCE_MIN_INTERVAL, PresenceBroadcaster, PresenceSource, ThisProcessOnly
from .ratelimit import RateLimiter
from .refusals import RefusalReport
from .registry import Person, SocketOwner, SocketRegistry
from .reasons import NOT_AUTHENTICATED, SESSION_ENDED, SLOW_DOWN, STORE_UNAVAILABLE, TOO_MANY_CONNECTS, EndReason
from .sessions import Clock, Session, SessionStore, SessionStoreUnavailable
from .validation import InvalidInput, clean_chat_payload

log = logging.getLogger(__name__)
# python-socketio and engineio log every packet at INFO and a client's stray event at
# WARNING; through this logger only their ERRORs (bugs, never a client's doing) show. Given a
# logger of ours they also add no handler of their own (which printed each error twice).
library_log = logging.getLogger(__name__ + ".library")
library_log.setLevel(logging.ERROR)

T = TypeVar("T")

STATE_AT_MOST_EVERY = 1.0  # seconds between two presence states asked for by one socket
SESSION_ID = "tornado_app.session_id"  # the key, in a socket's environ, of the session it rides on
MAX_PACKET_BYTES = 64 * 1024  # a chat message is at most 500 characters; refuse giant packets
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds from the Engine.IO open to the Socket.IO connect
SHUTDOWN_FLUSH_SECONDS = 0.25  # for "the server is stopping" to leave before the connections close
BINARY_PACKET_TYPES = ("5", "6")  # Socket.IO BINARY_EVENT and BINARY_ACK


class ProtocolGuardedServer(socketio.AsyncServer):
    """python-socketio's server, hardened against clients that misbehave:

    - a malformed Socket.IO packet is ignored with one log line. python-socketio raises on
      those (bad JSON, JSON nested too deep, an event that is not a list with a name, an ack
      id of 100 digits, a CONNECT_ERROR from a client) and engineio logs the traceback at
      ERROR; the connection itself is fine;
    - an Engine.IO connection that sends no Socket.IO connect within `connect_timeout` is
      closed (the JavaScript server does the same after 45 s; python-socketio never does, so
      a client answering pings could hold a connection forever without authenticating).
    """

    def __init__(self, *args: Any, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connect_timeout = connect_timeout
        self._connect_deadlines: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._ignored_packets: dict[str, int] = {}  # per Engine.IO session, to log once

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        # The web session this Engine.IO session was opened with: the only one it may ever
        # act for (see same_session). Read once, here, from the handshake's cookie.
        environ[SESSION_ID] = read_session_id(environ["tornado.handler"])
        await super()._handle_eio_connect(eio_sid, environ)
        self._arm_connect_deadline(eio_sid)

    def _arm_connect_deadline(self, eio_sid: str) -> None:
        self._cancel_connect_deadline(eio_sid)
        self._connect_deadlines[eio_sid] = asyncio.get_running_loop().call_later(
            self.connect_timeout, self._connect_timed_out, eio_sid
        )

    def same_session(self, eio_sid: str, session_id: str | None) -> bool:
        """Whether a request on this Engine.IO session carries the session it was opened
        with (True for an unknown sid: engineio refuses that one itself)."""
        environ = self.environ.get(eio_sid)
        return environ is None or environ.get(SESSION_ID) == session_id

    def expect_a_new_connect(self, eio_sid: str) -> None:
        """After a Socket.IO disconnect the Engine.IO connection may stay open (a client's
        `41`, or a page that ignores the server's DISCONNECT): it gets `connect_timeout` to
        connect again, like a new one, and is closed otherwise."""
        if eio_sid in self.eio.sockets:
            self._arm_connect_deadline(eio_sid)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        if self.manager.sid_from_eio_sid(eio_sid, namespace or "/") is not None:
            self._cancel_connect_deadline(eio_sid)  # accepted: its timer would cost ~1 KiB for 10 s

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
        log.info("closed a connection from %s: no Socket.IO connect within %g s", self._remote_ip(eio_sid), self.connect_timeout)
        task = asyncio.ensure_future(self.end_engineio_session(eio_sid, self.reason.TRANSPORT_ERROR))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _engineio_server_class(self) -> type[TunedEngineIOServer]:
        return TunedEngineIOServer

    async def end_engineio_session(self, eio_sid: str, reason: str) -> None:
        """End an Engine.IO session now (see engine.py: engineio's own way could wait forever)."""
        await self.eio.end_session(eio_sid, reason, websocket_handler=self._tornado_handler(eio_sid))

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


def _report_bugs(handler: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T | None]]:
    """Log our own handler's exception with its traceback, so that the protocol guard above
    never mistakes a bug of ours in an event handler for a client's malformed packet."""

    @functools.wraps(handler)
    async def reported(*args: object) -> T | None:
        try:
            return await handler(*args)
        except Exception:
            log.exception("%s failed", handler.__name__)
            return None

    return reported


class ChatSocketServer:
    """A python-socketio server whose sockets are authenticated by the web session."""

    def __init__(
        self,
        store: SessionStore,
        *,
        clock: Clock = time.time,
        ping_interval: float = 25,
        ping_timeout: float = 20,
        presence_interval: float = PRESENCE_MIN_INTERVAL,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        client_manager: socketio.AsyncManager | None = None,
        presence_source: PresenceSource | None = None,
        history: ChatHistory | None = None,
        fast_path: bool = True,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.store = store
        self.rate_limiter = rate_limiter or RateLimiter.unlimited()
        # Anyone can open sockets without a session, thousands a second: counted, not a line each.
        self._unauthenticated = RefusalReport("refused sockets without a session", logger=log)
        self._too_many_connects = RefusalReport("refused sockets over --connect-rate", logger=log)
        self._too_many_chats = RefusalReport("refused chat messages over --chat-rate", logger=log)
        self.history = history if history is not None else MemoryHistory()
        self.registry = SocketRegistry()
        self._clock = clock
        # The Origin policy is enforced by our Tornado handler (transport.py) before
        # engineio sees a request, on both transports. "*" here only makes engineio echo
        # CORS headers for the origins that policy let through; do not copy it without
        # that handler.
        self.sio = ProtocolGuardedServer(
            async_mode="tornado",
            cors_allowed_origins="*",
            cors_credentials=True,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_http_buffer_size=MAX_PACKET_BYTES,
            # Our handlers never block, so run them inline rather than in a new task per
            # packet (engineio's default): a measurable share of each connect's CPU.
            async_handlers=False,
            connect_timeout=connect_timeout,
            client_manager=client_manager if client_manager is not None else DirectManager(),
            # Packets to open WebSockets are written directly, not queued (engine.py).
            direct_writes=fast_path,
            logger=library_log,
            engineio_logger=library_log,
        )
        self._presence_source = presence_source or ThisProcessOnly()
        self.presence = PresenceBroadcaster(self.sio, presence_interval, self._presence_source)
        self._state_asked: dict[str, float] = {}  # sockets that asked for the presence state, when
        # Not connect: an unexpected error there must leave the socket refused, never
        # swallowed into an accept.
        self.sio.on("connect", self._on_connect)
        for event, handler in [("disconnect", self._on_disconnect), ("whoami", self._on_whoami), ("chat", self._on_chat),
                               ("active", self._on_active), ("presence_state", self._on_presence_state)]:
            self.sio.on(event, _report_bugs(handler))
        store.add_end_listener(self._on_session_end)

    async def emit_here(self, event: str, data: object, sid: str) -> None:
        """Emit to one socket of this process. (sio.emit(to=sid) would go through the message
        queue between processes, a Redis round trip, to reach a socket that is right here.)"""
        await self.sio.manager.emit(event, data, namespace="/", room=sid, ignore_queue=True)

    def start(self) -> None:
        """Hear of presence changes in other processes (nothing to do for one process)."""
        self.presence.start()

    async def shutdown(self) -> None:
        """Close every connection and stop engineio's background tasks.

        The connections are closed, not disconnected at the Socket.IO level: a client that is
        told "disconnect" takes it as final and does not reconnect, while a server that is
        stopping for a restart (or behind a balancer with other processes) wants its pages to
        reconnect by themselves."""
        for sid in self.registry.all_sockets():
            await self.emit_here("ended", {"reason": "shutdown"}, sid)
        await self.sio.eio.flush(SHUTDOWN_FLUSH_SECONDS)
        for eio_sid in list(self.sio.eio.sockets):
            await self.sio.end_engineio_session(eio_sid, self.sio.eio.reason.SERVER_DISCONNECT)
        self.presence.cancel()
        await self._presence_source.stop()
        await self.sio.shutdown()

    def _sent_by_the_client(self, sid: str) -> bool:
        """True when a 'connect' or 'disconnect' handler was reached by a client's own event of
        that name: python-socketio dispatches those to the same handlers. A real connect or
        disconnect runs while the socket is pending, so not yet (or no longer) connected."""
        return self.sio.manager.is_connected(sid, "/")

    async def _on_connect(self, sid: str, environ: dict[str, Any] | None = None, auth: object = None, *_: object) -> None:
        """Accept a socket only for a live session, in an order that no ending can slip
        through: every await that reads the session happens either before the socket is
        registered (then a second look, after registering, sees any end that came since) or
        after it (then the end's listener finds the socket and makes this connect refuse).
        Nothing is awaited between the last check and python-socketio marking it connected."""
        if self._sent_by_the_client(sid) or not isinstance(environ, dict):
            return
        request = environ["tornado.handler"].request
        if not await self.rate_limiter.allows("connect", request.remote_ip):
            self._too_many_connects.refused(f"the latest from {request.remote_ip}")
            raise ConnectionRefusedError(TOO_MANY_CONNECTS)
        try:
            session = await self.store.get(environ.get(SESSION_ID))
            recent = await self._recent_history() if session is not None else []
        except SessionStoreUnavailable:
            raise ConnectionRefusedError(STORE_UNAVAILABLE) from None  # the store logs it, once
        if session is None:
            # engineio's Tornado driver puts 127.0.0.1 in REMOTE_ADDR; the real peer is here.
            self._unauthenticated.refused(f"{NOT_AUTHENTICATED}, the latest from {request.remote_ip}")
            raise ConnectionRefusedError(NOT_AUTHENTICATED)
        came_online = self.registry.add(sid, session, request.remote_ip)
        try:
            still_live = await self.store.get(session.id) is not None
        except SessionStoreUnavailable:
            self._forget(sid)
            raise ConnectionRefusedError(STORE_UNAVAILABLE) from None
        self._refuse_if_ended(sid, still_live)
        log.debug("socket %s of %r connected from %s", sid, session.username, request.remote_ip)
        await self.emit_here("welcome", {"username": session.username, "tag": session.tag}, sid)
        await self.emit_here("history", {"messages": recent}, sid)
        if came_online:
            self.presence.came_online(Person(session.username, session.tag))  # in the next change batch
        await self.presence.tell(sid)  # the state to start from, then the batches
        self._refuse_if_ended(sid)  # (the emits above can wait, on engineio's own path)

    def _refuse_if_ended(self, sid: str, still_live: bool = True) -> None:
        """Refuse a connecting socket whose session ended while it was being accepted (the
        end's listener then took it out of the registry, see _on_session_end)."""
        if still_live and self.registry.owner(sid) is not None:
            return
        self._forget(sid)
        raise ConnectionRefusedError(SESSION_ENDED)

    def _forget(self, sid: str) -> SocketOwner | None:
        """Unregister a socket; its person goes offline with their last one."""
        self._state_asked.pop(sid, None)
        owner = self.registry.remove(sid)
        if owner is not None and not self.registry.is_online(owner.session_id):
            self.presence.went_offline(Person(owner.username, owner.tag))
        return owner

    async def _recent_history(self) -> list[object]:
        try:
            return await self.history.recent()
        except SessionStoreUnavailable:
            return []

    async def _on_disconnect(self, sid: str, reason: object = None, *_: object) -> None:
        if self._sent_by_the_client(sid):
            return  # a forged 'disconnect' must not unregister a live socket
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:
            self.sio.expect_a_new_connect(eio_sid)
        owner = self._forget(sid)
        if owner is None:
            return
        # One line per socket that goes: a dropped connection, a client that stopped
        # answering pings, a logout... with the reason engineio gives.
        log.info("socket of %r from %s closed: %s", owner.username, owner.remote_ip, reason)

    async def _on_session_end(self, session: Session, reason: EndReason) -> None:
        """Drop every socket of an ended session: a connected one is told why (so that the page
        can say it in plain words) and disconnected; one still being accepted is taken out of
        the registry, which makes its connect refuse (see _on_connect)."""
        for sid in self.registry.sockets_of(session.id):
            if self.sio.manager.is_connected(sid, "/"):
                await self.emit_here("ended", {"reason": reason}, sid)
                await self.sio.disconnect(sid)
            else:
                self._forget(sid)

    async def _live_session(self, sid: str) -> Session | None:
        """The sender's session, refreshed by this event; None (and the socket dropped) if gone."""
        owner = self.registry.owner(sid)
        if owner is None:
            return None
        try:
            session = await self.store.get(owner.session_id)
        except SessionStoreUnavailable:
            return None  # unanswered while the store is away; the socket stays
        if session is None and self.registry.owner(sid) is not None:
            # The store ended the session without telling us (a networked store might).
            await self.sio.disconnect(sid)
        return session

    async def _on_whoami(self, sid: str, *args: object) -> dict[str, object] | None:
        session = await self._live_session(sid)
        return None if session is None else session.public_view()

    async def _on_chat(self, sid: str, *args: object) -> None:
        session = await self._live_session(sid)
        if session is None:
            return
        try:
            text = clean_chat_payload(args[0] if len(args) == 1 else None)
        except InvalidInput as refusal:
            await self.emit_here("error", {"message": str(refusal)}, sid)
            return
        if not await self.rate_limiter.allows("chat", session.id):
            self._too_many_chats.refused(f"the latest from {session.username!r}")
            rate = self.rate_limiter.rates.describe("chat")
            await self.emit_here("error", {"message": f"{SLOW_DOWN} (at most {rate}): this message was not sent"}, sid)
            return
        message = {"id": secrets.token_hex(6), "username": session.username, "tag": session.tag, "text": text,
                   "time": int(self._clock())}
        try:
            await self.history.add(message)
        except SessionStoreUnavailable:
            pass  # the message still goes to everyone this process can reach
        await self.sio.emit("chat", message)

    async def _on_presence_state(self, sid: str, *args: object) -> dict[str, object] | None:
        """A page that saw a gap in the change versions asks for the state again (answered
        at most once a second per socket: the state is everyone, the changes are not)."""
        if self.registry.owner(sid) is None:
            return None
        now = time.monotonic()
        if now - self._state_asked.get(sid, float("-inf")) < STATE_AT_MOST_EVERY:
            return None
        self._state_asked[sid] = now
        return self.presence.state()

    async def _on_active(self, sid: str, *args: object) -> None:
        """The page says a person is using it (at most once a minute): that refreshes the
        session's idle timer like any request, so a person who reads does not expire."""
        await self._live_session(sid)
