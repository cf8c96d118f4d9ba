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

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
SINGLE_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_EXAMPLE = "redis+sentinel://:PASSWORD@127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/0/mymaster"
FORMS = f"redis://HOST:PORT/DB, rediss:// for TLS, unix:///PATH/TO/redis.sock, or {SENTINEL_SCHEME}://HOST:PORT,.../DB/SERVICE"
# What a person may have written instead of a Redis scheme, and the scheme they meant.
_MEANT = {"http": "redis", "tcp": "redis", "https": "rediss", "tls": "rediss", "file": "unix", "redis-sentinel": SENTINEL_SCHEME,
          "sentinel": SENTINEL_SCHEME}
_DB_PATH = re.compile(r"/?[0-9]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")  # RFC 3986's


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


def redacted(url: str, slip: bool = False) -> str:
    """The URL without its secrets, fit for a log line: the userinfo's password (or all of a
    userinfo without a colon, which some clients read as a password) and any `password=` in
    the query are replaced by `***`. A Sentinel URL's single userinfo is hidden the same way.
    `slip`: a URL being refused, whose unix:// form is masked up to its last "@" too (its
    socket path's "@", if any, with it), as whatever was written there may be a password."""
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):  # ":pw@host://": no scheme, all of it to be read
        scheme, sep, rest = "", "", url
    # A unix socket's path may hold an "@"; elsewhere everything up to the last "@" is
    # userinfo (a password may hold "/", "?", "#" or "@": no other character bounds it).
    in_path = scheme.lower() == "unix" and not slip
    userinfo_end = rest.find("@", 0, rest.find("/") % (len(rest) + 1)) if in_path else rest.rfind("@")
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


def check_redis_url(url: str) -> str:
    """The URL as the app will use it (its scheme in lower case: `limits` and redis-py read
    it case-sensitively), or BadRedisURL saying in one line what is wrong and what to write.

    Everything that needs no network is checked here, at the command line (cli.py's
    --redis-url type), so that a slip is one line naming the flag, not a traceback from the
    first of the three clients that reads the URL (the bus, `limits`, python-socketio's
    manager) once the server starts: a forgotten scheme, another protocol's, a port or a
    database that is not a number, a socket path that is not absolute, and, where redis-py
    is installed, an option in the query it does not take. What only Redis can say (no such
    database, a wrong password) is said at start (redis/failures.py)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        raise BadRedisURL(f"{_shown(url)!r} has no scheme: write {_suggested(url)} ({FORMS})")
    lowered = scheme.lower()
    if lowered not in (*SINGLE_SCHEMES, SENTINEL_SCHEME):
        meant = _MEANT.get(lowered)
        instead = f"write {_shown(f'{meant}://{rest}')}" if meant else f"write {FORMS}"
        raise BadRedisURL(f"{scheme}:// is not a Redis URL's scheme: {instead}")
    url = f"{lowered}://{rest}"
    if lowered == SENTINEL_SCHEME:
        parse_sentinel_url(url)
        return url
    if lowered == "unix":
        _check_socket_path(url)
    else:
        _check_host_port_db(url)
    _check_with_redis_py(url)
    return url


def _check_host_port_db(url: str) -> None:
    """A `redis://` or `rediss://` URL: [[USER]:PASSWORD@]HOST[:PORT][/DB][?OPTIONS]."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL"
        raise BadRedisURL(f"{_shown(url)}: an IPv6 address in brackets needs its closing ']', e.g. redis://[::1]:6379/0") from None
    if "@" in parts.path + parts.query + parts.fragment:
        # The clients end the userinfo at the first "/", "?" or "#": the rest of the password
        # would be read as the host, the database or the options (and shown here: not said).
        raise BadRedisURL(f"{_shown(url)}: a '/', '?' or '#' in the password (or user name) is written %2F, %3F or %23")
    if parts.fragment or url.endswith("#"):
        raise BadRedisURL(f"{_shown(url)}: a Redis URL has no '#' part")
    try:
        port = parts.port
    except ValueError:
        port_text = parts.netloc.rpartition("@")[2].rpartition("]")[2].rpartition(":")[2]
        raise BadRedisURL(f"{_shown(url)}: the port is a number from 1 to 65535 (got {port_text!r})") from None
    if port == 0:
        raise BadRedisURL(f"{_shown(url)}: the port is a number from 1 to 65535 (got '0'); Redis's own is 6379")
    if not _DB_PATH.fullmatch(parts.path):
        raise BadRedisURL(f"{_shown(url)}: the path is the database's number, e.g. /0 (got {parts.path!r})")


def _suggested(url: str) -> str:
    """What a URL written without its scheme probably meant."""
    shown = _shown(url)
    for scheme in (SENTINEL_SCHEME, *SINGLE_SCHEMES):
        if shown.lower().startswith(f"{scheme}:"):  # "redis:host" or "redis:/host"
            return f"{scheme}://{shown[len(scheme) + 1:].lstrip('/')}"
    return f"unix://{shown}" if shown.startswith("/") else f"redis://{shown}"


def _check_socket_path(url: str) -> None:
    """A `unix://` URL names its socket file by an absolute path: unix:///run/redis.sock."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL": a "[" where the host would be
        raise BadRedisURL(f"{_shown(url)}: write unix:///PATH/TO/redis.sock") from None
    if parts.hostname:  # unix://run/redis.sock: "run" was read as a host
        raise BadRedisURL(f"{_shown(url)}: a unix:// URL names the socket file by its absolute path, after three "
                          f"slashes: {_shown('unix:///' + url.partition('://')[2])}")
    if parts.path in ("", "/"):
        raise BadRedisURL(f"{_shown(url)} names no socket file: write unix:///PATH/TO/redis.sock")


def _check_with_redis_py(url: str) -> None:
    """Ask redis-py to read the URL as the app's clients will (no connection is made):
    its query's options, their values. Without redis-py installed there is nothing to ask;
    the server then says it needs the `redis` extra."""
    try:
        from redis.asyncio import ConnectionPool
        from redis.exceptions import RedisError
    except ImportError:
        return
    try:
        ConnectionPool.from_url(url).make_connection()
    except TypeError as error:  # "...__init__() got an unexpected keyword argument 'foo'"
        unknown = re.search(r"argument '(\w+)'", str(error))
        name = f"{unknown.group(1)!r}" if unknown else "one of its options"
        raise BadRedisURL(f"{_shown(url)}: redis-py takes no option {name} in a Redis URL") from None
    except (ValueError, RedisError) as error:
        raise BadRedisURL(f"{_shown(url)}: {error}") from None


def _shown(url: str) -> str:
    """A URL in a refusal: without its secrets, however it was mangled."""
    return redacted(url, slip=True)
