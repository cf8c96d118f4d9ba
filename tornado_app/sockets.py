"""The Socket.IO side: who may connect, which socket belongs to whom, and the events.

A socket is accepted only when its handshake carries the cookie of a live session. The
session's id and username are remembered per socket, so every later event knows who sent
it, and ending a session (logout, expiry, eviction) disconnects exactly its sockets.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from socketio.exceptions import ConnectionRefusedError

from . import logs, packet_json
from .admission import client_key
from .backend import Backend
from .cookies import read_session_id
from .errors import BackendUnavailable, BackendUnreachable
from .history import Recent, history_frame_bytes
from .logs import facts
from .metrics import NoMetrics
from .packet_json import RawJSON
from .patches.guard import SESSION_ID, ProtocolGuardedServer
from .patches.managers import DirectManager
from .presence import PRESENCE_MIN_INTERVAL, PresenceBroadcaster
from .presence_asks import StateAsks
from .private import person_room, private_message, private_message_id, recipient_tag
from .reasons import (
    CATCH_UP_SLOW_DOWN,
    NOT_AUTHENTICATED,
    NOT_ONLINE,
    NOT_SENT_SESSION_ENDED,
    NOT_STORED,
    NOT_TO_YOURSELF,
    SESSION_ENDED,
    SLOW_DOWN,
    STATE_SLOW_DOWN,
    STORE_UNAVAILABLE,
    TOO_MANY_CONNECTS,
    ChatRefusal,
    EndReason,
    PrivateRefusal,
)
from .refusals import RefusalReport
from .registry import Person, SocketOwner, SocketRegistry
from .sessions import Session
from .skeleton import skeleton
from .validation import InvalidInput, clean_chat_payload, client_message_id

log = logging.getLogger(__name__)
# python-socketio and engineio log every packet at INFO and a client's stray event at
# WARNING; through this logger only their ERRORs (bugs, never a client's doing) show. Given a
# logger of ours they also add no handler of their own (which printed each error twice).
library_log = logging.getLogger(__name__ + ".library")
library_log.setLevel(logging.ERROR)

T = TypeVar("T")

MAX_PACKET_BYTES = 64 * 1024  # a chat message is at most 500 characters; refuse giant packets
SHUTDOWN_FLUSH_SECONDS = 0.25  # for "the server is stopping" to leave before the connections close
MANAGER_SUBSCRIBE_SECONDS = 10.0  # at start, for Redis to confirm the Socket.IO channel's subscription

# What the close line says of a socket dropped because its session ended, where engineio
# would say only "server disconnect".
CLOSED_BECAUSE: dict[EndReason, str] = {
    "logout": "logged out",
    "replaced": "session replaced",
    "expired": "session expired",
    "evicted": "session evicted",
    "shutdown": "every session ended",
    "gone": "session gone",
}


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
        backend: Backend,
        *,
        ping_interval: float,
        ping_timeout: float,
        connect_timeout: float,
        presence_interval: float = PRESENCE_MIN_INTERVAL,
        fast_path: bool = True,
        metrics: NoMetrics | None = None,
        process_label: str | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else NoMetrics()
        # Which process serves a socket, said in its welcome: public (a label, or the pid).
        self.process_label = process_label or logs.process_label()
        # The store, the history, presence and the rates: reached through the backend only.
        self.backend = backend
        # Anyone can open sockets without a session, thousands a second: counted, not a line
        # each. At DEBUG: every logged-out page view probes with one, as designed.
        self._unauthenticated = RefusalReport("refused sockets without a session", logger=log, level=logging.DEBUG)
        self._too_many_connects = RefusalReport("refused sockets over --connect-rate", logger=log)
        self._too_many_chats = RefusalReport("refused chat messages over --chat-rate", logger=log)
        self._too_many_states = RefusalReport("refused presence states over a client's fair share", logger=log)
        # What a page that comes back may be sent of what it missed: no more than the history
        # a newcomer may be sent (which --max-unsent-kib is checked to hold, see cli.py).
        self._most_replayed_bytes = history_frame_bytes(backend.history.size)
        self._recent_history = EncodedRecent()
        self.registry = SocketRegistry()
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
            json=packet_json,  # UTF-8 as it is: an emoji is 4 bytes in a frame, not 12
            # Our handlers never block, so run them inline rather than in a new task per
            # packet (engineio's default): a measurable share of each connect's CPU.
            async_handlers=False,
            connect_timeout=connect_timeout,
            session_id_of=read_session_id,
            client_manager=backend.client_manager,
            # Packets to open WebSockets are written directly, not queued (patches/engineio_server.py).
            direct_writes=fast_path,
            logger=library_log,
            engineio_logger=library_log,
        )
        if isinstance(self.sio.manager, DirectManager):
            # The history and the presence state, encoded once: their frames too (patches/managers.py).
            self.sio.manager.reuse_frames_for(RawJSON)
        self.presence = PresenceBroadcaster(self.sio, presence_interval, backend.presence, self.metrics.presence_batch)
        self.state_asks = StateAsks()
        # The same fair share for a page that saw a gap in the chat's positions (a message lost
        # between processes while Redis failed over, say): each answer is up to a history frame.
        self.catch_up_asks = StateAsks()
        self._session_ending: dict[str, EndReason] = {}  # sockets being disconnected for their session's end, why
        self._stopping = False
        self.draining = False  # ending its sockets batch by batch for a stop (drain.py; a metric)
        # Not connect: an unexpected error there must leave the socket refused, never
        # swallowed into an accept.
        self.sio.on("connect", self.metrics.connects(self._on_connect))
        for event, handler in [("disconnect", self._on_disconnect), ("whoami", self._on_whoami), ("chat", self.metrics.chats(self._on_chat)),
                               ("private", self._on_private),
                               ("active", self._on_active), ("idle_left", self._on_idle_left),
                               ("catch_up", self._on_catch_up),
                               ("presence_state", self._on_presence_state)]:
            self.sio.on(event, self.metrics.timed(event, _report_bugs(handler)))
        backend.store.add_end_listener(self._on_session_end)

    async def emit_here(self, event: str, data: object, sid: str) -> None:
        """Emit to one socket of this process. (sio.emit(to=sid) would go through the message
        queue between processes, a Redis round trip, to reach a socket that is right here.)"""
        await self.sio.manager.emit(event, data, namespace="/", room=sid, ignore_queue=True)

    async def start(self) -> None:
        """Hear the other processes (nothing to do for one process) before the first socket
        comes: the Socket.IO manager's broadcasts (BackendUnreachable if Redis does not
        confirm its subscription in time) and presence changes."""
        if not await self.sio.start_manager(MANAGER_SUBSCRIBE_SECONDS):
            raise BackendUnreachable(f"Redis did not confirm the Socket.IO channel's subscription "
                                     f"within {MANAGER_SUBSCRIBE_SECONDS:g} s")
        self.presence.start()

    def open_sockets(self) -> list[str]:
        """The sockets of this process (connected, or being accepted), the oldest first."""
        return self.registry.all_sockets()

    async def end_for_restart(self, sids: Sequence[str]) -> None:
        """Tell these sockets that the server is stopping (`ended` "shutdown"), then close
        their connections: the drain's batches (drain.py), and the shutdown's.

        The connections are closed, not disconnected at the Socket.IO level: a client that is
        told "disconnect" takes it as final and does not reconnect, while a server that is
        stopping for a restart (or behind a balancer with other processes) wants its pages to
        reconnect by themselves."""
        self._stopping = True  # the close lines say "server stopping", not engineio's "server disconnect"
        eio_sids = [eio_sid for sid in sids if (eio_sid := self.sio.manager.eio_sid_from_sid(sid, "/")) is not None]
        for sid in sids:
            await self.emit_here("ended", {"reason": "shutdown"}, sid)
        await self.sio.eio.flush(SHUTDOWN_FLUSH_SECONDS, eio_sids)
        for eio_sid in eio_sids:
            await self.sio.end_engineio_session(eio_sid, self.sio.eio.reason.SERVER_DISCONNECT)

    async def shutdown(self) -> None:
        """End every socket still here at once (end_for_restart), close every other Engine.IO
        connection, and stop engineio's background tasks."""
        await self.end_for_restart(self.open_sockets())
        for eio_sid in list(self.sio.eio.sockets):
            await self.sio.end_engineio_session(eio_sid, self.sio.eio.reason.SERVER_DISCONNECT)
        self.presence.cancel()
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
        if not await self.backend.rate_limiter.allows("connect", request.remote_ip):
            self._too_many_connects.refused(f"the latest from {request.remote_ip}", client=request.remote_ip)
            raise ConnectionRefusedError(TOO_MANY_CONNECTS)
        resume = auth if isinstance(auth, dict) else {}
        try:
            session = await self.backend.store.get(environ.get(SESSION_ID))
            history = await self._history_for(resume.get("history")) if session is not None else None
        except BackendUnavailable:
            raise ConnectionRefusedError(STORE_UNAVAILABLE) from None  # the store logs it, once
        if session is None:
            # engineio's Tornado driver puts 127.0.0.1 in REMOTE_ADDR; the real peer is here.
            self._unauthenticated.refused(f"{NOT_AUTHENTICATED}, the latest from {request.remote_ip}", client=request.remote_ip)
            raise ConnectionRefusedError(NOT_AUTHENTICATED)
        came_online = self.registry.add(sid, session, request.remote_ip)
        # Addressable by its person's tag from now on, in every process (private.py). A
        # refused connect leaves every room with python-socketio's disconnect of the sid.
        await self.sio.enter_room(sid, person_room(session.tag))
        try:
            still_live = await self.backend.store.get(session.id) is not None
        except BackendUnavailable:
            self._forget(sid)
            raise ConnectionRefusedError(STORE_UNAVAILABLE) from None
        self._refuse_if_ended(sid, still_live)
        log.debug("socket %s of %r connected from %s", sid, session.username, request.remote_ip)
        await self.emit_here("welcome", {"username": session.username, "tag": session.tag, "idle_timeout": self.backend.store.ttl,
                                         "process": self.process_label}, sid)
        await self.emit_here("history", history, sid)
        if came_online:
            self.presence.came_online(Person(session.username, session.tag))  # in the next change batch
        await self.presence.tell(sid, resume.get("presence"))  # the state to start from (or the changes since), then the batches
        self._refuse_if_ended(sid)  # (the emits above can wait, on engineio's own path)
        self.metrics.connect_accepted()

    def _refuse_if_ended(self, sid: str, still_live: bool = True) -> None:
        """Refuse a connecting socket whose session ended while it was being accepted (the
        end's listener then took it out of the registry, see _on_session_end)."""
        if still_live and self.registry.owner(sid) is not None:
            return
        self._forget(sid)
        raise ConnectionRefusedError(SESSION_ENDED)

    def _forget(self, sid: str) -> SocketOwner | None:
        """Unregister a socket; its person goes offline with their last one."""
        self.state_asks.socket_gone(sid)
        self.catch_up_asks.socket_gone(sid)
        owner = self.registry.remove(sid)
        if owner is not None and not self.registry.is_online(owner.session_id):
            self.presence.went_offline(Person(owner.username, owner.tag))
        return owner

    async def _history_for(self, after: object) -> RawJSON:
        """What a connecting page is sent of the chat: exactly the messages after the position
        it holds (a page coming back after a gap), when the history can tell them all and they
        fit one frame; otherwise the latest, with words saying which. Nothing (and no
        position) while the store is away: the page keeps what it has."""
        try:
            if after is not None:
                missed = await self.backend.history.since(after) if isinstance(after, str) else None
                if missed is not None:
                    replay = RawJSON.of({"messages": missed.messages, "position": missed.position, "resume": "caught_up"})
                    if len(replay.text.encode()) <= self._most_replayed_bytes:
                        return replay
            recent = await self.backend.history.recent()
        except BackendUnavailable:
            return RawJSON.of({"messages": [], "position": None, "resume": "none" if after is None else "could_not"})
        return self._recent_history.encoded(recent, "none" if after is None else "could_not")

    async def _on_disconnect(self, sid: str, reason: object = None, *_: object) -> None:
        if self._sent_by_the_client(sid):
            return  # a forged 'disconnect' must not unregister a live socket
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:
            self.sio.expect_a_new_connect(eio_sid)
        owner = self._forget(sid)
        if owner is None:
            return
        # One line per socket that goes: its session's end in words (a logout, an expiry...),
        # or else the reason engineio gives (a dropped connection, a client that stopped
        # answering pings, its own disconnect).
        ending = self._session_ending.get(sid)
        why: object  # engineio's reason is a str, but python-socketio passes it on untyped
        if ending is not None:
            why = CLOSED_BECAUSE[ending]
        else:
            why = "server stopping" if self._stopping else reason
        log.info("socket of %r from %s closed: %s", owner.username, owner.remote_ip, why,
                 extra=facts(ending or why, owner.remote_ip, owner.tag))

    async def _on_session_end(self, session: Session, reason: EndReason) -> None:
        """Drop every socket of an ended session: a connected one is told why (so that the page
        can say it in plain words) and disconnected; one still being accepted is taken out of
        the registry, which makes its connect refuse (see _on_connect)."""
        self.backend.history.forget_sender(session.id)
        for sid in self.registry.sockets_of(session.id):
            if self.sio.manager.is_connected(sid, "/"):
                await self.emit_here("ended", {"reason": reason}, sid)
                await self._disconnect_for(sid, reason)
            else:
                self._forget(sid)

    async def _disconnect_for(self, sid: str, reason: EndReason) -> None:
        """Disconnect a socket of this process because its session ended, so that its close
        line says why (python-socketio runs the disconnect handler within the call)."""
        self._session_ending[sid] = reason
        try:
            await self.sio.disconnect(sid)
        finally:
            self._session_ending.pop(sid, None)

    async def _live_session(self, sid: str, refusing: bool = False) -> Session | None:
        """The sender's session, refreshed by this event; None (and the socket dropped) if gone.
        While the store is away: None too (the socket stays), or BackendUnavailable if the
        caller is `refusing` (it answers in words)."""
        owner = self.registry.owner(sid)
        if owner is None:
            return None
        try:
            session = await self.backend.store.get(owner.session_id)
        except BackendUnavailable:
            if refusing:
                raise
            return None
        if session is None and self.registry.owner(sid) is not None:
            # The store ended the session without telling us (a networked store might: a
            # Redis restarted empty): told why first, as for any end (_on_session_end).
            await self.emit_here("ended", {"reason": "gone"}, sid)
            await self._disconnect_for(sid, "gone")
        return session

    async def _on_whoami(self, sid: str, *args: object) -> dict[str, object] | None:
        session = await self._live_session(sid)
        return None if session is None else session.public_view()

    async def _writer(self, sid: str) -> Session | dict[str, object]:
        """The live session of a socket sending a chat or private message, or the refusal to
        answer with: the store is away (the page keeps the text and sends it again), or the
        session ended."""
        try:
            session = await self._live_session(sid, refusing=True)
        except BackendUnavailable:
            return _refusal("store", NOT_STORED)
        return _refusal("ended", NOT_SENT_SESSION_ENDED) if session is None else session

    async def _over_chat_rate(self, session: Session) -> dict[str, object] | None:
        """The refusal of a message over --chat-rate, or None. Chat and private messages
        spend one budget: mixing the two does not double it."""
        if await self.backend.rate_limiter.allows("chat", session.id):
            return None
        self._too_many_chats.refused(f"the latest from {session.username!r}", tag=session.tag)
        rate = self.backend.rate_limiter.rates.describe("chat")
        return _refusal("rate", f"{SLOW_DOWN} (at most {rate}): this message was not sent")

    async def _on_chat(self, sid: str, *args: object) -> dict[str, object]:
        """Answered, always: the message as stored and sent to everyone, or a refusal that says
        why (the page keeps the text). A message the store cannot keep is refused, never sent
        unkept: a page that was away could not catch up on it. A repeated client id (a retry
        after a lost answer) is answered with the first one's message, and sent to everyone
        only if the first one never was (see history.Stored)."""
        session = await self._writer(sid)
        if not isinstance(session, Session):
            return session
        payload = args[0] if len(args) == 1 else None
        try:
            text = clean_chat_payload(payload)
            client_id = client_message_id(payload)
        except InvalidInput as refusal:
            return _refusal("invalid", str(refusal))
        if (too_many := await self._over_chat_rate(session)) is not None:
            return too_many
        message = {"id": secrets.token_hex(6), "username": session.username, "tag": session.tag,
                   "skeleton": skeleton(session.username), "text": text, "time": int(self.backend.clock())}
        try:
            stored = await self.backend.history.add(message, session.id, client_id)
        except BackendUnavailable:
            return _refusal("store", NOT_STORED)
        if stored.message is not None and not stored.announced:
            # New, or a repeat whose first was kept but never sent to everyone (its answer
            # never came back: a hung Redis runs it once it wakes; or its process ended).
            await self.sio.emit("chat", stored.message)
            if client_id is not None:
                try:
                    await self.backend.history.announce(session.id, client_id, stored)
                except BackendUnavailable:
                    pass  # at worst a later repeat sends it again: pages drop a message id they hold
        return {"ok": True, "message": stored.message}

    async def _on_private(self, sid: str, *args: object) -> dict[str, object]:
        """A message to one person online, by their tag: sent to every socket of theirs (in
        every process) and to the sender's other sockets, nobody else, and never kept (no
        history, no catch-up). Answered as a chat message is; rate-limited with chat (one
        budget: mixing the two does not double it); refused in words, to nobody, when the
        recipient is not online now."""
        session = await self._writer(sid)
        if not isinstance(session, Session):
            return session
        payload = args[0] if len(args) == 1 else None
        try:
            text = clean_chat_payload(payload)
            client_id = client_message_id(payload)
            to = recipient_tag(payload)
        except InvalidInput as refusal:
            return _refusal("invalid", str(refusal))
        if to == session.tag:
            return _refusal("invalid", NOT_TO_YOURSELF)
        if (too_many := await self._over_chat_rate(session)) is not None:
            return too_many
        recipient = self.presence.online(to)
        if recipient is None:
            return _refusal("offline", f"#{to[:4]} {NOT_ONLINE}")
        message = private_message(private_message_id(session.id, client_id), Person(session.username, session.tag),
                                  recipient, text, int(self.backend.clock()))
        await self.sio.emit("private", message, to=[person_room(recipient.tag), person_room(session.tag)], skip_sid=sid)
        return {"ok": True, "message": message}

    async def _on_catch_up(self, sid: str, *args: object) -> RawJSON | dict[str, object] | None:
        """A connected page that saw a gap in the positions it received asks for what came
        after the last one it holds: answered as a reconnect's `history` would be, within a
        fair share; past it, a refusal that says when to ask again."""
        owner = self.registry.owner(sid)
        if owner is None:
            return None
        wait = self.catch_up_asks.wait(sid, owner.session_id, client_key(owner.remote_ip))
        if wait > 0:
            return {"refused": CATCH_UP_SLOW_DOWN, "retry_after": round(wait + 0.05, 1)}
        payload = args[0] if len(args) == 1 else None
        return await self._history_for(payload.get("after") if isinstance(payload, dict) else "")

    async def _on_presence_state(self, sid: str, *args: object) -> RawJSON | dict[str, object] | None:
        """A page that saw a gap in the change versions asks for the state again: answered
        within a fair share per socket, session and address (presence_asks.py: the state is
        everyone, the changes are not), encoded once per version; past it, a refusal that says
        when to ask again."""
        owner = self.registry.owner(sid)
        if owner is None:
            return None
        wait = self.state_asks.wait(sid, owner.session_id, client_key(owner.remote_ip))
        if wait > 0:
            self._too_many_states.refused(f"the latest from {owner.username!r} at {owner.remote_ip}", client=owner.remote_ip, tag=owner.tag)
            return {"refused": STATE_SLOW_DOWN, "retry_after": round(wait + 0.05, 1)}
        return self.presence.state()

    async def _on_active(self, sid: str, *args: object) -> dict[str, float] | None:
        """The page says a person is using it (at most once a minute): that refreshes the
        session's idle timer like any request, so a person who reads does not expire. The
        answer says how long it now has."""
        session = await self._live_session(sid)
        return None if session is None else {"idle_left": self.backend.store.ttl}

    async def _on_idle_left(self, sid: str, *args: object) -> dict[str, float] | None:
        """How long before the session expires unless used, for the page's warning a minute
        before; asking is not a use (another tab's use counts). Unanswered while the store is
        away."""
        owner = self.registry.owner(sid)
        if owner is None:
            return None
        try:
            left = await self.backend.store.idle_left(owner.session_id)
        except BackendUnavailable:
            return None
        return {"idle_left": round(left or 0.0, 1)}


class EncodedRecent:
    """The latest messages as a newcomer is sent them, encoded once per position.

    Every newcomer is sent the same latest messages until one is added: encoding them for each
    cost 130-210 µs a connect with a full history (50 messages of 480 characters, a tenth of
    a connect and more), now a comparison of two strings. Safe because a position names the
    messages up to it: both histories give each message the next n of their epoch, a message
    never changes once kept, and whatever starts another count (a restart, a Redis that lost
    its data) starts another epoch. (forget_sender changes no message.)"""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, RawJSON]] = {}  # resume word -> (position, encoded)

    def encoded(self, recent: Recent, resume: str) -> RawJSON:
        last = self._last.get(resume)
        if last is not None and last[0] == recent.position:
            return last[1]
        encoded = RawJSON.of({"messages": recent.messages, "position": recent.position, "resume": resume})
        self._last[resume] = (recent.position, encoded)
        return encoded


def _refusal(reason: ChatRefusal | PrivateRefusal, words: str) -> dict[str, object]:
    return {"ok": False, "reason": reason, "message": words}
