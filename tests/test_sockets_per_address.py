"""sockets_per_address.py: Engine.IO sessions counted per client address, refused past the cap.

(Against engineio and a real server: tests/patches/test_engineio_server.py.)
"""

from __future__ import annotations

import logging

import pytest

from tornado_app.app import make_app
from tornado_app.reasons import TOO_MANY_SOCKETS
from tornado_app.settings import Settings
from tornado_app.sockets_per_address import SocketsPerAddress


class Handshake:
    """The Tornado handler of a handshake, as the cap marks it."""

    refusal_logged = False


def test_a_cap_refuses_past_its_limit_per_address_and_gives_places_back(caplog: pytest.LogCaptureFixture) -> None:
    cap = SocketsPerAddress(2)
    one_host = ["2001:db8:1:2::1", "2001:db8:1:2::9"]  # one /64: one address, as admission.client_key counts
    for sid, ip in enumerate(one_host):
        assert cap.refusal(ip, Handshake()) is None
        cap.opened(str(sid), ip)
    assert cap.open == {"2001:db8:1:2::/64": 2}
    handshake = Handshake()
    with caplog.at_level(logging.INFO):
        assert cap.refusal("2001:db8:1:2::5", handshake) == TOO_MANY_SOCKETS
        assert cap.refusal("2001:db8:1:2::6", None) == TOO_MANY_SOCKETS
    assert handshake.refusal_logged  # the access log adds no line of its own
    assert [record.getMessage() for record in caplog.records] == [
        "refused Engine.IO sessions over --max-sockets-per-ip: answered 401 (2 open), the latest from 2001:db8:1:2::5"]
    assert cap.refusal("192.0.2.7", None) is None  # another address
    cap.closed("0")
    cap.closed("never opened")
    assert cap.open == {"2001:db8:1:2::/64": 1}
    assert cap.refusal("2001:db8:1:2::5", None) is None
    cap.closed("1")
    assert cap.open == {}


def test_without_a_limit_nothing_is_refused() -> None:
    cap = SocketsPerAddress(None)
    for sid in range(1000):
        assert cap.refusal("192.0.2.7", None) is None
        cap.opened(str(sid), "192.0.2.7")
    assert cap.open == {"192.0.2.7": 1000}


def test_the_app_gives_its_engineio_server_the_cap_it_was_asked_for() -> None:
    gate = make_app("s" * 32, settings=Settings(max_sockets_per_ip=3)).sockets.sio.eio.session_gate
    assert isinstance(gate, SocketsPerAddress) and gate.limit == 3
