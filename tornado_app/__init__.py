"""Authenticated real-time sockets on top of server-side web sessions, in Tornado."""

from .app import TornadoApp, make_app
from .sessions import MemorySessionStore, Session, SessionStore

__all__ = ["MemorySessionStore", "Session", "SessionStore", "TornadoApp", "make_app"]
__version__ = "0.1.0"
