"""The Tornado handler that carries Socket.IO, hardened for a browser-facing,
cookie-authenticated endpoint that anyone can reach.

It is engineio's Tornado handler with bounded reading and writing (patches/websocket.py),
and adds the policy of who may use it:
- the Origin policy, on both transports, before anything is upgraded;
- no resource loads (Sec-Fetch), no JSONP, and an Engine.IO session only with the session
  cookie it was opened with: the query must name exactly what engineio will act on;
- no XSRF check (polling POSTs carry no form token; the Origin policy protects them);
- an oversized polling POST is answered at once and its Engine.IO session ended (only by
  a POST that may act on it);
- a polling payload engineio would choke on is refused before engineio sees it;
- a WebSocket engineio would not serve is refused before it is upgraded (patches/upgrades.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from tornado.escape import parse_qs_bytes
from tornado.httputil import HTTPHeaders
from tornado.web import HTTPError, RequestHandler

from .cookie_secrets import CookieSecrets
from .cookies import read_session_id, session_id_in_headers
from .logs import facts
from .origins import origin_allowed
from .patches.guard import ProtocolGuardedServer
from .patches.websocket import bounded_engineio_handler, polling_payload_problem
from .refusals import RefusalReport

log = logging.getLogger(__name__)

# What browsers send in Sec-Fetch-Mode / Sec-Fetch-Dest for a resource load that is not the
# Socket.IO client's fetch or WebSocket (a <script>, <img>, <iframe>, a navigation).
NOT_A_SOCKET_MODES = frozenset({"no-cors", "navigate", "nested-navigate"})
SOCKET_DESTINATIONS = frozenset({"empty", "websocket"})

# The query parameters engineio acts on. It reads them with parse_qs, which drops blank
# values, and takes the first of each; Tornado keeps blanks and get_query_argument takes the
# last. A request that names one of them twice (`sid=S&sid=`) could pass our checks with one
# value and reach engineio with another: refused.
ENGINEIO_PARAMETERS = ("sid", "transport", "EIO")
# engineio's session ids: 15 random bytes in URL-safe base64 (BaseServer.generate_id).
ENGINEIO_SID_SHAPE = re.compile(rb"[A-Za-z0-9_-]{20}")


def query_problem(query_arguments: dict[str, list[bytes]]) -> str | None:
    """What is wrong with a query engineio is to act on (None: nothing): a parameter it
    reads given more than once, or a sid that is not one well-formed value."""
    for name in ENGINEIO_PARAMETERS:
        if len(query_arguments.get(name, ())) > 1:
            return f"{name} given more than once"
    sids = query_arguments.get("sid")
    if sids is not None and not ENGINEIO_SID_SHAPE.fullmatch(sids[0]):
        return "a malformed sid"
    return None


def page_refusal(headers: HTTPHeaders, origin_ok: Callable[[str], bool]) -> tuple[int, str, str] | None:
    """(status, reason, what to log) when these headers are not those of a socket opened by
    one of our pages: an Origin that is not allowed, or a resource load (Sec-Fetch)."""
    origin = headers.get("Origin")
    if origin is not None and not origin_ok(origin):
        return 403, "origin not allowed", f"origin {origin!r} not allowed"
    # A <script>, <img> or <iframe> on any page may load this URL with the person's
    # cookie (a same-site page even with SameSite=Lax) and without an Origin header.
    # Browsers mark such loads; the Socket.IO client only ever fetches or upgrades.
    if (headers.get("Sec-Fetch-Mode") in NOT_A_SOCKET_MODES
            or headers.get("Sec-Fetch-Dest", "empty") not in SOCKET_DESTINATIONS):
        return 403, "not a socket request", (f"not a socket request (Sec-Fetch-Dest {headers.get('Sec-Fetch-Dest')!r}, "
                                             f"Sec-Fetch-Mode {headers.get('Sec-Fetch-Mode')!r})")
    return None


async def end_the_session_of_an_oversized_post(sio: ProtocolGuardedServer, query: str, headers: HTTPHeaders,
                                               cookie_secrets: CookieSecrets, allowed_origins: Iterable[str]) -> None:
    """A polling POST refused from its headers for its size (admission.py) ends the Engine.IO
    session it names, as engineio does for an over-long payload, if it may act on that
    session at all: what the handler's prepare() would check (a page of ours, one
    well-formed sid, opened with this request's session cookie). Otherwise a stolen sid,
    with no cookie, or from a same-site page with the person's, ended the person's socket.
    (The scheme is not known this early: an Origin of this host under either passes.)"""
    host = headers.get("Host", "")
    if page_refusal(headers, lambda origin: any(origin_allowed(origin, scheme, host, allowed_origins)
                                                for scheme in ("http", "https"))) is not None:
        return
    arguments = parse_qs_bytes(query, keep_blank_values=True)
    if query_problem(arguments) is not None or "sid" not in arguments:
        return
    sid = arguments["sid"][0].decode("ascii")
    if sio.same_session(sid, session_id_in_headers(cookie_secrets, headers)):
        await sio.end_engineio_session(sid, sio.eio.reason.TRANSPORT_ERROR)


def make_socketio_handler(
    sio: ProtocolGuardedServer,
    allowed_origins: Iterable[str],
    max_unsent_bytes: int,
) -> type[RequestHandler]:
    """A handler class for `/socket.io/` bound to this server, Origin policy and limits."""
    allowed = frozenset(allowed_origins)
    max_packet_bytes: int = sio.eio.max_http_buffer_size
    # Anyone can send these by the thousand: counted, in a few log lines (refusals.py).
    malformed_queries = RefusalReport("refused socket requests with a malformed query", logger=log)
    unknown_sessions = RefusalReport("refused socket requests for a connection that is not open", logger=log)
    other_sessions = RefusalReport("refused socket requests for a connection of another session", logger=log)
    bad_payloads = RefusalReport("refused polling payloads engineio cannot take", logger=log)
    bad_websockets = RefusalReport("refused WebSockets engineio would not serve", logger=log)

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
                log.info("refused socket from %s: %s", self.request.remote_ip, detail, extra=facts(reason, self.request.remote_ip))
                self.refusal_logged = True
                raise HTTPError(status, reason=reason)
            problem = query_problem(self.request.query_arguments)
            if problem is not None:
                self._refuse(400, "malformed query", malformed_queries, problem)
            eio_sid = self.get_query_argument("sid", None)  # now the one engineio will use
            if eio_sid is None:
                return  # a handshake
            if not sio.is_open(eio_sid):
                # engineio answers 400 too, but only once a WebSocket has been accepted.
                self._refuse(400, "unknown connection", unknown_sessions, "a sid that is not open")
            if not sio.same_session(eio_sid, read_session_id(self)):
                # An Engine.IO session belongs to the session cookie it was opened with: a
                # stolen sid alone (a leaked URL, a script that read it) opens nothing.
                self._refuse(403, "connection of another session", other_sessions, "a sid without its session's cookie")

        def refuse_websocket(self, reason: str) -> None:
            """A WebSocket engineio would not serve (a bad EIO or transport, a connection
            upgraded already), refused before the upgrade (patches/upgrades.py), counted."""
            bad_websockets.refused(f"{reason}, the latest from {self.request.remote_ip}", client=self.request.remote_ip)
            self.refusal_logged = True
            super().refuse_websocket(reason)

        def _refuse(self, status: int, reason: str, report: RefusalReport, detail: str) -> None:
            """Refuse this request, counted in `report` (a few log lines, not one per request)."""
            report.refused(f"{detail}, the latest from {self.request.remote_ip}", client=self.request.remote_ip)
            self.refusal_logged = True
            raise HTTPError(status, reason=reason)

        def _refusal(self) -> tuple[int, str, str] | None:
            """(status, reason, what to log) when this request may not reach engineio, whatever
            session it names: on both transports before anything is upgraded (engineio's
            handler accepts a WebSocket first and refuses late, so a client would hang for
            tens of seconds)."""
            refusal = page_refusal(self.request.headers, self.check_origin)
            if refusal is not None:
                return refusal
            if "j" in self.request.query_arguments:
                # JSONP wraps packets in a script that any page can include; never served.
                return 400, "JSONP is not served", "JSONP polling is not served"
            return None

        async def post(self, *args: Any, **kwargs: Any) -> None:
            if len(self.request.body) > max_packet_bytes:
                await self._refuse_oversized_post()
                return
            problem = polling_payload_problem(self.request.body)
            if problem is not None:
                await self._refuse_payload(problem)
                return
            try:
                await super().post(*args, **kwargs)
            except KeyError:
                # engineio's POST looks its session up outside its error handling: a session
                # that closed since prepare() raised KeyError('Session is disconnected').
                self._refuse(400, "unknown connection", unknown_sessions, "a connection that closed meanwhile")

        async def _refuse_payload(self, problem: str) -> None:
            """A payload no client sends ends its Engine.IO session, as engineio itself ends one
            for a packet it cannot take (prepare() has checked the session is this client's)."""
            bad_payloads.refused(f"{problem}, the latest from {self.request.remote_ip}", client=self.request.remote_ip)
            self.refusal_logged = True
            sid = self.get_query_argument("sid", None)
            if sid:
                await sio.end_engineio_session(sid, sio.eio.reason.TRANSPORT_ERROR)
            self.set_status(400, reason="not an Engine.IO payload")
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish("not an Engine.IO payload\n")

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
