"""Which names the server answers to (the `Host` header), and which pages may open its sockets
(the `Origin` header).

The Host check is what stops DNS rebinding: a page on `evil.example` whose name is made to
resolve to 127.0.0.1 sends `Host: evil.example:PORT` and a matching `Origin`, so an Origin
check alone would take it for the server's own page. A local server must therefore answer
only to the names it is really reached by.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from tornado.httputil import split_host_and_port

from .memo import string_memo

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
DEFAULT_PORTS = {"http": 80, "https": 443}
# scheme_host_port's memo (memo.py): each socket request parses its Origin and its own
# scheme://Host with `urlsplit` (~2.5 us each); a hit costs ~0.2 us. At most ORIGINS_KEPT
# strings of at most ORIGIN_LONGEST characters are kept (under 1 MiB when full); anything
# longer is parsed each time, as before.
ORIGINS_KEPT = 1024
ORIGIN_LONGEST = 256
# name_and_port's memo: every request's Host is checked (app.find_handler), ~1.3 us a parse.
# The names a server is reached by are few; a flood of invented ones evicts, it cannot grow it.
HOSTS_KEPT = 256


@string_memo(maxsize=HOSTS_KEPT, longest=ORIGIN_LONGEST)
def name_and_port(host: str) -> tuple[str, int | None]:
    """`Example.com:8080` -> ("example.com", 8080); a bare IPv6 literal keeps its brackets.
    Remembered (HOSTS_KEPT; a ValueError is not remembered)."""
    host = host.strip().lower()
    if (host.startswith("[") and host.endswith("]")) or host.count(":") == 0:
        return host, None
    name, port = split_host_and_port(host)
    if port is None:  # something like "a:b": not a host Tornado understands
        raise ValueError(f"{host!r} is not a host name with an optional port")
    return name, port


def parse_allowed_host(text: str) -> tuple[str, int | None]:
    """A `--allowed-host` value: a name or address, with or without a port."""
    name, port = name_and_port(text)
    if not name or "/" in name or " " in name or "@" in name:
        raise ValueError(f"{text!r} is not a host name like example.com or example.com:8443")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{text!r} has no valid port")
    return name, port


@dataclass(frozen=True)
class HostPolicy:
    """The names the server answers to. An entry with a port matches only that port; an entry
    without one matches the name on any port (what a proxy in front passes on)."""

    entries: frozenset[tuple[str, int | None]]

    @classmethod
    def of(cls, hosts: Iterable[str]) -> HostPolicy:
        return cls(frozenset(parse_allowed_host(host) for host in hosts))

    @classmethod
    def local(cls, port: int | None, extra: Iterable[str] = (), names: Iterable[str] = LOOPBACK_NAMES) -> HostPolicy:
        """The loopback `names` on `port` (any port if None), and the extra entries. A server
        passes the names of the loopback addresses it holds (server.BoundSockets): answering
        to `localhost` while another program may hold [::1] on the port would send the
        person's requests there."""
        return cls.of([*(f"{name}:{port}" if port else name for name in names), *extra])

    def allows(self, host: str) -> bool:
        """Whether a request's `Host` header names this server."""
        try:
            name, port = name_and_port(host)
        except ValueError:
            return False
        if (name, None) in self.entries:
            return True
        if port is None:  # the scheme's default port, 80 or 443
            return any((name, default) in self.entries for default in DEFAULT_PORTS.values())
        return (name, port) in self.entries


def origin_allowed(origin: str, scheme: str, host: str, allowed_origins: Iterable[str]) -> bool:
    """True when `origin` is the server's own (same scheme, host and port as the request that
    carries it) or one configured explicitly with `--allowed-origin`."""
    if origin in allowed_origins:
        return True
    own = scheme_host_port(f"{scheme}://{host}")
    return own is not None and scheme_host_port(origin) == own


@string_memo(maxsize=ORIGINS_KEPT, longest=ORIGIN_LONGEST)
def scheme_host_port(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, lower case, the port filled in; None if it is not
    a bare http(s) origin. Remembered (ORIGINS_KEPT)."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query or parts.username is not None:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]
