"""What a --redis-url says, read in one place for every Redis client of the app.

Two forms:
- `redis://`, `rediss://`, `unix://`: one Redis server, as redis-py's `from_url` reads it.
- `redis+sentinel://[[user]:password@]host1:port1,host2:port2/DB/SERVICE`: a replicated
  Redis found through its Sentinels (python-socketio's form, parse_redis_sentinel_url). The
  one password is given to the Sentinels and to the primary alike.

Each client gets the Sentinel form in the shape it takes (the bus: redis-py's Sentinel; the
rate limits: `limits`' RedisSentinelStorage; python-socketio's manager: its own URL), always
with the password as a keyword argument, never inside a URL a library parses (python-socketio
would not percent-decode it; `limits` reads the whole path as the service name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
SINGLE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_EXAMPLE = "redis+sentinel://:PASSWORD@127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/0/mymaster"


class BadRedisURL(ValueError):
    """A --redis-url the app cannot use; the message is one line and holds no password."""


@dataclass(frozen=True)
class SentinelURL:
    """A `redis+sentinel://` URL, read."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def auth(self) -> dict[str, Any]:
        """The credentials as redis-py's keyword arguments (none when the URL has none)."""
        given = {"username": self.username, "password": self.password}
        return {name: value for name, value in given.items() if value}

    def without_secrets(self, scheme: str = SENTINEL_SCHEME, db: bool = True) -> str:
        """The URL again with no credentials (they go as keyword arguments): with its DB in
        the path as python-socketio reads it, or without (`db=False`) as `limits` reads it."""
        hosts = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in self.sentinels)
        return f"{scheme}://{hosts}/{f'{self.db}/' if db else ''}{self.service_name}"


def parse_sentinel_url(url: str) -> SentinelURL | None:
    """The Sentinel URL read, None for a single server's URL; BadRedisURL if it is neither."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in SINGLE_SCHEMES:
        return None
    if scheme != SENTINEL_SCHEME:
        raise BadRedisURL(f"a Redis URL starts with redis://, rediss://, unix:// or {SENTINEL_SCHEME}:// (got {scheme or 'none'}://)")
    rest = url.partition("://")[2]
    # Everything up to the last "@" is userinfo: a password may hold "/", "?", "#" or "@".
    userinfo, at, rest = rest.rpartition("@")
    if not at:
        userinfo = ""
    hosts, slash, path = rest.partition("/")
    if "?" in path or "#" in path:
        raise BadRedisURL(f"a {SENTINEL_SCHEME}:// URL takes no query or fragment, e.g. {SENTINEL_EXAMPLE}")
    parts = path.split("/")
    if not slash or len(parts) != 2 or not parts[0].isdigit() or not parts[1]:
        raise BadRedisURL(f"a {SENTINEL_SCHEME}:// URL ends with /DB/SERVICE (the Sentinels' name for the primary), e.g. {SENTINEL_EXAMPLE}")
    user, colon, password = userinfo.partition(":")
    if not colon:  # "secret@host": read as a password, as redis-py reads a userinfo without a colon
        user, password = "", userinfo
    return SentinelURL(
        sentinels=tuple(_host_and_port(host) for host in hosts.split(",")),
        service_name=unquote(parts[1]),
        db=int(parts[0]),
        username=unquote(user) or None,
        password=unquote(password) or None,
    )


def _host_and_port(text: str) -> tuple[str, int]:
    """"host:port" or "[v6 address]:port" of one Sentinel."""
    try:
        parsed = urlsplit(f"//{text}")
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise BadRedisURL(f"{text!r} is not a Sentinel's HOST:PORT; a {SENTINEL_SCHEME}:// URL lists them separated by commas, "
                          f"e.g. {SENTINEL_EXAMPLE}")
    return host, port


def redacted(url: str) -> str:
    """The URL without its secrets, fit for a log line: the userinfo's password (or all of a
    userinfo without a colon, which some clients read as a password) and any `password=` in
    the query are replaced by `***`. A Sentinel URL's single userinfo is hidden the same way."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    # A unix socket's path may hold an "@"; elsewhere everything up to the last "@" is
    # userinfo (a password may hold "/", "?", "#" or "@": no other character bounds it).
    userinfo_end = rest.find("@", 0, rest.find("/") % (len(rest) + 1)) if scheme == "unix" else rest.rfind("@")
    if userinfo_end >= 0:
        credentials, rest = rest[:userinfo_end], rest[userinfo_end + 1:]
        user, colon, _ = credentials.partition(":")
        rest = (f"{user}:***@" if colon and user else "***@") + rest
    rest, hash_, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    if query:
        query = "&".join(
            f"{name}=***" if name.lower() in ("password", "pass", "pwd") else part
            for part in query.split("&") for name in [part.partition("=")[0]]
        )
    return f"{scheme}{sep}{rest}{question}{query}{hash_}{fragment}"
