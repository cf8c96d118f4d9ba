"""engineio's asyncio server, changed where a hostile or vanished client could hold memory,
and where every packet out paid for a queue and a task.

Memory and sessions:
- `AsyncSocket._send_ping`, started through `start_background_task`: each socket's ping
  task sleeps for a whole ping interval (25 s by engineio's default, 8 s by ours) holding its
  socket, queue and event. A closed socket therefore stayed in memory for up to that long;
  under a stream of short-lived connections that was ~9 KiB times the connections of the
  last 25 s: hundreds of MiB.
  Here the task is cancelled as soon as its socket closes. With the direct path on, it is not
  a task at all but a timer (`_send_ping`): no task per socket and ping cycle.
- `AsyncServer.sockets` and `AsyncSocket.close(wait=False)`: engineio's own `disconnect()`
  waits until the client has collected the close packet, which a polling client that
  stopped polling never does, so the session (and the request waiting on it) was held for
  good. `end_session` ends it now, and `disconnect(sid)` (which engineio's request handler
  calls when a poll or a POST fails) is `end_session`: an anonymous POST that made it fail
  and closed its connection held ~8 KiB for good, 115 MiB in 15 s from one client.
- A socket leaves `AsyncServer.sockets` as soon as it has closed (after the 'disconnect'
  event, whose handlers may still read it). engineio keeps a closed polling socket there
  until a GET comes for it, which a client that sent a close packet never sends; and no
  cap or timeout of ours counts a closed socket.
- `AsyncServer._service_task` (started by engineio's first handshake, stopped through
  `service_task_event` and awaited through `service_task_handle` at shutdown): engineio's
  looks for sockets that stopped answering pings one socket at a time, sleeping
  ping_timeout / N between two (an `asyncio.wait_for`, a task and a timer each): at 10,000
  idle sockets and a 5 s timeout, 2,000 wake-ups a second and about half a core
  (bench/idle.py). Here one pass over every socket each second (`SWEEP_SECONDS`, or the ping
  timeout if shorter), awaiting only for the sockets it closes.
- `BaseServer._log_error_once`: a client's bad request (an unknown session id, a wrong
  transport) was logged at ERROR the first time; it is the client's error, not the
  server's, and the access log already has one line for it.

Sessions per client address (`limit_sessions`; the command line's `--max-sockets-per-ip`
and `--first-poll-timeout`): a polling session holds ~20 KiB and no file descriptor, so the
per-connection caps of admission.py do not bound them (1,155 unauthenticated handshakes a
second held +231 MiB). The cap is the app's (a `SessionGate`, given to `limit_sessions`:
../sockets_per_address.py); this is where engineio lets it count and refuse:
- `_trigger_event('connect', sid, environ)`, called by engineio's `_handle_connect` for each
  new session, asks the gate, given the client's address from the handshake's Tornado
  handler; a reason from it is returned, which engineio answers with 401 and that reason,
  and the session is dropped before its ping task starts; a refused WebSocket is closed
  (1013, try again later). Each session accepted, and each one closed, is told to the gate.
- `handle_request`, given engineio's Tornado handler: a GET that names a session is a poll
  (or the upgrade's WebSocket). A polling session with no GET `first_poll_timeout` seconds
  after its handshake is ended; a page polls at once.

The direct path (on unless `direct_writes=False`, the command line's `--no-fast-path`):
engineio sends every packet through the socket's asyncio queue to a writer task that wakes
per packet, and python-socketio's emit starts one task per recipient: a chat to 500 sockets
was 500 tasks, 500 queue hand-offs, 500 writer wake-ups and 500 frames built. Here a packet
for a socket that is on an open WebSocket with nothing of its own still unwritten is written
straight to the connection, and a broadcast builds its frame once (frames.py). Everything
else (polling, a socket upgrading or closing, a socket with packets still queued) takes
engineio's own path, so the order of packets per socket is kept:
- `create_queue` (engineio calls it once per socket) gives each socket an `OutgoingQueue`
  that counts the packets put in it and not yet written out. engineio's writer takes a
  packet from the queue a few loop turns before it writes it (its `poll()` waits through
  `asyncio.wait_for`), so an empty queue does not mean nothing is on its way: the count
  does. A packet written directly while the count is 0 cannot overtake one.
- engineio's `poll` (its WebSocket writer's, and each long poll's) waits for the queue through
  `asyncio.wait_for(queue.get(), timeout)`, which starts a Task to run a coroutine: four per
  connect. `OutgoingQueue.get` returns a future instead, which wait_for waits on as it is.
- `_async['websocket']`, engineio's Tornado WebSocket wrapper, is subclassed so that the
  writes of engineio's writer are counted and the socket's Tornado handler is known once
  the socket is upgraded.

- While python-socketio handles a socket's Socket.IO connect (guard.py's `_handle_connect`:
  `writes_gathered`), the frames for that socket are gathered and written in one stream write
  at its end: the welcome, history, presence state and CONNECT ack of an accepted connect
  were four `send` syscalls (and four Tornado writes), now one. The order is the one they were
  written in (the writer's, the direct path's and a broadcast's alike: all go through
  `OutgoingQueue.write`); past `GATHERED_BYTES` what is gathered is written out at once, and
  the slow-reader cap applies to the joined write as to any (websocket.py); a session ended in
  the middle writes them before its close (`end_session`).

The broadcast side of the direct path (python-socketio's emit) is in managers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol

import engineio
from engineio import packet as eio_packet
from engineio.async_drivers import tornado as engineio_tornado
from engineio.async_socket import AsyncSocket
from tornado.websocket import WebSocketClosedError

from .environ import translate_request
from .frames import server_frame
from .queues import LightQueue, Waiters

MESSAGE = str(eio_packet.MESSAGE)  # an Engine.IO MESSAGE frame starts with "4"
SWEEP_SECONDS = 1.0  # how often the sockets that stopped answering pings are looked for
GATHERED_BYTES = 64 * 1024  # frames gathered for one write (writes_gathered) before they go out anyway


class SessionGate(Protocol):
    """The app's say on Engine.IO sessions (tornado_app/sockets_per_address.py: a cap per
    client address), told of each new session and of each one that closes."""

    def refusal(self, ip: str, handler: Any) -> str | None:
        """Why a new session from `ip` is refused (None: it may open); `handler` is the
        Tornado handler of its handshake, or None."""
        ...

    def opened(self, sid: str, ip: str) -> None:
        """The session `sid`, from `ip`, was accepted."""
        ...

    def closed(self, sid: str) -> None:
        """The session `sid` closed (or was never accepted: then nothing to do)."""
        ...


class RefusalLog(Protocol):
    """How a refusal is told (the app's refusals.RefusalReport: a flood in a few lines)."""

    def refused(self, detail: str) -> None: ...


class FrameWriter(Protocol):
    """The Tornado WebSocket handler of websocket.py, as the direct path uses it."""

    def write_frame(self, frame: bytes) -> None: ...


class OutgoingQueue(LightQueue):
    """A socket's queue of packets to send, counting those put in and not yet sent on.

    A packet leaves the count when a long poll takes it (it answers with it) or when
    engineio's WebSocket writer writes it. (None is engineio's "stop" signal, not a packet.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.unsent = 0
        self.socket: AsyncSocket | None = None  # set when the socket has a WebSocket
        self.websocket: FrameWriter | None = None  # set once that WebSocket carries the socket
        self._getting: Any = Waiters()  # futures given by `get`, waiting for a packet (a list: ~760 B less than a deque)
        self.gathered: list[bytes] | None = None  # frames held for one write (see `gather`)
        self.gathered_bytes = 0

    def write(self, websocket: FrameWriter, frame: bytes) -> None:
        """Write a frame of this socket to its WebSocket now, or after those gathered before it."""
        gathered = self.gathered
        if gathered is None:
            try:
                websocket.write_frame(frame)  # (write_frame below, one call fewer per recipient of a broadcast)
            except WebSocketClosedError:
                pass
            return
        gathered.append(frame)
        self.gathered_bytes += len(frame)
        if self.gathered_bytes > GATHERED_BYTES:
            self._write_gathered()

    def gather(self) -> bool:
        """Hold this socket's frames from now on, to be written in one go by `release`; False
        (nothing held) when no WebSocket carries the socket yet or frames are held already."""
        if self.websocket is None or self.gathered is not None:
            return False
        self.gathered = []
        return True

    def release(self) -> None:
        """Write what was gathered in one stream write, and write each frame as it comes again."""
        if self.gathered is not None:
            self._write_gathered()
            self.gathered = None

    def _write_gathered(self) -> None:
        gathered, websocket = self.gathered, self.websocket
        if gathered:
            self.gathered, self.gathered_bytes = [], 0
            if websocket is not None:  # None: the connection closed, and its frames with it
                write_frame(websocket, gathered[0] if len(gathered) == 1 else b"".join(gathered))

    def _put(self, item: Any) -> None:
        super()._put(item)
        if item is not None:
            self.unsent += 1

    def _get(self) -> Any:
        item = super()._get()
        if item is not None and not (self.socket is not None and self.socket.upgraded):
            self.unsent -= 1  # taken by a long poll; the WebSocket writer's are counted as written
        return item

    def get(self) -> asyncio.Future[Any]:  # type: ignore[override]  # awaited the same way
        """The next packet, as a future rather than a coroutine. engineio's poll (its WebSocket
        writer's and a long poll's) waits through `asyncio.wait_for(queue.get(), timeout)`,
        which wraps a coroutine in a Task: one per packet and per wait, four per connect. A
        future it waits on as it is. A future that wait_for cancelled (its timeout) takes nothing."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        getting = self._getting
        while getting and getting[0].done():
            getting.popleft()  # cancelled by a wait_for that timed out
        if getting or self.empty():
            getting.append(future)
        else:
            future.set_result(self.get_nowait())
        return future

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)
        getting = self._getting
        while getting and not self.empty():
            future = getting.popleft()
            if not future.done():
                future.set_result(self.get_nowait())


class CountingWebSocket(engineio_tornado.WebSocket):  # type: ignore[misc]
    """engineio's Tornado WebSocket wrapper, telling the socket's queue what it writes and
    which Tornado handler carries the socket once it is upgraded."""

    async def __call__(self, environ: dict[str, Any]) -> None:
        queue = self._queue()
        queue.socket = self.handler.__self__
        try:
            await super().__call__(environ)
        finally:
            if queue.websocket is self.tornado_handler:
                queue.websocket = None

    def _queue(self) -> OutgoingQueue:
        # `handler` is the socket's bound `_websocket_handler`.
        queue: OutgoingQueue = self.handler.__self__.queue
        return queue

    async def send(self, message: str | bytes) -> None:
        if self.handler.__self__.upgraded:
            self._queue().unsent -= 1  # from here on only engineio's writer writes through us
        handler = self.tornado_handler
        if not hasattr(handler, "write_frame"):
            await super().send(message)
            return
        # Tornado's write_message would start a task per write; and after any frames gathered.
        queue = self._queue()
        websocket = queue.websocket
        if queue.gathered is not None and websocket is handler and websocket is not None:
            queue.write(websocket, server_frame(message))
            return
        try:
            handler.write_frame(server_frame(message))
        except WebSocketClosedError:
            raise engineio.exceptions.EngineIOError() from None  # what engineio's writer expects

    async def wait(self) -> Any:
        """The next frame for engineio's reader loop; on an upgraded socket, Engine.IO
        MESSAGE frames (all of Socket.IO's) are handed to the socket here, in the reader's
        own task, and only the others (pong, close...) are returned to the loop.

        engineio's loop starts a task and an `asyncio.wait_for` per frame; this skips both
        for the frames that matter. The loop's wait_for (ping interval + timeout, 13 s) is
        also its "client gone" watchdog: pongs still pass through it, and a message that
        arrives more than a ping interval after this wait began is returned to the loop
        too, so that the watchdog never fires in the middle of a handler.

        A Socket.IO packet (a MESSAGE whose data starts with a digit: engineio never decodes
        those as JSON) goes straight to engineio's 'message' handler, python-socketio's, as
        `socket.receive` would take it there (`deliver`): without engineio's Packet, its
        receive and its `_trigger_event` (which asks `inspect.iscoroutinefunction` of the
        handler for every packet). engineio's INFO line for each packet received is not
        written on this path. Other MESSAGE frames take engineio's own way."""
        socket = self.handler.__self__
        if not socket.upgraded:
            return await super().wait()  # the upgrade's probe and upgrade packets
        tornado_handler = self.tornado_handler
        queue = self._queue()
        if queue.websocket is None and hasattr(tornado_handler, "write_frame"):
            # engineio's reader asks for its first frame after the upgrade only once the
            # socket is upgraded and its writer started: from then on this connection carries it.
            queue.websocket = tornado_handler
        server = socket.server
        deliver = server.handlers.get("message") if not server.async_handlers else None
        handover = time.monotonic() + server.ping_interval
        while True:
            frame = await tornado_handler.get_next_message()  # what engineio's wait does, but for:
            if not isinstance(frame, (str, bytes)):
                raise OSError()  # the connection is gone: how engineio's wait tells its loop
            if (type(frame) is not str or frame[:1] != MESSAGE or len(frame) > server.max_http_buffer_size
                    or time.monotonic() > handover):
                return frame
            try:
                if deliver is not None and frame[1:2].isnumeric():  # engineio's test of the same
                    await _deliver(server, deliver, socket.sid, frame[1:])
                else:
                    await socket.receive(eio_packet.Packet(encoded_packet=frame))
            except engineio.exceptions.SocketIsClosedError:
                return None  # the loop then ends the connection, as after its own receive
            except Exception:
                server.logger.exception("Unknown receive error")  # what engineio's loop does


async def _deliver(server: engineio.AsyncServer, handler: Callable[[str, str], Awaitable[Any]], sid: str, data: str) -> None:
    """Call engineio's 'message' handler as its `_trigger_event` does when handlers run
    inline: an error is logged, not raised, and a cancelled handler is let go (engineio's)."""
    try:
        await handler(sid, data)
    except asyncio.CancelledError:
        pass
    except Exception:
        server.logger.exception("message async handler error")


def write_frame(websocket: FrameWriter, frame: bytes) -> None:
    try:
        websocket.write_frame(frame)
    except WebSocketClosedError:
        pass  # engineio's writer loses a packet to a closed connection the same way


class TunedEngineIOServer(engineio.AsyncServer):  # type: ignore[misc]  # engineio has no types
    """engineio.AsyncServer whose closed sockets are freed at once, not a ping interval later,
    and whose packets to an open WebSocket are written directly (see the module docstring)."""

    def __init__(self, *args: Any, direct_writes: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # environ.py: the environ engineio's Tornado driver builds per request, built for less.
        self._async: dict[str, Any] = {**self._async, "translate_request": translate_request}
        self.direct_writes = direct_writes
        if direct_writes:
            self._async = {**self._async, "websocket": CountingWebSocket}
        self._ping_tasks: dict[str, asyncio.Task[Any] | asyncio.TimerHandle] = {}  # sid -> its next ping
        self.session_gate: SessionGate | None = None  # see limit_sessions
        self.first_poll_timeout: float | None = None
        self._never_polled: RefusalLog | None = None
        self._awaiting_first_poll: dict[str, asyncio.TimerHandle] = {}
        self._ending: set[asyncio.Task[Any]] = set()

    def limit_sessions(self, gate: SessionGate | None, first_poll_timeout: float | None, never_polled: RefusalLog) -> None:
        """New sessions only as `gate` allows; a polling session that has not polled
        `first_poll_timeout` seconds after its handshake is ended, and told to `never_polled`
        (None: no gate, no timeout)."""
        self.session_gate = gate
        self.first_poll_timeout = first_poll_timeout
        self._never_polled = never_polled

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        if self._awaiting_first_poll and args:
            request = getattr(args[0], "request", None)  # engineio's Tornado driver passes its handler
            if request is not None and request.method == "GET":
                sid = request.query_arguments.get("sid")
                timer = self._awaiting_first_poll.pop(sid[0].decode("latin-1"), None) if sid else None
                if timer is not None:
                    timer.cancel()
        return await super().handle_request(*args, **kwargs)

    async def _admit_session(self, sid: str, environ: dict[str, Any], **kwargs: Any) -> Any:
        handler = environ.get("tornado.handler")
        ip = handler.request.remote_ip if handler is not None else environ.get("REMOTE_ADDR", "?")
        gate = self.session_gate
        refusal = gate.refusal(ip, handler) if gate is not None else None
        if refusal is not None:
            if handler is not None and getattr(handler, "ws_connection", None) is not None:
                handler.close(1013, refusal)
            return refusal  # engineio answers 401 with this and drops the session
        accepted = await super()._trigger_event("connect", sid, environ, **kwargs)
        if accepted is None or accepted is True:
            if gate is not None:
                gate.opened(sid, ip)
            if self.first_poll_timeout is not None and getattr(handler, "ws_connection", None) is None:
                self._awaiting_first_poll[sid] = asyncio.get_running_loop().call_later(
                    self.first_poll_timeout, self._first_poll_missed, sid, ip)
        return accepted

    def _first_poll_missed(self, sid: str, ip: str) -> None:
        self._awaiting_first_poll.pop(sid, None)
        socket = self.sockets.get(sid)
        if socket is None or socket.upgraded or socket.closed:
            return
        if self._never_polled is not None:
            self._never_polled.refused(f"{self.first_poll_timeout:g} s after the handshake, the latest from {ip}")
        task = asyncio.ensure_future(self.end_session(sid, self.reason.TRANSPORT_CLOSE))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    def _forget_session(self, sid: str) -> None:
        timer = self._awaiting_first_poll.pop(sid, None)
        if timer is not None:
            timer.cancel()
        if self.session_gate is not None:
            self.session_gate.closed(sid)

    def create_queue(self, *args: Any, **kwargs: Any) -> asyncio.Queue[Any]:
        if self.direct_writes and not args and not kwargs:
            return OutgoingQueue()
        return super().create_queue(*args, **kwargs)

    async def send_packet(self, sid: str, pkt: eio_packet.Packet) -> None:
        socket = self.sockets.get(sid)
        if socket is None:
            return  # gone already (engineio logs a warning for this: there is nothing wrong)
        websocket = self.direct_websocket(socket, time.time())
        if websocket is None:
            try:
                await socket.send(pkt)
            except engineio.exceptions.SocketIsClosedError:
                # Closed a moment ago (its ping timed out) but not yet out of the table: the
                # packet is lost with the connection. engineio raises here, and python-socketio
                # sends from a task per recipient, so asyncio logged "never retrieved" errors.
                pass
        else:
            socket.queue.write(websocket, server_frame(pkt.encode()))

    @contextlib.contextmanager
    def writes_gathered(self, sid: str) -> Iterator[None]:
        """Within this block the frames for socket `sid` are gathered and then written in one
        stream write (OutgoingQueue.gather): for a socket on the direct path; others as ever."""
        socket = self.sockets.get(sid)
        queue = socket.queue if socket is not None else None
        if not (isinstance(queue, OutgoingQueue) and queue.gather()):
            yield
            return
        try:
            yield
        finally:
            queue.release()

    def direct_websocket(self, socket: AsyncSocket, now: float) -> FrameWriter | None:
        """The connection to write the socket's next packet to directly, if the direct path
        may carry it (upgraded, open, nothing of its own still unsent); None: use its queue."""
        queue = socket.queue
        websocket: FrameWriter | None = getattr(queue, "websocket", None)
        if websocket is None or queue.unsent or socket.closing or socket.closed or socket.upgrading:
            return None
        if socket.last_ping and now - socket.last_ping > self.ping_timeout:
            return None  # socket.send closes a socket that stopped answering pings
        return websocket

    def queue_now(self, socket: AsyncSocket, pkt: eio_packet.Packet, now: float) -> bool:
        """What `socket.send` does when it need not close the socket, without an await;
        False when the socket must go through `socket.send` (it stopped answering pings)."""
        if socket.closed:
            return True  # nothing to send to; engineio's send would raise
        if socket.last_ping and now - socket.last_ping > self.ping_timeout:
            return False
        socket.queue.put_nowait(pkt)
        return True

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Task[Any] | asyncio.TimerHandle:
        owner = getattr(target, "__self__", None)
        if not (isinstance(owner, AsyncSocket) and getattr(target, "__func__", None) is AsyncSocket._send_ping):
            return super().start_background_task(target, *args, **kwargs)
        # One entry per open socket: each ping cycle's replaces the last one's. (engineio's
        # schedule_ping, the one caller, does nothing with what is returned.)
        ping: asyncio.Task[Any] | asyncio.TimerHandle
        if self.direct_writes:
            ping = asyncio.get_running_loop().call_later(self.ping_interval, self._send_ping, owner)
        else:
            ping = super().start_background_task(target, *args, **kwargs)
        self._ping_tasks[owner.sid] = ping
        return ping

    def _send_ping(self, socket: AsyncSocket) -> None:
        """engineio's `AsyncSocket._send_ping` after its sleep, on a timer rather than in a task
        that sleeps: a task per socket and ping interval (one a connect, 1,250 a second at
        10,000 idle sockets), each holding a coroutine's frame for the interval. The PING is
        queued as engineio's `send` queues it: the socket cannot be past its ping timeout,
        its `last_ping` having just been set (tests/patches/test_internals.py compares)."""
        self._ping_tasks.pop(socket.sid, None)  # this timer: fired, nothing to cancel any more
        if not socket.closing and not socket.closed:
            socket.last_ping = time.time()
            socket.queue.put_nowait(eio_packet.Packet(eio_packet.PING))

    async def _service_task(self) -> None:
        """Close the sockets whose ping went unanswered for ping_timeout, in one pass per
        sweep rather than engineio's sleep between every two sockets (module docstring).
        Ends when engineio's shutdown sets `service_task_event`."""
        self.service_task_event = self.create_event()
        period = min(SWEEP_SECONDS, self.ping_timeout)
        while True:
            try:
                await asyncio.wait_for(self.service_task_event.wait(), timeout=period)
                return
            except TimeoutError:
                pass
            try:
                await self._close_silent_sockets()
            except Exception:  # what engineio's own does: log it and sweep again
                self.logger.exception("service task exception")

    async def _close_silent_sockets(self) -> None:
        now, timeout = time.time(), self.ping_timeout  # engineio's last_ping is time.time()
        silent = []
        for sid, socket in list(self.sockets.items()):
            if socket.closed:
                if self.sockets.get(sid) is socket:
                    del self.sockets[sid]
            elif not socket.closing and socket.last_ping and now - socket.last_ping > timeout:
                silent.append(socket)
        for socket in silent:
            if not socket.closed:
                await socket.check_ping_timeout()  # closes it, as engineio's sweep does

    def _log_error_once(self, message: str, message_key: str) -> None:
        self.logger.info(message)

    async def disconnect(self, sid: str | None = None) -> None:
        """engineio's request handler calls this when a poll or a POST of `sid` fails; its
        own version waits for a GET to collect the close packet (see the module docstring)."""
        if sid is None:
            await super().disconnect()  # every socket, when the server stops
        else:
            await self.end_session(sid, self.reason.SERVER_DISCONNECT)

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        # Every socket that closes passes here ('disconnect' comes first in AsyncSocket.close).
        if event == "disconnect":
            sid = args[0]
            self._cancel_ping(sid)
            self._forget_session(sid)
            try:
                return await super()._trigger_event(event, *args, **kwargs)
            finally:
                closing = self.sockets.get(sid)
                if closing is not None and closing.closing:
                    del self.sockets[sid]  # closed from here on: nothing may find it any more
        if event == "connect":
            return await self._admit_session(*args, **kwargs)
        return await super()._trigger_event(event, *args, **kwargs)

    def _cancel_ping(self, sid: str) -> None:
        ping = self._ping_tasks.pop(sid, None)
        # A socket closed by its own ping task (ping timeout) lets that task end by itself.
        if ping is not None and ping is not asyncio.current_task():
            ping.cancel()

    async def flush(self, timeout: float, sids: Iterable[str] | None = None) -> None:
        """Wait (at most `timeout`) until the queued packets of every socket (or of those
        `sids`) have been taken by its writer or its long poll: a packet queued just before a
        close is otherwise lost."""
        sockets = self.sockets.values() if sids is None else [self.sockets[sid] for sid in sids if sid in self.sockets]
        queues = [engineio_socket.queue.join() for engineio_socket in sockets]
        if queues:
            try:
                await asyncio.wait_for(asyncio.gather(*queues), timeout)
            except TimeoutError:
                pass  # a polling client that is not polling right now: it misses the packet

    async def end_session(self, sid: str, reason: str, websocket_handler: Any = None) -> None:
        """End an Engine.IO session now, without waiting for the client to collect the close
        packet (a pending long-poll GET still receives it). The WebSocket that carries the
        session is closed too rather than after its ping timeout: the one the session was
        upgraded to (its queue knows it: CountingWebSocket), else `websocket_handler`, the
        handler that opened the session. (That one alone is the long-poll's for a page that
        began by polling, as browsers do: its WebSocket stayed open until the process exited.)"""
        engineio_socket = self.sockets.pop(sid, None)
        if engineio_socket is None:
            return
        queue = engineio_socket.queue
        carrier = getattr(queue, "websocket", None) or websocket_handler
        if isinstance(queue, OutgoingQueue):
            queue.release()  # what was gathered goes before the close
        await engineio_socket.close(wait=False, abort=False, reason=reason)
        if engineio_socket.upgraded and carrier is not None:
            carrier.close()
