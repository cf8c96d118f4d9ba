"""WebSocket frames as a server sends them (RFC 6455, section 5.2), built once per packet.

A server's frames are unmasked, and ours are uncompressed (see websocket.py), so every
recipient of a broadcast gets the very same bytes: the frame is built once and written to
each connection, instead of each connection building its own.
"""

from __future__ import annotations

import struct

FIN = 0x80
TEXT = 0x1
BINARY = 0x2


def server_frame(payload: str | bytes) -> bytes:
    """One final frame carrying `payload`: a text frame for str, a binary frame for bytes."""
    if isinstance(payload, str):
        first, data = FIN | TEXT, payload.encode()
    else:
        first, data = FIN | BINARY, payload
    length = len(data)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + data
