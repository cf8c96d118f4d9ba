"""A bare Socket.IO 4 client over one WebSocket: the wire protocol and nothing more.

python-socketio's AsyncClient is the reference client, and the contract tests use it. It is
heavy per connection, though (its own aiohttp session, background tasks, reconnection
logic), so with thousands of sockets or thousands of connects per second the client, not
the server, would be what is measured. The benchmark and the load tests use this instead:
one aiohttp WebSocket per socket and one reader task, speaking Engine.IO 4 / Socket.IO 5
packets (`0` open, `2`/`3` ping/pong, `40` connect, `44` refused, `41` disconnect,
`42` event, `43` ack).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from typing import Any

import aiohttp


class PresenceView:
    """Who is online as a page sees it: the `presence_state`, then each `presence_diff` in
    version order (a diff before the state, or after a gap, waits; a gap is `gapped`)."""

    def __init__(self) -> None:
        self.people: dict[str, str] = {}  # tag -> name
        self.version: int | None = None
        self.gapped = False
        self._held: dict[int, dict[str, Any]] = {}

    def event(self, name: str, data: Any) -> None:
        if name == "presence_state":
            self.people = {person["tag"]: person["name"] for person in data["people"]}
            self.version, self.gapped = data["version"], False
            self._apply_held()
        elif name == "presence_diff":
            self._held[data["version"]] = data
            if self.version is not None:
                self._apply_held()
                self.gapped = bool(self._held)

    def _apply_held(self) -> None:
        assert self.version is not None
        for version in sorted(self._held):
            if version <= self.version:
                del self._held[version]
            elif version == self.version + 1:
                diff = self._held.pop(version)
                for person in diff["leaves"]:
                    self.people.pop(person["tag"], None)
                for person in diff["joins"]:
                    self.people[person["tag"]] = person["name"]
                self.version = version

    def names(self) -> list[str]:
        """One name per person online, sorted (a name twice for two people of that name)."""
        return sorted(self.people.values())

    async def until(self, names: list[str], timeout: float = 10) -> None:
        """Wait until this view of who is online is `names` (in any order, one per person)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.names() != sorted(names):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"online is {self.names()}, not {sorted(names)}")
            await asyncio.sleep(0.01)


class Refused(Exception):
    """The server answered the Socket.IO connect with CONNECT_ERROR (or refused the upgrade)."""


class WireSocket:
    """One authenticated (or refused) Socket.IO connection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, answer_pings: bool = True) -> None:
        self._ws = ws
        self._answer_pings = answer_pings
        self._events: dict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ack_ids = itertools.count()
        self.closed = asyncio.Event()
        self.close_reason = ""
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
    ) -> WireSocket:
        """Open the WebSocket, send the namespace connect, wait for `40` or `44`."""
        url = base_url.rstrip("/").replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        headers = {}
        if cookie:
            headers["Cookie"] = cookie
        if origin:
            headers["Origin"] = origin
        try:
            ws = await http.ws_connect(url, headers=headers, autoping=True, compress=0, timeout=aiohttp.ClientWSTimeout(ws_close=timeout))
        except aiohttp.WSServerHandshakeError as error:
            raise Refused(f"HTTP {error.status}") from error
        socket = cls(ws, answer_pings)
        try:
            opening = await asyncio.wait_for(ws.receive_str(), timeout)
            if not opening.startswith("0"):
                raise Refused(f"unexpected opening packet {opening[:40]!r}")
            await ws.send_str("40")
            while True:
                packet = await asyncio.wait_for(ws.receive_str(), timeout)
                if packet.startswith("40"):
                    break
                if packet.startswith("44"):
                    raise Refused(json.loads(packet[2:]).get("message", ""))
                socket._dispatch(packet)
        except BaseException:
            await ws.close()
            raise
        socket._reader = asyncio.ensure_future(socket._read())
        return socket

    async def emit(self, event: str, *args: Any) -> None:
        await self._ws.send_str("42" + json.dumps([event, *args], separators=(",", ":")))

    async def send_raw(self, packet: str) -> None:
        """Send any text frame: for fuzzing the protocol layer."""
        await self._ws.send_str(packet)

    async def call(self, event: str, *args: Any, timeout: float = 10) -> Any:
        """Emit with an ack id and wait for the server's answer."""
        ack_id = next(self._ack_ids)
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = answer
        await self._ws.send_str(f"42{ack_id}" + json.dumps([event, *args], separators=(",", ":")))
        try:
            return await asyncio.wait_for(answer, timeout)
        finally:
            self._acks.pop(ack_id, None)

    async def next(self, event: str, timeout: float = 10) -> Any:
        """The next payload of `event` from the server."""
        return await asyncio.wait_for(self._events[event].get(), timeout)

    def pending(self, event: str) -> int:
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
                self._dispatch(message.data)
                if message.data == "2" and self._answer_pings:
                    await self._ws.send_str("3")
                elif message.data.startswith("41"):
                    self.close_reason = "io server disconnect"
                    break
        except (ConnectionError, aiohttp.ClientError):
            pass
        finally:
            self.close_reason = self.close_reason or "transport close"
            self.closed.set()
            for answer in self._acks.values():
                if not answer.done():
                    answer.set_exception(ConnectionError("socket closed"))

    def _dispatch(self, packet: str) -> None:
        if packet.startswith("42"):
            body = packet[2:]
            event, *args = json.loads(body[body.index("[") :])
            self._events[event].put_nowait(args[0] if len(args) == 1 else args)
            if event.startswith("presence_") and len(args) == 1:
                self.presence.event(event, args[0])
        elif packet.startswith("43"):
            body = packet[2:]
            bracket = body.index("[")
            answer = self._acks.get(int(body[:bracket]))
            if answer is not None and not answer.done():
                args = json.loads(body[bracket:])
                answer.set_result(args[0] if len(args) == 1 else args)


async def log_in(http: aiohttp.ClientSession, base_url: str, username: str, origin: str | None = None) -> str:
    """Log in through the form (XSRF token included) and return the `Cookie` header value.

    The session uses its own cookie jar, so give each simulated person their own
    aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) or read the value returned.
    """
    base = base_url.rstrip("/")
    async with http.get(base + "/login") as page:
        html = await page.text()
        xsrf_cookie = page.cookies["_xsrf"].value
    token = html.split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
    headers = {"Cookie": f"_xsrf={xsrf_cookie}"}
    if origin:
        headers["Origin"] = origin
    async with http.post(base + "/login", data={"_xsrf": token, "username": username}, headers=headers, allow_redirects=False) as response:
        if response.status != 303:
            raise RuntimeError(f"login as {username!r} answered {response.status}")
        session = response.cookies["session"].value
    return f'_xsrf={xsrf_cookie}; session="{session}"'


async def logout_token(http: aiohttp.ClientSession, base_url: str, cookie: str) -> str:
    """The XSRF token of the logout form, as the page that holds the button has it."""
    async with http.get(base_url.rstrip("/") + "/logout", headers={"Cookie": cookie}) as page:
        html = await page.text()
    return html.split('name="_xsrf" value="', 1)[1].split('"', 1)[0]


async def post_logout(http: aiohttp.ClientSession, base_url: str, cookie: str, token: str) -> int:
    """Press the logout button: POST /logout with the form's token; returns the HTTP status."""
    async with http.post(base_url.rstrip("/") + "/logout", data={"_xsrf": token}, headers={"Cookie": cookie}, allow_redirects=False) as response:
        return response.status


async def log_out(http: aiohttp.ClientSession, base_url: str, cookie: str) -> int:
    """Open the logout page and press its button; returns the HTTP status of the POST."""
    return await post_logout(http, base_url, cookie, await logout_token(http, base_url, cookie))
