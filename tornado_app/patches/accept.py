"""Tornado's HTTPServer with its own accept loop.

`tornado.netutil.add_accept_handler` lets EMFILE escape from `accept()` while the listening
socket stays readable: at the open-files limit the loop spun a core and logged a traceback
per attempt, and nobody else could connect. This loop pauses accepting instead, and hands
each accepted connection to `admit` (admission.py counts it against its client there).

It fills TCPServer's private `_sockets` and `_handlers` tables (so that `stop()` still closes
the listeners and stops watching them), and `open_stream` does what the private
`TCPServer._handle_connection` does, with the stream classes the caller gives.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, SSLIOStream
from tornado.netutil import ssl_wrap_socket

log = logging.getLogger(__name__)

ACCEPT_PAUSE_SECONDS = 0.2  # out of file descriptors: try accept() again this much later
ACCEPTS_PER_WAKEUP = 128  # as Tornado: then let the rest of the loop run

_Plain = TypeVar("_Plain", bound=IOStream)  # open_stream gives back the classes it is given
_TLS = TypeVar("_TLS", bound=SSLIOStream)
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class AcceptLoopHTTPServer(HTTPServer):
    """HTTPServer whose listening sockets are watched by `_accept_from` (see the module
    docstring); subclasses say what to do with each connection (`admit`) and with a pause."""

    def admit(self, connection: socket.socket, address: Any) -> None:
        """Serve an accepted connection (or close it)."""
        raise NotImplementedError

    def accepting_paused(self, error: OSError) -> None:
        """Accepting stopped for ACCEPT_PAUSE_SECONDS: the process is out of descriptors."""

    def add_sockets(self, sockets: Any) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._accept_from(sock)

    def _accept_from(self, sock: socket.socket) -> Callable[[], None]:
        """Watch a listening socket; returns what stops watching it (TCPServer.stop calls it)."""
        io_loop = IOLoop.current()
        state: dict[str, Any] = {"resume": None, "stopped": False}

        def resume() -> None:
            state["resume"] = None
            if not state["stopped"]:
                io_loop.add_handler(sock, on_readable, IOLoop.READ)

        def on_readable(fd: Any, events: int) -> None:
            for _ in range(ACCEPTS_PER_WAKEUP):
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    return
                except ConnectionAbortedError:
                    continue
                except OSError as error:
                    if error.errno not in OUT_OF_DESCRIPTORS:
                        raise
                    # The listening socket stays readable: retrying at once would spin.
                    io_loop.remove_handler(sock)
                    state["resume"] = io_loop.call_later(ACCEPT_PAUSE_SECONDS, resume)
                    self.accepting_paused(error)
                    return
                try:
                    self.admit(connection, address)
                except Exception:
                    connection.close()
                    log.exception("cannot serve a connection from %s", address)

        def stop() -> None:
            state["stopped"] = True
            if state["resume"] is not None:
                io_loop.remove_timeout(state["resume"])
            else:
                io_loop.remove_handler(sock)

        io_loop.add_handler(sock, on_readable, IOLoop.READ)
        return stop

    def open_stream(self, connection: socket.socket, plain: type[_Plain], tls: type[_TLS]) -> _Plain | _TLS | None:
        """What TCPServer._handle_connection does, with these stream classes; None when the
        connection was gone before its TLS handshake could start."""
        if self.ssl_options is None:
            return plain(connection, max_buffer_size=self.max_buffer_size, read_chunk_size=self.read_chunk_size)
        try:
            connection = ssl_wrap_socket(connection, self.ssl_options, server_side=True, do_handshake_on_connect=False)
        except ssl.SSLError as error:
            if error.args[0] == ssl.SSL_ERROR_EOF:
                connection.close()
                return None
            raise
        except OSError as error:
            if error.errno in (errno.ECONNABORTED, errno.EINVAL):  # closed at once, as by a port scan
                connection.close()
                return None
            raise
        return tls(connection, max_buffer_size=self.max_buffer_size, read_chunk_size=self.read_chunk_size)
