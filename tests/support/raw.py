"""A WebSocket client written by hand over a bare TCP stream, for the hostile and fault tests.

It speaks just enough RFC 6455 to do what no client library would: never read, write a
frame's header and only part of its body, or hold a connection whose receive buffer is tiny.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from urllib.parse import urlsplit

from .protocol import SOCKETIO_WEBSOCKET


class RawWebSocket:
    """A WebSocket client over a bare TCP stream: frames are written, never read unless asked."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int) -> None:
        self.reader = reader
        self.writer = writer
        self.status = status

    @classmethod
    async def open(cls, base_url: str, headers: dict[str, str] | None = None, receive_buffer: int | None = None,
                   target: str = SOCKETIO_WEBSOCKET) -> RawWebSocket:
        """Upgrade `target` (`/socket.io/` for a handshake) on a new connection; `status` is
        the server's answer (101 = open).

        `receive_buffer` shrinks the kernel's receive buffer, so that a client that never
        reads is felt by the server sooner.
        """
        parts = urlsplit(base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        if receive_buffer is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = await reader.readuntil(b"\r\n\r\n")
        return cls(reader, writer, int(answer.split(b" ", 2)[1]))

    @staticmethod
    def frame_header(length: int, opcode: int = 0x1, final: bool = True, mask: bytes = b"\0\0\0\0") -> bytes:
        """A masked client frame's header (with a zero mask by default, so the payload goes as
        is; with another, the payload must be masked with it)."""
        first = (0x80 if final else 0) | opcode
        if length < 126:
            head = struct.pack("!BB", first, 0x80 | length)
        elif length < 65536:
            head = struct.pack("!BBH", first, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", first, 0x80 | 127, length)
        return head + mask

    async def send_text(self, text: str) -> None:
        """One whole text frame (masked with zeros), waiting until the kernel takes it."""
        data = text.encode()
        self.writer.write(self.frame_header(len(data)) + data)
        await self.writer.drain()

    async def read_some(self, timeout: float) -> bytes:
        """Whatever the server sent within `timeout` (b"" once it closed the connection)."""
        try:
            return await asyncio.wait_for(self.reader.read(65536), timeout)
        except TimeoutError:
            return b"?"  # nothing yet, but the connection is open

    def abort(self) -> None:
        """Drop the TCP connection with no close frame, as a crashed client would."""
        self.writer.transport.abort()
