"""The Socket.IO endpoint's Tornado handler: Origin policy on both transports, XSRF opt-out,
and TCP_NODELAY."""

from __future__ import annotations

import socket
import time

import pytest
import socketio
import tornado.httpclient
import tornado.websocket

from tornado_app.app import TornadoApp

from .conftest import ALLOWED_ORIGIN, TRANSPORTS

transports = pytest.mark.parametrize("transport", list(TRANSPORTS))


@pytest.mark.gen_test
async def test_a_foreign_origin_websocket_is_refused_at_once_with_403(http_server, base_url: str, web_user) -> None:
    user = web_user()
    await user.login("ada")
    request = tornado.httpclient.HTTPRequest(
        base_url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
        headers={"Origin": "http://evil.example", "Cookie": user.cookie_header},
    )
    started = time.monotonic()
    with pytest.raises(tornado.httpclient.HTTPClientError) as refusal:
        await tornado.websocket.websocket_connect(request)
    assert refusal.value.code == 403
    assert time.monotonic() - started < 0.5


@pytest.mark.gen_test
async def test_a_foreign_origin_polling_handshake_is_refused_at_once_with_403(web_user) -> None:
    user = web_user()
    await user.login("ada")
    started = time.monotonic()
    response = await user.request("GET", "/socket.io/?EIO=4&transport=polling", headers={"Origin": "http://evil.example"})
    assert response.code == 403
    assert response.body == b"origin not allowed\n"
    assert time.monotonic() - started < 0.5


@transports
@pytest.mark.gen_test
async def test_a_socketio_client_from_a_foreign_origin_fails_promptly(web_user, socket_client, transport: str) -> None:
    user = web_user()
    await user.login("ada")
    started = time.monotonic()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await socket_client(user.cookie_header, transport, origin="http://evil.example")
    assert time.monotonic() - started < 1


@transports
@pytest.mark.gen_test
async def test_a_configured_origin_and_no_origin_at_all_are_accepted(web_user, socket_client, transport: str) -> None:
    user = web_user()
    await user.login("ada")
    for origin in (ALLOWED_ORIGIN, None):
        client = await socket_client(user.cookie_header, transport, origin=origin)
        assert await client.next("welcome") == {"username": "ada"}


@pytest.mark.gen_test
async def test_polling_from_a_configured_origin_gets_credentialed_cors_headers(web_user) -> None:
    user = web_user()
    await user.login("ada")
    response = await user.request("GET", "/socket.io/?EIO=4&transport=polling", headers={"Origin": ALLOWED_ORIGIN})
    assert response.code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


@pytest.mark.gen_test
async def test_polling_posts_need_no_xsrf_token(web_user, socket_client, app: TornadoApp) -> None:
    """Tornado would answer 403 to every polling POST if the handler kept its XSRF check."""
    user = web_user()
    await user.login("ada")
    client = await socket_client(user.cookie_header, "polling-upgrade")
    client.sio.eio.upgrades = []  # stay on polling, so whoami travels in a POST
    assert await client.sio.call("whoami", timeout=2) == {"username": "ada", "logged_in_at": 1_700_000_000}


@pytest.mark.gen_test
async def test_websocket_connections_have_nagle_turned_off(web_user, socket_client, app: TornadoApp) -> None:
    user = web_user()
    await user.login("ada")
    client = await socket_client(user.cookie_header, "websocket")
    await client.next("welcome")
    (sid,) = app.sockets.registry.all_sockets()
    handler = app.sockets.sio.get_environ(sid)["tornado.handler"]
    tcp_socket = handler.ws_connection.stream.socket
    assert tcp_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
