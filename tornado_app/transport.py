"""The Tornado handler that carries Socket.IO, hardened for a browser-facing,
cookie-authenticated endpoint that anyone can reach.

It is engineio's Tornado handler with bounded reading and writing (patches/websocket.py),
and adds the policy of who may use it:
- the Origin policy, on both transports, before anything is upgraded;
- no resource loads (Sec-Fetch), no JSONP, and an Engine.IO session only with the session
  cookie it was opened with;
- no XSRF check (polling POSTs carry no form token; the Origin policy protects them);
- an oversized polling POST is answered at once and its Engine.IO session ended.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from tornado.web import HTTPError, RequestHandler

from .cookies import read_session_id
from .origins import origin_allowed
from .patches.guard import ProtocolGuardedServer
from .patches.websocket import DEFAULT_MAX_UNSENT_BYTES, bounded_engineio_handler

log = logging.getLogger(__name__)

# What browsers send in Sec-Fetch-Mode / Sec-Fetch-Dest for a resource load that is not the
# Socket.IO client's fetch or WebSocket (a <script>, <img>, <iframe>, a navigation).
NOT_A_SOCKET_MODES = frozenset({"no-cors", "navigate", "nested-navigate"})
SOCKET_DESTINATIONS = frozenset({"empty", "websocket"})


def make_socketio_handler(
    sio: ProtocolGuardedServer,
    allowed_origins: Iterable[str],
    max_unsent_bytes: int = DEFAULT_MAX_UNSENT_BYTES,
) -> type[RequestHandler]:
    """A handler class for `/socket.io/` bound to this server, Origin policy and limits."""
    allowed = frozenset(allowed_origins)
    max_packet_bytes: int = sio.eio.max_http_buffer_size

    class SocketIOHandler(bounded_engineio_handler(sio, max_unsent_bytes)):  # type: ignore[misc]
        # Set when this request's refusal has been logged already, so the access log adds
        # no second line for it.
        refusal_logged = False

        def set_default_headers(self) -> None:
            super().set_default_headers()
            # No answer of this endpoint is ever a script, a style sheet or an image.
            self.set_header("X-Content-Type-Options", "nosniff")

        def prepare(self) -> None:
            refusal = self._refusal()
            if refusal is not None:
                status, reason, detail = refusal
                log.info("refused socket from %s: %s", self.request.remote_ip, detail)
                self.refusal_logged = True
                raise HTTPError(status, reason=reason)

        def _refusal(self) -> tuple[int, str, str] | None:
            """(status, reason, what to log) when this request may not reach engineio: on both
            transports before anything is upgraded (engineio's handler accepts a WebSocket
            first and refuses late, so a client would hang for tens of seconds)."""
            headers = self.request.headers
            origin = headers.get("Origin")
            if origin is not None and not self.check_origin(origin):
                return 403, "origin not allowed", f"origin {origin!r} not allowed"
            # A <script>, <img> or <iframe> on any page may load this URL with the person's
            # cookie (a same-site page even with SameSite=Lax) and without an Origin header.
            # Browsers mark such loads; the Socket.IO client only ever fetches or upgrades.
            if (headers.get("Sec-Fetch-Mode") in NOT_A_SOCKET_MODES
                    or headers.get("Sec-Fetch-Dest", "empty") not in SOCKET_DESTINATIONS):
                return 403, "not a socket request", (f"not a socket request (Sec-Fetch-Dest {headers.get('Sec-Fetch-Dest')!r}, "
                                                     f"Sec-Fetch-Mode {headers.get('Sec-Fetch-Mode')!r})")
            if "j" in self.request.query_arguments:
                # JSONP wraps packets in a script that any page can include; never served.
                return 400, "JSONP is not served", "JSONP polling is not served"
            eio_sid = self.get_query_argument("sid", None)
            if eio_sid is not None and not sio.same_session(eio_sid, read_session_id(self)):
                # An Engine.IO session belongs to the session cookie it was opened with: a
                # stolen sid alone (a leaked URL, a script that read it) opens nothing.
                return 403, "connection of another session", "the connection belongs to another session"
            return None

        async def post(self, *args: Any, **kwargs: Any) -> None:
            if len(self.request.body) > max_packet_bytes:
                await self._refuse_oversized_post()
                return
            await super().post(*args, **kwargs)

        async def _refuse_oversized_post(self) -> None:
            """engineio answers an over-long payload by closing the socket and then waiting
            for a GET to collect the close packet, so the POST would hang holding its body.
            Answer now and end the Engine.IO session (a pending GET gets the close)."""
            log.info("refused a polling packet of %d bytes from %s (at most %d)",
                     len(self.request.body), self.request.remote_ip, max_packet_bytes)
            self.refusal_logged = True
            sid = self.get_query_argument("sid", None)
            if sid:
                await sio.end_engineio_session(sid, sio.eio.reason.TRANSPORT_ERROR)
            self.set_status(413)
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish("packet too large\n")

        def check_origin(self, origin: str) -> bool:
            return origin_allowed(origin, self.request.protocol, self.request.host, allowed)

        def check_xsrf_cookie(self) -> None:
            """Skip Tornado's XSRF check: polling POSTs carry no form token; Origin protects us."""

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish(f"{self._reason}\n")

    return SocketIOHandler
