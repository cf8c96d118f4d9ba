"""The application factory: every setting and collaborator comes in as an argument.

Nothing here is global, so tests can build as many independent apps as they like, each with
its own store, clock and limits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import tornado.web

from .handlers import IndexHandler, LoginHandler, LogoutHandler, NotFoundHandler, SessionApiHandler
from .sessions import DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TTL, Clock, MemorySessionStore, SessionStore
from .sockets import ChatSocketServer
from .transport import make_socketio_handler

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
SOCKETIO_PATH = "/socket.io/"


class TornadoApp(tornado.web.Application):
    """The Tornado application, holding the collaborators its handlers reach for."""

    def __init__(self, store: SessionStore, sockets: ChatSocketServer, allowed_origins: Iterable[str], **settings: Any) -> None:
        self.store = store
        self.sockets = sockets
        handlers: list[Any] = [
            (r"/", IndexHandler),
            (r"/login", LoginHandler),
            (r"/logout", LogoutHandler),
            (r"/api/session", SessionApiHandler),
            (SOCKETIO_PATH, make_socketio_handler(sockets.sio, allowed_origins)),
        ]
        super().__init__(handlers, default_handler_class=NotFoundHandler, **settings)

    async def sweep_expired_sessions(self) -> int:
        """Remove expired sessions now (their sockets are disconnected); returns how many."""
        return await self.store.sweep()


def make_app(
    cookie_secret: str,
    *,
    session_ttl: float = DEFAULT_SESSION_TTL,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    allowed_origins: Iterable[str] = (),
    clock: Clock = time.time,
    store: SessionStore | None = None,
    ping_interval: float = 25,
    ping_timeout: float = 20,
    web_dir: Path = WEB_DIR,
) -> TornadoApp:
    """Build the application around a session store (a fresh in-memory one by default)."""
    if not cookie_secret:
        raise ValueError("a cookie secret is required")
    if store is None:
        store = MemorySessionStore(ttl=session_ttl, max_sessions=max_sessions, clock=clock)
    sockets = ChatSocketServer(store, clock=clock, ping_interval=ping_interval, ping_timeout=ping_timeout)
    return TornadoApp(
        store,
        sockets,
        allowed_origins,
        cookie_secret=cookie_secret,
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"httponly": True, "samesite": "Lax"},
        template_path=str(web_dir / "templates"),
        static_path=str(web_dir / "static"),
        autoescape="xhtml_escape",
        serve_traceback=False,
    )
