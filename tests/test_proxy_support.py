"""The freezable TCP proxy the dead-link tests stand on (tests/support/proxy.py): a test that
relies on "no byte crosses while frozen" must know that it holds, and that thawing works."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.proxy import FreezableProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(4096):
                self.request.sendall(data)
        except ConnectionError:  # the proxy aborted it: what one test asks of it
            pass


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _silent_for(client: socket.socket, seconds: float) -> bool:
    """True when nothing at all (no byte, no FIN, no RST) arrives for `seconds`."""
    client.settimeout(seconds)
    try:
        client.recv(4096)
    except TimeoutError:
        return True
    finally:
        client.settimeout(5)
    return False


def test_bytes_flow_stop_while_frozen_and_resume_on_thaw(echo_port: int) -> None:
    with FreezableProxy("127.0.0.1", echo_port) as proxy, _connect(proxy.port) as client:
        client.sendall(b"before")
        assert client.recv(4096) == b"before"

        proxy.freeze()
        client.sendall(b"during")
        assert _silent_for(client, 1.0), "a byte, a FIN or a RST crossed a frozen link"
        assert proxy.open_links == 1

        proxy.thaw()
        received = b""
        while len(received) < len(b"during"):
            received += client.recv(4096)
        assert received == b"during"


def test_a_connection_made_while_frozen_goes_through_after_the_thaw(echo_port: int) -> None:
    with FreezableProxy("127.0.0.1", echo_port) as proxy:
        proxy.freeze()
        with _connect(proxy.port) as client:  # accepted by the proxy's end, as a tunnel does
            client.sendall(b"knock")
            assert _silent_for(client, 0.5)
            proxy.thaw()
            assert client.recv(4096) == b"knock"


def test_thaw_with_reset_aborts_the_old_connections_and_lets_new_ones_through(echo_port: int) -> None:
    with FreezableProxy("127.0.0.1", echo_port) as proxy, _connect(proxy.port) as old:
        old.sendall(b"up")
        assert old.recv(4096) == b"up"
        proxy.freeze()
        proxy.thaw(reset=True)
        with pytest.raises(ConnectionResetError):
            old.sendall(b"x")
            time.sleep(0.2)
            old.sendall(b"x")
            old.recv(4096)
        with _connect(proxy.port) as new:
            new.sendall(b"fresh")
            assert new.recv(4096) == b"fresh"
