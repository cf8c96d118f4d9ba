"""python-socketio's client manager, changed where every broadcast paid for a task per
recipient and every leave for a copy of the whole room table.

The direct emit (on unless engineio_server.py's `direct_writes=False`):
- `AsyncManager.emit` (python-socketio) is replaced for events without a callback: the
  packet and frame are built once, and each recipient gets the frame written or the packet
  queued, in one pass with no await, so two emits never interleave on a socket. A value the
  app says never changes (`reuse_frames_for`) sent again as an event's one argument is sent
  the frame built the last time.

Leaving in O(1) (`DirectManager`, python-socketio's client manager; the Redis one inherits it):
when K sockets close at once (a deploy, a network blip), python-socketio spent O(K²) after
they were gone: 8,000 sockets closing cost 32 s of CPU, the server deaf meanwhile.
- `BaseManager.basic_disconnect` copied the namespace's whole room table (a room per socket,
  so n entries) on every disconnect to find the rooms of one socket. `DirectManager` keeps,
  per namespace and socket, the rooms it is in (`rooms_of`, kept by `basic_enter_room` and
  `basic_leave_room`, the two methods through which python-socketio changes a room) and
  leaves those; the rest of basic_disconnect (callbacks, pending state) is python-socketio's.
- `pending_connect` and `pending_disconnect` were a list per namespace, searched with `in`
  on every connect, `is_connected` and disconnect: they are `PendingTable`s of `PendingSids`
  (a multiset with the list methods python-socketio calls), each step O(1), with
  python-socketio's own methods running on them unchanged.
tests/patches/test_managers.py feeds the same operations to a plain `socketio.AsyncManager` and
checks that rooms, pending state and answers stay identical.

A broadcast to the other processes (`DirectRedisManager`): python-socketio's Redis client had
no timeout, so a chat broadcast to a hung Redis (the chat stored just before it hung) waited
as long as Redis was hung, and its answer to the page with it. Given the bus's timeouts,
python-socketio's `AsyncRedisManager._publish` (two tries on any error, after redis-py's own
retries) would send a publish whose answer was only late again: the other processes would
deliver it twice. `DirectRedisManager._publish` is python-socketio's loop (its `connected`,
`_redis_connect`, `redis`, `channel`, `json`), trying again only after a connection error,
never after a timeout, and saying in the log, at most once per `PUBLISH_FAILURE_EVERY` s, that
a broadcast reached this process's sockets only.

Told before a broadcast is delivered (`DirectRedisManager.before_delivery`): python-socketio
delivers every broadcast to this process's sockets through `AsyncPubSubManager._handle_emit`
(another process's, from its channel; this process's own, before publishing it). The chat
history in Redis drops the answer it keeps for newcomers there (redis/history.py): the
broadcast of a new message may come before Redis's word that the chat changed, and a newcomer
that joins after the broadcast must find the message in its history.

Heard from the start (`DirectRedisManager.subscribed`): python-socketio subscribes to its
channel in a background task, and gives no sign when it has. `_redis_connect` (python-socketio's)
makes its pubsub pass on SUBSCRIBE's confirmation, which python-socketio's `_listen` drops (it
keeps messages only), and `_redis_listen_with_retries` (python-socketio's, wrapped) sets
`subscribed` when it comes: the app waits for it before it serves (guard.py's
`start_manager`), so that no broadcast published after its first socket is accepted goes
unheard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import socketio
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from .engineio_server import TunedEngineIOServer
from .frames import server_frame


class PendingSids:
    """One namespace's sockets pending connect or disconnect: python-socketio keeps a list and
    appends, removes, tests membership and takes the length, each O(n) on a list but
    `remove`; here each is O(1). A multiset, as a list is (a sid appended twice is there twice)."""

    __slots__ = ("_counts", "_length")

    def __init__(self, sids: Any = ()) -> None:
        self._counts: dict[str, int] = {}
        self._length = 0
        for sid in sids:
            self.append(sid)

    def append(self, sid: str) -> None:
        self._counts[sid] = self._counts.get(sid, 0) + 1
        self._length += 1

    def remove(self, sid: str) -> None:
        count = self._counts.get(sid)
        if count is None:
            raise ValueError(f"{sid!r} is not pending")  # what list.remove raises
        if count == 1:
            del self._counts[sid]
        else:
            self._counts[sid] = count - 1
        self._length -= 1

    def __contains__(self, sid: object) -> bool:
        return sid in self._counts

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Any:
        for sid, count in self._counts.items():
            for _ in range(count):
                yield sid

    def __repr__(self) -> str:
        return f"PendingSids({list(self)!r})"


class PendingTable(dict[Any, PendingSids]):
    """python-socketio's `pending_connect` / `pending_disconnect` (namespace -> sids): it starts
    a namespace's entry as `[]` (BaseManager.pre_connect, pre_disconnect); it is stored here as
    PendingSids, so python-socketio's own methods run unchanged on it."""

    def __setitem__(self, namespace: Any, sids: Any) -> None:
        super().__setitem__(namespace, sids if isinstance(sids, PendingSids) else PendingSids(sids))


class DirectManager(socketio.AsyncManager):  # type: ignore[misc]  # python-socketio has no types
    """python-socketio's client manager for one process, whose emit starts no task per
    recipient, and where a socket leaves in O(1) (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending_connect = PendingTable()
        self.pending_disconnect = PendingTable()
        self.rooms_of: dict[Any, dict[str, dict[Any, None]]] = {}  # namespace -> sid -> its rooms, in order entered
        self._unchanging: tuple[type, ...] = ()  # see reuse_frames_for
        # event -> (its one argument, namespace, packet, frame): the last frame built for each
        self._last_frames: dict[str, tuple[Any, str, eio_packet.Packet, bytes]] = {}

    def reuse_frames_for(self, *types: type) -> None:
        """Values of these types never change once made (the app's JSON encoded once): an event
        whose one argument is the very object of the last emit of that event is sent the frame
        built then. A newcomer's history and presence state are the same object for everyone
        until they change (cached per position and per version): their packet and frame, a
        copy and a UTF-8 encoding of up to a few hundred KB each, are then built once, not
        once per newcomer. One frame is kept per event name."""
        self._unchanging = types

    def basic_enter_room(self, sid: str, namespace: Any, room: Any, eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.rooms_of.setdefault(namespace, {}).setdefault(sid, {})[room] = None

    def basic_leave_room(self, sid: str, namespace: Any, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        sids = self.rooms_of.get(namespace)
        rooms = sids.get(sid) if sids is not None else None
        if sids is not None and rooms is not None:
            rooms.pop(room, None)
            if not rooms:
                del sids[sid]
                if not sids:
                    del self.rooms_of[namespace]

    def basic_disconnect(self, sid: str, namespace: Any, **kwargs: Any) -> None:
        """BaseManager.basic_disconnect, finding the sid's rooms in `rooms_of` instead of in a
        copy of the namespace's whole room table (one room per socket: O(n) per leave)."""
        if namespace not in self.rooms:
            return
        for room in list(self.rooms_of.get(namespace, {}).get(sid, ())):
            self.basic_leave_room(sid, namespace, room)
        if sid in self.callbacks:
            del self.callbacks[sid]
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if len(sids) == 0:
                    del pending[namespace]

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, yield_every: int | None = None, **kwargs: Any) -> None:
        """python-socketio's emit; `yield_every` N recipients the loop gets a turn (for a
        broadcast to thousands that may interleave with others, presence's versioned diffs:
        one pass over 5,000 sockets holds the loop for ~90 ms)."""
        eio: TunedEngineIOServer = self.server.eio
        if callback is not None or not getattr(eio, "direct_writes", False) or namespace not in self.rooms:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs)
            return
        last = self._last_frames.get(event) if type(data) in self._unchanging else None
        if last is not None and last[0] is data and last[1] == namespace:
            pkt, frame = last[2], last[3]
        else:
            if isinstance(data, tuple):
                arguments = list(data)  # a tuple is several arguments, anything else one
            elif data is None:
                arguments = []
            else:
                arguments = [data]
            encoded = self._encode_event(event, arguments, namespace)
            if encoded is None:  # binary attachments or another serializer: python-socketio's way
                await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs)
                return
            pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
            frame = server_frame(pkt.encode())
            if type(data) in self._unchanging:
                self._last_frames[event] = (data, namespace, pkt, frame)
        skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        now = time.time()
        sockets = eio.sockets
        to_close: list[AsyncSocket] = []
        # One pass without an await (unless yield_every): a concurrent emit cannot get
        # between two recipients. (get_participants iterates a copy of the room.)
        for count, (sid, eio_sid) in enumerate(self.get_participants(namespace, to or room), 1):
            if yield_every and count % yield_every == 0:
                await asyncio.sleep(0)
                now = time.time()
            if sid in skipped:
                continue
            socket = sockets.get(eio_sid)
            if socket is None:
                continue
            websocket = eio.direct_websocket(socket, now)
            if websocket is not None:
                socket.queue.write(websocket, frame)  # now, or after the frames gathered for one write
            elif not eio.queue_now(socket, pkt, now):
                to_close.append(socket)
        for socket in to_close:
            await socket.send(pkt)  # closes the socket that stopped answering pings


    def _encode_event(self, event: str, arguments: list[Any], namespace: str) -> str | None:
        """The Socket.IO EVENT packet as python-socketio's Packet encodes it for JSON data,
        without its walk through the data looking for bytes (a presence list of 50 people
        is 150 calls): bytes make json.dumps fail, and then python-socketio encodes it."""
        if self.server.packet_class is not sio_packet.Packet:
            return None
        try:
            body = sio_packet.Packet.json.dumps([event, *arguments], separators=(",", ":"))
        except TypeError:
            return None
        return f"{sio_packet.EVENT}{body}" if namespace == "/" else f"{sio_packet.EVENT}{namespace},{body}"


log = logging.getLogger(__name__)


class SentinelAddress(Protocol):
    """A `redis+sentinel://` URL as the app has read it (tornado_app/redis/urls.py's SentinelURL)."""

    def auth(self) -> dict[str, Any]:
        """Its credentials, as redis-py's keyword arguments."""
        ...

    def without_secrets(self) -> str:
        """The URL with no credentials, its DB in the path, as python-socketio reads it."""
        ...


PUBLISH_TIMEOUT = 2.0  # seconds, as the bus's (redis/bus.py)
PUBLISH_FAILURE_EVERY = 10.0  # seconds between two log lines about broadcasts that failed


class DirectRedisManager(socketio.AsyncRedisManager, DirectManager):  # type: ignore[misc]  # python-socketio has no types
    """python-socketio's Redis client manager, delivering to this process's sockets with the
    direct emit (its local delivery calls AsyncManager.emit, which DirectManager replaces),
    whose broadcasts to the other processes time out and are never sent twice."""

    connected: bool  # python-socketio's (AsyncRedisManager): whether it holds a connection

    def __init__(self, *args: Any, redis_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retry in redis-py: _publish decides (a timed-out command may have been run).
        options = {"socket_timeout": PUBLISH_TIMEOUT, "socket_connect_timeout": PUBLISH_TIMEOUT,
                   "retry": Retry(NoBackoff(), 0), **(redis_options or {})}
        super().__init__(*args, redis_options=options, **kwargs)
        self._failure_logged_at = float("-inf")
        self.subscribed = asyncio.Event()  # set once Redis has confirmed the channel's SUBSCRIBE
        self.before_delivery: list[Callable[[], None]] = []  # called before each broadcast reaches a socket here

    async def _handle_emit(self, message: Any) -> None:
        """python-socketio's delivery of a broadcast to this process's sockets, after calling
        `before_delivery`'s callbacks (see the module's docstring)."""
        for callback in self.before_delivery:
            callback()
        await super()._handle_emit(message)

    def _redis_connect(self) -> None:
        """python-socketio's, with a pubsub that passes on SUBSCRIBE's confirmation."""
        super()._redis_connect()
        self.pubsub = self.redis.pubsub()

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        """python-socketio's messages, `subscribed` set when the confirmation comes."""
        async for message in super()._redis_listen_with_retries():
            if message.get("type") == "subscribe":
                self.subscribed.set()
            yield message

    @classmethod
    def of(cls, url: str, sentinel: SentinelAddress | None, **kwargs: Any) -> DirectRedisManager:
        """The manager for `url`; `sentinel` is its Sentinel form as the app read it (None for
        a single server's URL). python-socketio reads a `redis+sentinel://` URL itself, but gives its password
        to the primary only, not percent-decoded: it gets the URL without credentials, and
        the password as keyword arguments, for the Sentinels and the primary alike (the
        options it passes to redis-py's `Sentinel`)."""
        if sentinel is None:
            return cls(url, **kwargs)
        sentinel_options = {"socket_timeout": PUBLISH_TIMEOUT, "socket_connect_timeout": PUBLISH_TIMEOUT, **sentinel.auth()}
        return cls(sentinel.without_secrets(), redis_options={**sentinel.auth(), "sentinel_kwargs": sentinel_options}, **kwargs)

    async def _publish(self, data: Any) -> Any:
        """Send `data` to the other processes: python-socketio's two tries, but none after a
        timeout (see the module's docstring); Redis's answer (how many heard it), or None."""
        from redis.exceptions import TimeoutError as RedisTimeoutError

        error: Exception | None = None
        for _ in range(2):
            try:
                if not self.connected:
                    self._redis_connect()
                return await self.redis.publish(self.channel, self.json.dumps(data))
            except RedisTimeoutError as timeout:
                error = timeout  # Redis may have run it: sent again, it could arrive twice
                break
            except Exception as failed:  # noqa: BLE001 (what python-socketio catches: a connection lost, say)
                error = failed
                self.connected = False
        now = time.monotonic()
        if now - self._failure_logged_at >= PUBLISH_FAILURE_EVERY:
            self._failure_logged_at = now
            reached = "may have reached" if isinstance(error, RedisTimeoutError) else "reached"
            log.warning("a broadcast %s only this process's sockets: Redis did not answer (%s); pages elsewhere "
                        "catch up from the history when they reconnect", reached, error)
        return None
