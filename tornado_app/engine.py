"""engineio's asyncio server, changed where a hostile or vanished client could hold memory.

This module reaches into engineio's internals (written against python-engineio 4.15; the
version range is pinned in setup.cfg, and tests/test_engine.py fails loudly if the shapes
relied on here change):

- `AsyncSocket._send_ping`, started through `start_background_task`: each socket's ping
  task sleeps for a whole ping interval (25 s) holding its socket, queue and event. A closed
  socket therefore stayed in memory for up to 25 s; under a stream of short-lived
  connections (a client opening and dropping connections as fast as it can) that was
  ~9 KiB times the connections of the last 25 s: hundreds of MiB. Here the task is
  cancelled as soon as its socket closes.
- `AsyncServer.sockets` and `AsyncSocket.close(wait=False)`: engineio's own `disconnect()`
  waits until the client has collected the close packet, which a polling client that
  stopped polling never does, so the session (and the request waiting on it) was held for
  good. `end_session` ends it now.
- `BaseServer._log_error_once`: a client's bad request (an unknown session id, a wrong
  transport) was logged at ERROR the first time; it is the client's error, not the
  server's, and the access log already has one line for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import engineio
from engineio.async_socket import AsyncSocket


class PromptlyFreeingEngineIOServer(engineio.AsyncServer):
    """engineio.AsyncServer whose closed sockets are freed at once, not a ping interval later."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ping_tasks: dict[str, asyncio.Task[Any]] = {}

    def start_background_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = super().start_background_task(target, *args, **kwargs)
        owner = getattr(target, "__self__", None)
        if isinstance(owner, AsyncSocket) and getattr(target, "__func__", None) is AsyncSocket._send_ping:
            # One entry per open socket: each ping cycle's task replaces the last one's.
            self._ping_tasks[owner.sid] = task
        return task

    def _log_error_once(self, message: str, message_key: str) -> None:
        self.logger.info(message)

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        # Every socket that closes passes here ('disconnect' comes first in AsyncSocket.close).
        if event == "disconnect":
            self._cancel_ping(args[0])
        return await super()._trigger_event(event, *args, **kwargs)

    def _cancel_ping(self, sid: str) -> None:
        task = self._ping_tasks.pop(sid, None)
        # A socket closed by its own ping task (ping timeout) lets that task end by itself.
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def flush(self, timeout: float) -> None:
        """Wait (at most `timeout`) until every socket's queued packets have been taken by its
        writer or its long poll: a packet queued just before a close is otherwise lost."""
        queues = [engineio_socket.queue.join() for engineio_socket in self.sockets.values()]
        if queues:
            try:
                await asyncio.wait_for(asyncio.gather(*queues), timeout)
            except asyncio.TimeoutError:
                pass  # a polling client that is not polling right now: it misses the packet

    async def end_session(self, sid: str, reason: str, websocket_handler: Any = None) -> None:
        """End an Engine.IO session now, without waiting for the client to collect the close
        packet (a pending long-poll GET still receives it). `websocket_handler`, when the
        session is on a WebSocket, is closed too rather than after its ping timeout."""
        engineio_socket = self.sockets.pop(sid, None)
        if engineio_socket is None:
            return
        await engineio_socket.close(wait=False, abort=False, reason=reason)
        if engineio_socket.upgraded and websocket_handler is not None:
            websocket_handler.close()
