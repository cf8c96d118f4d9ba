"""Our patched Engine.IO stack with an echo, for the protocol conformance suite
(tests/patches/test_engineio_protocol.py): `python -m tests.support.protocol_server [options]`.

It serves the classes the app's Engine.IO layer is made of, wired as sockets.py and app.py
wire them (the same keyword arguments): python-socketio's server hardened by guard.py
(`ProtocolGuardedServer`), on engineio's server as engineio_server.py changes it
(`TunedEngineIOServer`, with its direct write path on unless `--no-direct-writes`), the
sessions per address and the first poll's deadline (sockets_per_address.py), and two
Tornado handlers on the same server:

- `/engine.io/`: websocket.py's bounded handler alone (the Engine.IO layer as the patches
  make it: what the protocol's own tests are run against);
- `/socket.io/`: the app's handler (transport.py: the bounded handler with the app's policy,
  which refuses polling payloads no Socket.IO client sends), for the few behaviours that
  policy decides.

The app's Socket.IO handlers are replaced by an echo at the Engine.IO level: each message
(text or binary) is sent back as it came, which the protocol's tests need and the app never
does. Nothing else of the app (sessions, chat, presence) is here.

It prints `Serving on http://127.0.0.1:PORT/` once it listens (PORT chosen by the kernel),
and runs until it is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from tornado_app import packet_json
from tornado_app.cookie_secrets import CookieSecrets
from tornado_app.cookies import read_session_id
from tornado_app.patches.guard import ProtocolGuardedServer
from tornado_app.patches.websocket import bounded_engineio_handler
from tornado_app.settings import Settings
from tornado_app.sockets import MAX_PACKET_BYTES
from tornado_app.sockets_per_address import limit_sessions
from tornado_app.transport import make_socketio_handler

# A quick heartbeat, so that the heartbeat tests take seconds, not the app's 13. The official
# suite (socketio/engine.io-protocol) uses 300 ms / 200 ms; here the interval is whole seconds
# because engineio tells the client int(interval) * 1000 (0 for 300 ms: the suite has an
# xfail test for it), and the timeout leaves a loaded machine 1.5 s before a silent client
# (a test between two requests) is pinged out.
PING_INTERVAL = 1.0
PING_TIMEOUT = 0.5
CONNECT_TIMEOUT = 3600.0  # guard.py's deadline for a Socket.IO connect, which no test here sends

log = logging.getLogger("protocol_server")


def echo_server(*, ping_interval: float, ping_timeout: float, max_payload: int, direct_writes: bool) -> ProtocolGuardedServer:
    """The app's Socket.IO server (sockets.py's arguments), whose Engine.IO messages are echoed."""
    library_log = logging.getLogger("protocol_server.library")
    library_log.setLevel(logging.ERROR)  # as sockets.py: the libraries' errors only
    sio = ProtocolGuardedServer(
        async_mode="tornado",
        cors_allowed_origins="*",
        cors_credentials=True,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_http_buffer_size=max_payload,
        json=packet_json,
        async_handlers=False,
        connect_timeout=CONNECT_TIMEOUT,
        session_id_of=read_session_id,
        direct_writes=direct_writes,
        logger=library_log,
        engineio_logger=library_log,
    )

    async def echo(eio_sid: str, data: Any) -> None:
        # engineio's send: through the direct path to an open WebSocket, else the socket's queue.
        await sio.eio.send(eio_sid, data)

    sio.eio.on("message", echo)  # in place of python-socketio's own, which reads Socket.IO packets
    return sio


def make_application(sio: ProtocolGuardedServer, settings: Settings) -> Application:
    secret = CookieSecrets.of(secrets.token_urlsafe(32))
    return Application(
        [
            (r"/engine.io/", bounded_engineio_handler(sio, settings.max_unsent_bytes)),
            (r"/socket.io/", make_socketio_handler(sio, [], settings.max_unsent_bytes)),
        ],
        **secret.tornado_settings(),  # transport.py reads the (absent) session cookie with them
    )


async def serve(arguments: argparse.Namespace) -> None:
    settings = Settings()
    sio = echo_server(ping_interval=arguments.ping_interval, ping_timeout=arguments.ping_timeout,
                      max_payload=arguments.max_payload, direct_writes=arguments.direct_writes)
    limit_sessions(sio.eio, None, settings.first_poll_timeout)  # as app.py (no cap per address here)
    application = make_application(sio, settings)
    listening = bind_sockets(0, "127.0.0.1")  # one socket: an IPv4 address was asked for
    server = HTTPServer(application)
    server.add_sockets(listening)
    port = listening[0].getsockname()[1]
    print(f"Serving on http://127.0.0.1:{port}/", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ping-interval", type=float, default=PING_INTERVAL, help="seconds")
    parser.add_argument("--ping-timeout", type=float, default=PING_TIMEOUT, help="seconds")
    parser.add_argument("--max-payload", type=int, default=MAX_PACKET_BYTES, help="bytes, as the app's")
    parser.add_argument("--no-direct-writes", dest="direct_writes", action="store_false",
                        help="every packet through engineio's queues (the app's --no-fast-path)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(arguments))


if __name__ == "__main__":
    main()
