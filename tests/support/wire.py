"""A bare Socket.IO 4 client over one WebSocket: the wire protocol and nothing more.

python-socketio's AsyncClient is the reference client, and the contract tests use it. It is
heavy per connection, though (its own aiohttp session, background tasks, reconnection
logic), so with thousands of sockets or thousands of connects per second the client, not
the server, would be what is measured. The benchmarks and the load tests use this instead:
one aiohttp WebSocket per socket and one reader task (packets: see protocol.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl as tls
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Self

import aiohttp

from .presence import PresenceView
from .protocol import ack_of, event_of, event_packet, one_or_all, websocket_url


class Refused(Exception):
    """The server answered the Socket.IO connect with CONNECT_ERROR (or refused the upgrade:
    then `status` is the HTTP status of its answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WireSocket:
    """One authenticated (or refused) Socket.IO connection.

    `answer_pings=False` makes a client that never answers a ping. `stay_after_disconnect`
    makes one that keeps its connection open (answering pings) after the server's `41`, as a
    client that leaves the namespace but not the connection would: `closed` is then set only
    when the server closes the connection itself.
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, answer_pings: bool = True, stay_after_disconnect: bool = False) -> None:
        self._ws = ws
        self._answer_pings = answer_pings
        self._stay_after_disconnect = stay_after_disconnect
        self._events: dict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ack_ids = itertools.count()
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.pongs = 0  # pings answered: a test waits for cycles rather than sleeping through them
        self._reader: asyncio.Task[None] | None = None
        self.presence = PresenceView()

    @classmethod
    async def connect(
        cls,
        http: aiohttp.ClientSession,
        base_url: str,
        cookie: str | None = None,
        origin: str | None = None,
        timeout: float = 10,
        answer_pings: bool = True,
        stay_after_disconnect: bool = False,
        headers: Mapping[str, str] | None = None,
        ssl: tls.SSLContext | bool = True,
        auth: Mapping[str, Any] | None = None,
    ) -> Self:
        """Open the WebSocket, send the namespace connect (with `auth`, a page's resume
        payload, if given), wait for `40` or `44`.

        `headers` go with the upgrade request as they are (a proxy's, say), besides the
        `cookie` and `origin`; `ssl` is aiohttp's (a context that trusts a test certificate).
        """
        request_headers = dict(headers or {})
        if cookie:
            request_headers["Cookie"] = cookie
        if origin:
            request_headers["Origin"] = origin
        try:
            ws = await http.ws_connect(websocket_url(base_url), headers=request_headers, autoping=True, compress=0,
                                       timeout=aiohttp.ClientWSTimeout(ws_close=timeout), ssl=ssl)
        except aiohttp.WSServerHandshakeError as error:
            raise Refused(f"HTTP {error.status}", status=error.status) from error
        socket = cls(ws, answer_pings, stay_after_disconnect)
        try:
            opening = await asyncio.wait_for(ws.receive_str(), timeout)
            if not opening.startswith("0"):
                raise Refused(f"unexpected opening packet {opening[:40]!r}")
            await ws.send_str("40" + ("" if auth is None else json.dumps(dict(auth), separators=(",", ":"))))
            while True:
                packet = await asyncio.wait_for(ws.receive_str(), timeout)
                if packet.startswith("40"):
                    break
                if packet.startswith("44"):
                    raise Refused(json.loads(packet[2:]).get("message", ""))
                # A paused machine can deliver the first ping before the `40`: answer it
                # as a real client does, or a client meant to answer is pinged out.
                await socket._received(packet)
        except BaseException:
            await ws.close()
            raise
        socket._reader = asyncio.ensure_future(socket._read())
        return socket

    async def emit(self, event: str, *args: Any) -> None:
        await self._ws.send_str(event_packet(event, *args))

    async def send_raw(self, packet: str) -> None:
        """Send any text frame: for fuzzing the protocol layer."""
        await self._ws.send_str(packet)

    async def call(self, event: str, *args: Any, timeout: float = 10) -> Any:
        """Emit with an ack id and wait for the server's answer."""
        ack_id = next(self._ack_ids)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = answer
        await self._ws.send_str(event_packet(event, *args, ack_id=ack_id))
        try:
            return await asyncio.wait_for(answer, timeout)
        finally:
            self._acks.pop(ack_id, None)

    async def next(self, event: str, timeout: float = 10) -> Any:
        """The next payload of `event` from the server."""
        return await asyncio.wait_for(self._events[event].get(), timeout)

    def pending(self, event: str) -> int:
        """How many payloads of `event` arrived and were not yet taken with `next`."""
        return self._events[event].qsize()

    async def sees_online(self, names: list[str], timeout: float = 10) -> None:
        await self.presence.until(names, timeout)

    async def close(self) -> None:
        """A clean client disconnect: Socket.IO `41`, then the WebSocket close handshake."""
        if not self._ws.closed:
            try:
                await self._ws.send_str("41")
            except ConnectionError:
                pass
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    def abort(self) -> None:
        """Drop the TCP connection with no goodbye at all, as a crashed client would."""
        connection = self._ws._response.connection  # noqa: SLF001 (aiohttp exposes no public way)
        transport = connection.transport if connection is not None else None
        if transport is not None:
            transport.abort()

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                await self._received(message.data)
                if message.data.startswith("41"):
                    self.close_reason = "io server disconnect"
                    if not self._stay_after_disconnect:
                        break
        except (ConnectionError, aiohttp.ClientError):
            pass
        finally:
            self.close_reason = self.close_reason or "transport close"
            self.closed.set()
            for answer in self._acks.values():
                if not answer.done():
                    answer.set_exception(ConnectionError("socket closed"))

    async def _received(self, packet: str) -> None:
        self._dispatch(packet)
        if packet == "2" and self._answer_pings:
            await self._ws.send_str("3")
            self.pongs += 1

    def _dispatch(self, packet: str) -> None:
        if packet.startswith("42"):
            event, args = event_of(packet)
            self._events[event].put_nowait(one_or_all(args))
            if event.startswith("presence_") and len(args) == 1:
                self.presence.event(event, args[0])
        elif packet.startswith("43"):
            ack_id, args = ack_of(packet)
            answer = self._acks.get(ack_id)
            if answer is not None and not answer.done():
                answer.set_result(one_or_all(args))
            elif answer is None:  # the answer to a packet sent raw, with an ack id of its own
                self._events[f"ack {ack_id}"].put_nowait(one_or_all(args))
