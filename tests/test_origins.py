"""The names the server answers to (Host) and the pages that may open its sockets (Origin)."""

from __future__ import annotations

import logging
import urllib.parse

import pytest
import socketio
import tornado.httpclient
import tornado.websocket

from tests.support.constants import ALLOWED_ORIGIN
from tornado_app import origins
from tornado_app.app import TornadoApp
from tornado_app.origins import HostPolicy, origin_allowed, parse_allowed_host


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8888", True),
        ("localhost:8888", True),
        ("LOCALHOST:8888", True),
        ("[::1]:8888", True),
        ("evil.example:8888", False),  # DNS rebinding: another site's name, our address and port
        ("127.0.0.1.evil.example:8888", False),
        ("localhost.:8888", False),
        ("127.0.0.1:9999", False),
        ("localhost", False),  # no port means 80, which is not ours
        ("::1", False),  # an IPv6 literal without brackets is no valid Host
        ("a:b:c", False),
        ("", False),
    ],
)
def test_a_local_server_answers_only_to_the_loopback_names_on_its_port(host: str, allowed: bool) -> None:
    assert HostPolicy.local(8888).allows(host) is allowed


def test_a_server_holding_only_127_0_0_1_does_not_answer_to_localhost() -> None:
    """`localhost` may reach [::1], which another local user can hold (server.bind)."""
    policy = HostPolicy.local(8888, names=("127.0.0.1",))
    assert policy.allows("127.0.0.1:8888")
    assert not policy.allows("localhost:8888") and not policy.allows("[::1]:8888")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("chat.example.com", True),  # behind a proxy on 443: no port in Host
        ("chat.example.com:443", True),
        ("CHAT.example.com:8443", True),  # a name without a port matches any port
        ("admin.example.com:8443", True),
        ("admin.example.com", False),
        ("admin.example.com:9443", False),
        ("example.com", False),
        ("localhost:8888", True),
        ("localhost:1234", False),
    ],
)
def test_allowed_hosts_with_and_without_a_port(host: str, allowed: bool) -> None:
    policy = HostPolicy.local(8888, ["chat.example.com", "admin.example.com:8443"])
    assert policy.allows(host) is allowed


def test_a_default_port_in_an_allowed_host_matches_a_host_header_without_one() -> None:
    assert HostPolicy.of(["chat.example.com:443"]).allows("chat.example.com")
    assert not HostPolicy.of(["chat.example.com:8443"]).allows("chat.example.com")


@pytest.mark.parametrize("text", ["", "http://example.com", "a b", "user@example.com", "example.com:0", "example.com:99999", "a:b"])
def test_an_allowed_host_that_is_not_a_host_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_allowed_host(text)


@pytest.mark.parametrize(
    ("origin", "scheme", "host", "allowed"),
    [
        ("http://localhost:8888", "http", "localhost:8888", True),
        ("http://LOCALHOST:8888", "http", "localhost:8888", True),
        ("https://localhost:8888", "http", "localhost:8888", False),  # another scheme is another origin
        ("http://localhost:8888", "https", "localhost:8888", False),
        ("https://chat.example.com", "https", "chat.example.com", True),
        ("https://chat.example.com:443", "https", "chat.example.com", True),
        ("http://chat.example.com", "https", "chat.example.com", False),
        ("http://localhost:9999", "http", "localhost:8888", False),
        ("http://evil.example", "http", "localhost:8888", False),
        ("http://localhost:8888.evil.example", "http", "localhost:8888", False),
        ("http://user@localhost:8888", "http", "localhost:8888", False),
        ("null", "http", "localhost:8888", False),
        ("", "http", "localhost:8888", False),
        ("http://[::1", "http", "localhost:8888", False),  # unparsable
        ("http://localhost:99999", "http", "localhost:8888", False),
        (ALLOWED_ORIGIN, "http", "localhost:8888", True),
    ],
)
def test_origin_policy_compares_scheme_host_and_port(origin: str, scheme: str, host: str, allowed: bool) -> None:
    assert origin_allowed(origin, scheme, host, {ALLOWED_ORIGIN}) is allowed
    assert origin_allowed(origin, scheme, host, {ALLOWED_ORIGIN}) is allowed  # the same, remembered


def test_parsed_origins_are_remembered_within_a_bound_that_a_flood_of_origins_cannot_grow() -> None:
    """Each socket request parses its Origin and its own scheme://Host: a string seen is not
    parsed again, a flood of new ones keeps the memo at its bound, and one longer than the
    memo keeps is still judged (each time) as before."""
    parsed = origins.scheme_host_port
    parsed.cache_clear()
    try:
        for _ in range(3):
            assert origin_allowed("http://localhost:8888", "http", "localhost:8888", ())
        assert (parsed.cache_info().misses, parsed.cache_info().hits) == (1, 5)  # one string: Origin and own alike
        for n in range(2 * origins.ORIGINS_KEPT):
            assert not origin_allowed(f"http://evil{n}.example", "http", "localhost:8888", ())
        assert parsed.cache_info().currsize == origins.ORIGINS_KEPT
        name = "a" * origins.ORIGIN_LONGEST
        assert origin_allowed(f"http://{name}:8888", "http", f"{name}:8888", ())
        assert not origin_allowed(f"http://{name}:8888", "http", f"{name}:9999", ())
        assert not origin_allowed(f"http://user@{name}:8888", "http", f"{name}:8888", ())
        assert parsed.cache_info().currsize == origins.ORIGINS_KEPT
    finally:
        parsed.cache_clear()


# --- DNS rebinding against a real server: a page on another site whose name resolves to
# 127.0.0.1 sends its own name in Host and a matching Origin. Nothing may be served to it. --

EVIL = "evil.example"


@pytest.fixture
def evil_host(http_port: int) -> str:
    return f"{EVIL}:{http_port}"


@pytest.mark.gen_test
async def test_a_page_under_another_name_gets_421_for_every_path(web_user, evil_host: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    user = web_user()
    await user.login("ada")
    for path in ["/", "/login", "/logout", "/api/session", "/static/js/main.js", "/nowhere",
                 "/socket.io/?EIO=4&transport=polling"]:
        response = await user.request("GET", path, headers={"Host": evil_host, "Origin": f"http://{evil_host}"})
        assert response.code == 421, path
        assert response.body == b"unknown host: this server does not answer to that name\n"
        assert "Set-Cookie" not in response.headers
    refusals = [record for record in caplog.records if "unknown host" in record.getMessage()]
    assert len(refusals) == 7 and all(record.levelno == logging.INFO for record in refusals)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.gen_test
async def test_a_page_under_another_name_can_neither_log_in_nor_log_anyone_out(web_user, evil_host: str, app: TornadoApp) -> None:
    victim = web_user()
    await victim.login("ada")
    attacker = web_user()
    token = await attacker.xsrf_token()  # even with a valid XSRF token and cookie
    for path, fields in [("/login", {"username": "mallory"}), ("/logout", {})]:
        headers = {"Host": evil_host, "Origin": f"http://{evil_host}", "Cookie": victim.cookie_header}
        body = urllib.parse.urlencode({"_xsrf": token, **fields})
        response = await attacker.request("POST", path, body=body, headers=headers)
        assert response.code == 421
    assert await app.backend.store.count() == 1
    assert (await victim.get("/api/session")).code == 200  # ada is still logged in


@pytest.mark.gen_test
async def test_a_socket_under_another_name_is_refused_before_the_upgrade(web_user, base_url: str, evil_host: str) -> None:
    user = web_user()
    await user.login("ada")
    request = tornado.httpclient.HTTPRequest(
        base_url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
        headers={"Host": evil_host, "Origin": f"http://{evil_host}", "Cookie": user.cookie_header},
    )
    with pytest.raises(tornado.httpclient.HTTPClientError) as refusal:
        await tornado.websocket.websocket_connect(request)
    assert refusal.value.code == 421


@pytest.mark.gen_test
async def test_a_socket_from_the_same_host_under_https_is_another_origin(web_user, socket_client, base_url: str) -> None:
    """An https:// Origin for this http:// server was accepted once (host and port only)."""
    user = web_user()
    await user.login("ada")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await socket_client(user.cookie_header, "websocket", origin=base_url.replace("http://", "https://"))
    client = await socket_client(user.cookie_header, "websocket", origin=base_url)
    assert (await client.next("welcome"))["username"] == "ada"


def test_parsed_hosts_are_remembered_within_a_bound_and_a_bad_host_is_refused_each_time() -> None:
    """Every request's Host is checked: a name seen is not parsed again, a flood of invented
    names keeps the memo at its bound, and one that is no host is refused every time."""
    policy = HostPolicy.local(8888)
    parsed = origins.name_and_port
    parsed.cache_clear()
    try:
        assert [policy.allows("LocalHost:8888") for _ in range(3)] == [True] * 3
        assert (parsed.cache_info().misses, parsed.cache_info().hits) == (1, 2)
        for n in range(2 * origins.HOSTS_KEPT):
            assert not policy.allows(f"evil{n}.example:8888")
        assert parsed.cache_info().currsize == origins.HOSTS_KEPT
        assert [policy.allows("a:b") for _ in range(2)] == [False, False]
        long = "l" * origins.ORIGIN_LONGEST
        assert HostPolicy.of([long]).allows(long + ":8888")
        assert parsed.cache_info().currsize == origins.HOSTS_KEPT
    finally:
        parsed.cache_clear()
