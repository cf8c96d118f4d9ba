"""The Engine.IO 4 / Socket.IO 5 wire as the hand-written clients here speak it.

Engine.IO packets: `0` open, `1` close, `2`/`3` ping/pong, `4` message, `5` upgrade, `6` noop.
A Socket.IO packet rides in a message: `40` connect, `41` disconnect, `42` event, `43` ack,
`44` connect refused. JSON only: this server takes no binary packets.
"""

from __future__ import annotations

import json
from typing import Any

SOCKETIO_WEBSOCKET = "/socket.io/?EIO=4&transport=websocket"
SOCKETIO_POLLING = "/socket.io/?EIO=4&transport=polling"
POLLING_SEPARATOR = "\x1e"  # between the packets of one polling body


def websocket_url(base_url: str) -> str:
    """The WebSocket endpoint of the server at this http(s) URL, as ws:// (or wss://)."""
    return base_url.rstrip("/").replace("http", "ws", 1) + SOCKETIO_WEBSOCKET


def opening_sid(opening: str) -> str:
    """The Engine.IO session id in an open packet (`0{"sid":"...",...}`)."""
    return opening.split('"sid":"', 1)[1].split('"', 1)[0]


def event_packet(event: str, *args: Any, ack_id: int | None = None) -> str:
    """`42["event",...]` in compact JSON, with an ack id when an answer is wanted."""
    return f"42{'' if ack_id is None else ack_id}" + json.dumps([event, *args], separators=(",", ":"))


def event_of(packet: str) -> tuple[str, list[Any]]:
    """The name and arguments of a `42` packet (an ack id before the list is skipped)."""
    body = packet[2:]
    event, *args = json.loads(body[body.index("[") :])
    return event, args


def ack_of(packet: str) -> tuple[int, list[Any]]:
    """The ack id and arguments of a `43` packet."""
    body = packet[2:]
    bracket = body.index("[")
    return int(body[:bracket]), json.loads(body[bracket:])


def one_or_all(args: list[Any]) -> Any:
    """One argument as itself, several as their list: how these clients hand payloads over."""
    return args[0] if len(args) == 1 else args
