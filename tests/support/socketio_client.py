"""python-socketio's own client, the reference the contract tests hold the server to (the
`socket_client` fixture), recording every event it receives."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import aiohttp
import socketio

from .presence import PresenceView


class SocketClient:
    """A python-socketio client that records every event it receives, in order, per name."""

    def __init__(self, cookie: str | None = None) -> None:
        # A browser sends the session cookie with every request of a socket, and the server
        # insists (a sid alone opens nothing); engineio's client sends its `headers` only
        # with the handshake, so the cookie goes in its HTTP session's own headers.
        http = aiohttp.ClientSession(headers={"Cookie": cookie}) if cookie else None
        self.sio = socketio.AsyncClient(reconnection=False, http_session=http)
        self.received: dict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.presence = PresenceView()
        self.sio.on("*", self._record)
        self.sio.on("connect_error", lambda data: self.received["connect_error"].put_nowait(data))  # noqa: PLW0108 (the queue made when the event comes)
        self.sio.on("disconnect", lambda reason=None: self.received["disconnect"].put_nowait(reason))

    async def _record(self, event: str, *args: Any) -> None:
        self.received[event].put_nowait(args[0] if len(args) == 1 else args)
        if event.startswith("presence_") and len(args) == 1:
            self.presence.event(event, args[0])

    async def sees_online(self, names: list[str], timeout: float = 10) -> None:
        await self.presence.until(names, timeout)

    async def next(self, event: str, timeout: float = 2.0) -> Any:
        """The next payload of `event`, waiting up to `timeout` seconds."""
        return await asyncio.wait_for(self.received[event].get(), timeout)

    def pending(self, event: str) -> int:
        return self.received[event].qsize()

    async def close(self) -> None:
        if self.sio.connected:
            # A polling client's graceful disconnect can wait ~25 s for its long poll: abort.
            await self.sio.eio.disconnect(abort=True)
        # engineio's client leaves its aiohttp session open when a polling handshake is refused.
        http = getattr(self.sio.eio, "http", None)
        if http is not None and not http.closed:
            await http.close()
