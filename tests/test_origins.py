"""The names the server answers to (Host) and the pages that may open its sockets (Origin)."""

from __future__ import annotations

import pytest

from tornado_app.origins import HostPolicy, origin_allowed, parse_allowed_host

from .conftest import ALLOWED_ORIGIN


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
