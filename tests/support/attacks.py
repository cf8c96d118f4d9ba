"""What a hostile client does to a Socket.IO server, for the attack tests and `bench/hostile.py`.

Each attack targets only the base URL it is given (tests and the benchmark pass a server on
127.0.0.1 that they started themselves). The WebSocket attacks go through raw.py, which does
what no well-behaved client library would: never read, announce a frame and send only part
of it, flood frames without waiting for anything.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp

from tornado_app.settings import PRODUCTION

from .protocol import SOCKETIO_POLLING, opening_sid
from .raw import RawWebSocket


async def flood_frames(base_url: str, seconds: float, frame_bytes: int = 500) -> int:
    """One WebSocket with no cookie that never connects to Socket.IO and never reads, sending
    Engine.IO message frames as fast as the server takes them. Returns the frames sent."""
    ws = await RawWebSocket.open(base_url)
    frame = "4" + "x" * (frame_bytes - 1)
    sent = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while loop.time() < deadline:
            await asyncio.wait_for(ws.send_text(frame), max(0.01, deadline - loop.time()))
            sent += 1
    except (TimeoutError, ConnectionError):
        pass
    finally:
        ws.abort()
    return sent


async def giant_frame(base_url: str, announced: int = 10 * 1024 * 1024, sent: int = 3 * 1024 * 1024) -> bytes:
    """Announce a frame of `announced` bytes and send `sent` of it, reading meanwhile; return
    all the server sent after the handshake (a close frame then EOF, when it refuses the
    frame from its header)."""
    ws = await RawWebSocket.open(base_url)
    answer = bytearray()

    async def read_all() -> None:
        try:
            while chunk := await ws.reader.read(65536):
                answer.extend(chunk)
        except ConnectionError:
            pass

    reading = asyncio.ensure_future(read_all())
    try:
        ws.writer.write(RawWebSocket.frame_header(announced))
        chunk = b"4" * 65536
        for _ in range(sent // len(chunk)):
            ws.writer.write(chunk)
            await asyncio.wait_for(ws.writer.drain(), 2)
    except (TimeoutError, ConnectionError):
        pass  # the server stopped reading or closed: what we want
    try:
        await asyncio.wait_for(reading, 5)
    except TimeoutError:
        answer.extend(b"?")  # still open after 5 s
    finally:
        ws.abort()
    return bytes(answer)


async def oversized_polling_post(http: aiohttp.ClientSession, base_url: str, body_bytes: int = 1_000_000) -> tuple[int, int]:
    """A polling handshake without a cookie, then a POST of `body_bytes` for that session.
    Returns (the POST's status, the status of a GET for the same session afterwards)."""
    base = base_url.rstrip("/")
    async with http.get(base + SOCKETIO_POLLING) as opening:
        text = await opening.text()
    sid = opening_sid(text)
    url = f"{base}{SOCKETIO_POLLING}&sid={sid}"
    async with http.post(url, data=b"4" + b"x" * (body_bytes - 1), timeout=aiohttp.ClientTimeout(total=10)) as post:
        post_status = post.status
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as after:
        return post_status, after.status


async def slow_reader(base_url: str, cookie: str, seconds: float, pong_every: float = PRODUCTION.ping_timeout / 2) -> None:
    """An authenticated socket that connects and then never reads for `seconds`, sending a
    pong every `pong_every` seconds blindly, so that it is never dropped for missing pings
    (a pong counts only within the ping timeout after a ping it cannot see)."""
    ws = await RawWebSocket.open(base_url, {"Cookie": cookie}, receive_buffer=4096)
    try:
        await ws.send_text("40")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            await asyncio.sleep(min(pong_every, deadline - loop.time()))
            await ws.send_text("3")
    except ConnectionError:
        pass  # the server dropped it
    finally:
        ws.abort()


async def open_from(base_url: str, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the server from the loopback address `source` (any of 127/8 on
    Linux), so that an attacker and a bystander on one machine are two client addresses."""
    parts = urlsplit(base_url)
    return await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 80, local_addr=(source, 0))


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def idle_connections(base_url: str, count: int, source: str = "127.0.0.2") -> list[Connection]:
    """`count` connections that send nothing, held open (those that could not be opened
    within 10 s are left out; the caller closes the rest)."""
    gate = asyncio.Semaphore(100)  # no more at once than the server's listen backlog (128) takes

    async def one() -> Connection:
        async with gate:
            return await asyncio.wait_for(open_from(base_url, source), 10)

    opened = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    return [connection for connection in opened if not isinstance(connection, BaseException)]


async def closed_by_the_server(connections: list[Connection], within: float = 2.0) -> int:
    """How many of these connections the server has closed (EOF or reset) within `within` s."""

    async def closed(reader: asyncio.StreamReader) -> bool:
        try:
            return await asyncio.wait_for(reader.read(1), within) == b""
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    return sum(await asyncio.gather(*(closed(reader) for reader, _ in connections)))


def close_all(connections: list[Connection]) -> None:
    """Drop them all at once, with no goodbye (a reset, not a close handshake)."""
    for _, writer in connections:
        writer.transport.abort()


async def unfinished_body(base_url: str, path: str, announced: int, sent: int, source: str = "127.0.0.2",
                          hold: float = 0.0, headers: dict[str, str] | None = None) -> tuple[bytes, asyncio.StreamWriter]:
    """Headers for a POST of `announced` bytes and the first `sent` of them; returns the
    status line the server answered within 3 s (b"" if none) and the open connection."""
    reader, writer = await open_from(base_url, source)
    host = urlsplit(base_url).netloc
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {announced}",
            "Content-Type: application/x-www-form-urlencoded",
            *(f"{name}: {value}" for name, value in (headers or {}).items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    try:
        for offset in range(0, sent, 65536):
            writer.write(b"x" * min(65536, sent - offset))
            await asyncio.wait_for(writer.drain(), 3)
        status = await asyncio.wait_for(reader.readline(), 3)
    except (TimeoutError, ConnectionError):
        status = b""
    return status, writer


async def polling_handshakes(base_url: str, count: int, source: str = "127.0.0.2", concurrency: int = 50) -> list[int]:
    """`count` Engine.IO polling handshakes without a cookie that never poll; their statuses."""
    connector = aiohttp.TCPConnector(limit=concurrency, local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:

        async def one(_: int) -> int:
            async with http.get(base_url.rstrip("/") + SOCKETIO_POLLING) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def raw_post(base_url: str, path: str, body: bytes, close_after: float | None = None,
                   headers: dict[str, str] | None = None) -> bytes:
    """A POST over its own connection; its status line, or b"" when `close_after` is given:
    then the connection is closed that many seconds after the request, unanswered or not."""
    reader, writer = await open_from(base_url)
    head = [f"POST {path} HTTP/1.1", f"Host: {urlsplit(base_url).netloc}", f"Content-Length: {len(body)}",
            "Content-Type: text/plain;charset=UTF-8", *(f"{name}: {value}" for name, value in (headers or {}).items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    try:
        if close_after is not None:
            await asyncio.sleep(close_after)
            return b""
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


async def unanswered_polling_posts(base_url: str, seconds: float, bodies: tuple[bytes, ...] = (b"6", b"2", b"0"),
                                   workers: int = 2) -> int:
    """What no client sends, as anonymous polling POSTs whose connections close 2 ms after
    the request: a polling handshake without a cookie, then a POST of a noop, a ping or an
    open packet on it, in a loop from one address. Returns how many were sent."""
    base = base_url.rstrip("/")
    sent = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:

        async def worker() -> None:
            nonlocal sent
            while loop.time() < deadline:
                async with http.get(base + SOCKETIO_POLLING) as opening:
                    sid = opening_sid(await opening.text())
                await raw_post(base, f"{SOCKETIO_POLLING}&sid={sid}", bodies[sent % len(bodies)], close_after=0.002)
                sent += 1

        await asyncio.gather(*(worker() for _ in range(workers)))
    return sent
