"""A WebSocket that engineio will not serve is refused before it is upgraded, and one it has
stopped serving is closed.

engineio's Tornado driver (async_drivers/tornado.py) accepts every WebSocket request first
(101, in its handler's `get`) and only then, from `open`, hands it to
`AsyncServer.handle_request`, which reads the query and the session. Its refusals there (a
bad or missing `EIO`, an unknown `transport`, a sid that is not open, or whose session is
upgraded already) are HTTP responses a WebSocket cannot carry: the driver drops them, and
the connection stayed open, silent and with no timeout, for as long as the client liked
(bounded only by admission.py's caps per address). The same when `handle_request` returns
after a WebSocket upgrade that failed (no probe, no upgrade packet): engineio leaves the
connection open. Here, relying on engineio's `transports`, `sockets` and each socket's
`connected` and `upgraded` (tests/patches/test_upgrades.py checks them against engineio's
own answers):

- `websocket_refusal` says, before the upgrade, why engineio would not serve a WebSocket
  request (its own words, without the sid): `refuse_websocket` answers 400 with it instead
  of 101, and closes the connection (Tornado's HTTP/1 connection, `request.connection`,
  would otherwise keep it for a next request: a client refused a WebSocket has no use for
  it, RFC 6455 4.1, and a hostile one would hold it until the idle timeout);
- `serve_websocket` runs engineio's `handle_request` for an accepted WebSocket, as the
  driver's `open` does, and closes the connection once engineio is done with it (at once for
  a request that changed between the check and the upgrade; a no-op after a session's end,
  which closes it already).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from tornado.http1connection import HTTP1Connection
from tornado.web import RequestHandler

log = logging.getLogger(__name__)

WEBSOCKET = "websocket"
# engineio's words for the same refusals over polling (AsyncServer.handle_request), but the
# sid, which logs must not carry; the last two are engineio's cases whose words (`Not
# connected`, `Unexpected HTTP request`) would not say what is wrong with a WebSocket.
INVALID_TRANSPORT = "Invalid transport"
NOT_A_WEBSOCKET_TRANSPORT = "Invalid websocket upgrade"
UNSUPPORTED_VERSION = "The client is using an unsupported version of the Socket.IO or Engine.IO protocols"
INVALID_SESSION = "Invalid session"
NOT_CONNECTED = "Session not connected yet"
UPGRADED_ALREADY = "Session upgraded already"

# engineio's handle_request tasks of the open WebSockets: asyncio keeps only a weak
# reference to a task (the driver keeps none).
_serving: set[asyncio.Task[Any]] = set()


def websocket_refusal(eio: Any, query: str) -> str | None:
    """Why engineio server `eio` will not serve a WebSocket request with this query string
    (None: it will), read as engineio reads it (`parse_qs`: blanks dropped, the first value
    of each parameter taken).

    The request must name `transport=websocket`: without it engineio takes it for a polling
    request (a handshake then opens a polling session whose open packet the WebSocket cannot
    carry). Every other condition is engineio's own for a GET."""
    arguments = parse_qs(query)
    transport = arguments.get("transport", ["polling"])[0]
    if transport not in eio.transports:
        return INVALID_TRANSPORT
    if transport != WEBSOCKET:
        return NOT_A_WEBSOCKET_TRANSPORT
    sid = arguments.get("sid", [None])[0]
    if sid is None:
        return UNSUPPORTED_VERSION if arguments.get("EIO") != ["4"] else None
    socket = eio.sockets.get(sid)
    if socket is None:
        return INVALID_SESSION
    if not socket.connected:
        return NOT_CONNECTED
    if socket.upgraded:
        return UPGRADED_ALREADY
    return None


def refuse_websocket(handler: RequestHandler, reason: str) -> None:
    """Answer this WebSocket request 400 with `reason` (one line), then close its connection."""
    handler.set_status(400, reason=reason)
    handler.set_header("Content-Type", "text/plain; charset=UTF-8")
    handler.set_header("Connection", "close")  # what the client is told; closing is ours
    connection = handler.request.connection
    answered = handler.finish(f"{reason}\n")
    if isinstance(connection, HTTP1Connection):  # HTTP/1 is the only way to ask for a WebSocket
        answered.add_done_callback(lambda _: connection.close())


def serve_websocket(eio: Any, handler: Any) -> None:
    """Hand this accepted WebSocket (a Tornado handler of engineio's driver) to engineio, as
    the driver's `open` does, and close it once engineio returns: engineio's session on it
    has ended, or engineio refused it or a failed upgrade on it (an answer it cannot send)."""
    task = asyncio.ensure_future(eio.handle_request(handler))
    _serving.add(task)
    task.add_done_callback(partial(_served, handler))


def _served(handler: Any, task: asyncio.Task[Any]) -> None:
    _serving.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # The driver's task would have reported it as never retrieved, at garbage collection.
        log.error("engineio's WebSocket request handler failed", exc_info=task.exception())
    if handler.ws_connection is not None:
        handler.close()
