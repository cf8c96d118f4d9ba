"""A Socket.IO client that starts on long-polling and upgrades to a WebSocket when told.

wire.py's WireSocket is WebSocket-only: it is the benchmarks' client and must stay cheap.
This one is for the tests of what happens to packets while a socket upgrades
(patches/test_engineio_server.py, test_transport.py),
where the test, not the client, chooses the moment of the upgrade.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from .protocol import (
    POLLING_SEPARATOR,
    SOCKETIO_POLLING,
    SOCKETIO_WEBSOCKET,
    ack_of,
    event_of,
    one_or_all,
    opening_sid,
)


class UpgradingClient:
    """A client that starts on long-polling and upgrades to a WebSocket when told, as the
    JavaScript client does (probe, wait for the last poll, upgrade): it records every event
    in the order it was delivered, whichever transport carried it."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, cookie: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.headers = {"Cookie": cookie}
        self.events: list[tuple[str, Any]] = []  # (name, payload), in the order delivered
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.upgraded = False
        self.sid = ""
        self._polling = True
        self._poller: asyncio.Task[None] | None = None
        self._websocket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    def received(self, event: str) -> list[Any]:
        """The payloads of `event` received so far, in order."""
        return [payload for name, payload in self.events if name == event]

    def _url(self, endpoint: str = SOCKETIO_POLLING) -> str:
        url = self.base_url + endpoint
        return url + f"&sid={self.sid}" if self.sid else url

    async def open(self) -> None:
        """The polling handshake and the namespace connect; returns once connected."""
        async with self.http.get(self._url(), headers=self.headers) as opening:
            text = await opening.text()
        self.sid = opening_sid(text)
        await self._post("40")
        self._poller = asyncio.ensure_future(self._poll())
        await asyncio.wait_for(self.connected.wait(), 5)

    async def _post(self, packets: str) -> None:
        async with self.http.post(self._url(), data=packets, headers=self.headers) as response:
            assert response.status == 200, await response.text()

    async def _poll(self) -> None:
        while self._polling and not self.disconnected.is_set():
            async with self.http.get(self._url(), headers=self.headers) as response:
                text = await response.text()
                if response.status != 200:
                    self.disconnected.set()
                    return
            for packet in text.split(POLLING_SEPARATOR):
                if self._take(packet):
                    await self._post("3")

    async def upgrade(self) -> None:
        """Probe a WebSocket, wait for the last poll to end, then switch to the WebSocket."""
        ws_url = self._url(SOCKETIO_WEBSOCKET).replace("http", "ws", 1)
        self._websocket = await self.http.ws_connect(ws_url, headers=self.headers, compress=0)
        await self._websocket.send_str("2probe")
        assert await self._websocket.receive_str() == "3probe"
        self._polling = False
        assert self._poller is not None
        await self._poller  # the server ends the pending poll (a noop) once it has seen the probe
        await self._websocket.send_str("5")
        self.upgraded = True
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self._websocket is not None
        async for message in self._websocket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            if self._take(message.data):
                await self._websocket.send_str("3")
        self.disconnected.set()

    def _take(self, packet: str) -> bool:
        """Take one packet from either transport; whether it is a ping to answer."""
        if packet == "2":
            return True
        if packet.startswith("40"):
            self.connected.set()
        elif packet.startswith("42"):
            event, args = event_of(packet)
            self.events.append((event, one_or_all(args)))
        elif packet.startswith("41") or packet == "1":
            self.disconnected.set()
        return False

    async def close(self) -> None:
        """Stop polling and reading; close the WebSocket if there is one (no goodbye packet)."""
        self._polling = False
        if self._websocket is not None:
            await self._websocket.close()
        for task in (self._poller, self._reader):
            if task is not None and not task.done():
                task.cancel()


class PollingPerson:
    """A person's socket on long-polling only, driven by hand: the handshake with their
    cookie, the Socket.IO connect, and `whoami` by ack (for the tests of who may act on a
    polling connection, where the test must see each request's answer)."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, cookie: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.headers = {"Cookie": cookie, "Content-Type": "text/plain;charset=UTF-8"}
        self.sid = ""
        self._acks = 0

    @property
    def url(self) -> str:
        return f"{self.base_url}{SOCKETIO_POLLING}&sid={self.sid}"

    async def open(self) -> None:
        async with self.http.get(self.base_url + SOCKETIO_POLLING, headers=self.headers) as opening:
            assert opening.status == 200, await opening.text()
            self.sid = opening_sid(await opening.text())
        await self.post("40")
        await self.poll_until('40{"sid"')

    async def post(self, packets: str) -> None:
        async with self.http.post(self.url, data=packets, headers=self.headers) as response:
            assert response.status == 200, (response.status, await response.text())

    async def poll_until(self, wanted: str, timeout: float = 10) -> str:
        """Poll until a packet starting with `wanted` comes; returns it."""
        async def polls() -> str:
            while True:
                async with self.http.get(self.url, headers=self.headers) as response:
                    assert response.status == 200, (response.status, await response.text())
                    for packet in (await response.text()).split(POLLING_SEPARATOR):
                        if packet.startswith(wanted):
                            return packet
                        if packet == "2":
                            await self.post("3")

        return await asyncio.wait_for(polls(), timeout)

    async def whoami(self) -> Any:
        self._acks += 1
        await self.post(f'42{self._acks}["whoami"]')
        return ack_of(await self.poll_until(f"43{self._acks}"))[1][0]
