"""The application factory: every setting and collaborator comes in as an argument.

Nothing here is global, so tests can build as many independent apps as they like, each with
its own store, clock and limits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tornado.web
from tornado.escape import parse_qs_bytes
from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.log import access_log
from tornado.web import RequestHandler

from .backend import Backend
from .cookie_secrets import COOKIE_SECRETS_SETTING, CookieSecrets
from .errors import BackendUnavailable
from .handlers import (
    DrainingHandler,
    IndexHandler,
    LoginHandler,
    LogoutHandler,
    NotFoundHandler,
    SessionApiHandler,
    UnknownHostHandler,
)
from .health import HEALTH_PATH, READINESS_PATH, HealthHandler, ReadinessHandler, is_probe
from .launch_token import LaunchGateHandler, LaunchToken, gate_refusals
from .metrics import NoMetrics
from .origins import HostPolicy
from .patches import query_copy
from .refusals import RefusalReport
from .settings import PRODUCTION, Settings
from .sockets import ChatSocketServer
from .sockets_per_address import limit_sessions
from .static_files import CompressedFiles, PageModules, StaticFileHandler
from .transport import end_the_session_of_an_oversized_post, make_socketio_handler

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
SOCKETIO_PATH = "/socket.io/"
# The pages a person starts from: a stopping process refuses them (refused_while_draining).
NEW_WORK_PATHS = frozenset({"/", "/login"})
MAX_FORM_BYTES = 4 * 1024  # a login form is under 1 KiB, a username of 32 characters percent-encoded included


class TornadoApp(tornado.web.Application):
    """The Tornado application, holding the collaborators its handlers reach for."""

    def __init__(
        self,
        backend: Backend,
        sockets: ChatSocketServer,
        hosts: HostPolicy,
        allowed_origins: Iterable[str],
        config: Settings,
        launch_token: LaunchToken | None = None,
        **settings: Any,
    ) -> None:
        # The store, history, presence and rates: every handler and socket reaches them here.
        self.backend = backend
        self.sockets = sockets
        # Its caps, rates and timeouts (settings.py; `settings` is Tornado's own dict).
        self.config = config
        self.login_refusals = RefusalReport("refused logins over --login-rate", logger=log)
        self.hosts = hosts
        self.allowed_origins = frozenset(allowed_origins)  # pages that may also send the forms
        self.launch_token = launch_token
        self.launch_refusals = gate_refusals()
        # Set when the server starts shutting down, a drain included (drain.py): /readyz
        # says "draining", new pages, logins and handshakes are refused (find_handler), and
        # requests it cuts short (long polls held open, connections closed under them) are
        # not a client's refusal to log.
        self.stopping = False
        self.socketio_handler = make_socketio_handler(sockets.sio, self.allowed_origins, config.max_unsent_bytes)
        handlers: list[Any] = [
            (HEALTH_PATH, HealthHandler),
            (READINESS_PATH, ReadinessHandler),
            (r"/", IndexHandler),
            (r"/login", LoginHandler),
            (r"/logout", LogoutHandler),
            (r"/api/session", SessionApiHandler),
            (SOCKETIO_PATH, self.socketio_handler),
        ]
        super().__init__(handlers, default_handler_class=NotFoundHandler, log_function=log_request, **settings)

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> Any:
        """Answer only to the names this server is reached by (see origins.py: DNS
        rebinding), before any handler, static files included, sees the request. Except
        a probe (health.py): load balancers probe by address, and a probe's answer is one
        word, the same for everyone."""
        if not self.hosts.allows(request.host) and not is_probe(request):
            return self.get_handler_delegate(request, UnknownHostHandler)
        if self.launch_token is not None and not self.launch_token.carried_by(request):
            # The launcher's window only (launch_token.py): another local user's requests
            # reach no session, rate counter or socket.
            return self.get_handler_delegate(request, LaunchGateHandler, {"token": self.launch_token, "refusals": self.launch_refusals})
        if self.stopping and refused_while_draining(request):
            return self.get_handler_delegate(request, DrainingHandler, {"plain": request.path == SOCKETIO_PATH})
        if request.path == SOCKETIO_PATH:
            # The most asked route (every handshake, poll and POST), found without trying the
            # nine routes before it in Tornado's router (~3 us a request): the same handler.
            return self.get_handler_delegate(request, self.socketio_handler)
        return super().find_handler(request, **kwargs)

    def max_body_bytes(self, path: str) -> int:
        """The largest request body a route takes; the server answers 413 to a larger one from
        its headers, before reading any of it (admission.py): a polling POST carries at most
        one packet, a login or logout form a few hundred bytes."""
        return self.sockets.sio.eio.max_http_buffer_size if path == SOCKETIO_PATH else MAX_FORM_BYTES

    async def oversized_body(self, path: str, query: str, headers: HTTPHeaders) -> None:
        """A polling POST refused for its size ends its Engine.IO session, as engineio does
        for an over-long payload (a pending long poll gets the close packet), if the POST
        may act on that session (transport.py)."""
        if path == SOCKETIO_PATH:
            await end_the_session_of_an_oversized_post(self.sockets.sio, query, headers, self.settings[COOKIE_SECRETS_SETTING],
                                                      self.allowed_origins)

    async def sweep_expired_sessions(self) -> int:
        """Remove expired sessions now (their sockets are disconnected); returns how many.
        Then check the sessions that still have sockets here, so that one whose end this
        process never heard of (Redis's pub/sub was down) loses its sockets too."""
        try:
            expired = await self.backend.store.sweep()
            await self.backend.store.audit(self.sockets.registry.session_ids())
        except BackendUnavailable:
            return 0  # the store says so in the log, once; the next sweep tries again
        return expired


def refused_while_draining(request: HTTPServerRequest) -> bool:
    """New work, which a stopping process refuses (drain.py): a page (`/`), a login (`/login`)
    and an Engine.IO handshake (a /socket.io/ request with no sid, read as engineio reads
    it: a blank sid is none). Everything else still reaches it: the probes, a logout, the
    static files, and the requests of the sockets still open (polls, posts and WebSocket
    upgrades, which carry their sid) until their batch ends them."""
    if request.path in NEW_WORK_PATHS:
        return True
    return request.path == SOCKETIO_PATH and "sid" not in parse_qs_bytes(request.query)


def make_app(
    cookie_secret: CookieSecrets | str,
    *,
    settings: Settings = PRODUCTION,
    backend: Backend | None = None,
    allowed_origins: Iterable[str] = (),
    allowed_hosts: HostPolicy | None = None,
    fast_path: bool = True,
    launch_token: LaunchToken | None = None,
    metrics: NoMetrics | None = None,
    process_label: str | None = None,
    web_dir: Path = WEB_DIR,
) -> TornadoApp:
    """Build the application with the caps, rates and timeouts of `settings` (settings.py: the
    production ones by default; `serve` applies the app's too), around a backend (backend.py:
    by default a fresh in-memory one; give one built from the same settings, which hold its
    sizes and rates).

    `allowed_hosts` defaults to the loopback names on any port. Cookies follow each request's
    scheme (Secure and `__Host-` prefixed over HTTPS: cookies.py, handlers.BaseHandler).
    `fast_path=False` sends every packet through engineio's own queues (see
    patches/engineio_server.py). With `launch_token` (the desktop launcher), every
    request must carry that launch's cookie (launch_token.py). `cookie_secret` is one secret,
    or CookieSecrets: the newest signs, older ones still verify (cookie_secrets.py). `metrics` (metrics.Metrics,
    --metrics-address) counts what the sockets do; none by default. `process_label` names this
    process in each socket's `welcome` (--process-label; the pid by default).
    """
    query_copy.install()  # every request's query arguments copied without copy.deepcopy
    secrets = CookieSecrets.of(cookie_secret)
    backend = backend if backend is not None else Backend.in_memory(settings)
    sockets = ChatSocketServer(
        backend, ping_interval=settings.ping_interval, ping_timeout=settings.ping_timeout, connect_timeout=settings.connect_timeout,
        fast_path=fast_path, metrics=metrics, process_label=process_label,
    )
    sockets.metrics.watch(sockets)
    limit_sessions(sockets.sio.eio, settings.max_sockets_per_ip, settings.first_poll_timeout)
    return TornadoApp(
        backend,
        sockets,
        allowed_hosts or HostPolicy.local(None),
        allowed_origins,
        settings,
        launch_token,
        **secrets.tornado_settings(),
        # No xsrf_cookie_kwargs: Tornado writes into that dict (a 30-day expiry, once a
        # logged-in page is served); BaseHandler.set_cookie sets the XSRF cookie's attributes.
        xsrf_cookies=True,
        template_path=str(web_dir / "templates"),
        static_path=str(web_dir / "static"),
        static_handler_class=StaticFileHandler,
        static_handler_args={"compressed": CompressedFiles()},  # each text file gzipped once, for this app
        ui_methods={"page_modules": PageModules(web_dir / "static")},
        autoescape="xhtml_escape",
        serve_traceback=False,
    )


def log_request(handler: RequestHandler) -> None:
    """Tornado's access log, except that a client's refused request (4xx) is one INFO line
    here rather than a WARNING (anyone can send those), and none at all when the refusal was
    explained already (origin, host, packet size, XSRF) or the session store is down (it
    says so once). Probes (health.py) are DEBUG lines whatever their answer: a balancer
    sends one every few seconds, and a 503 from /readyz is a state, said where it begins
    (the store's outage line; the stop)."""
    status = handler.get_status()
    request = handler.request
    line = ("%d %s %s (%s) %.2fms", status, request.method, request.path, request.remote_ip, 1000.0 * request.request_time())
    if is_probe(request):
        access_log.debug(*line)
    elif status < 400:
        access_log.info(*line)
    elif getattr(handler, "refusal_logged", False) or getattr(handler.application, "stopping", False):
        access_log.debug(*line)
    elif status >= 500:
        access_log.error(*line)
    else:
        log.info("refused %s %s from %s: %d", request.method, request.path, request.remote_ip, status)
