"""What went wrong when Redis was asked, said as what happened.

redis-py's words are about the protocol ("invalid username-password pair or user is
disabled", "HELLO must be called with the client already authenticated", "DB index is out
of range", "Error 111 connecting to ..."), and a wrong password reads as "does not answer"
when every failure is put that way. Here each is said as what Redis did (it refused the
password, it has no such database) or what the link did (nothing listens there, no TLS
handshake), with what to write instead where that is plain. A sentence never holds the
password: the URL is shown redacted, and no branch repeats what the URL holds but its host,
database and user name.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
from urllib.parse import unquote, urlsplit

from redis.asyncio.sentinel import MasterNotFoundError
from redis.exceptions import AuthenticationError, InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .urls import parse_sentinel_url, redacted

DATABASES_BY_DEFAULT = 16  # redis.conf's `databases`
_WITH_A_PASSWORD = {  # where each form of URL holds a password
    "redis": "redis://:PASSWORD@HOST:PORT/DB", "rediss": "rediss://:PASSWORD@HOST:PORT/DB",
    "unix": "unix://:PASSWORD@/PATH/TO/redis.sock", "redis+sentinel": "redis+sentinel://:PASSWORD@HOST:PORT,.../DB/SERVICE",
}


def failure(url: str, error: BaseException, timeout: float) -> str:
    """One line, "Redis at URL" and what happened, for the error of a command given `timeout`
    seconds (a connection's and an answer's)."""
    return f"Redis at {redacted(url)} {what_happened(url, error, timeout)}"


def what_happened(url: str, error: BaseException, timeout: float) -> str:
    """The sentence's predicate: "refused the password", "does not answer: connection refused"."""
    scheme = url.partition("://")[0].lower()
    if isinstance(error, MasterNotFoundError):
        return f"does not answer: {in_short(error)}"
    if isinstance(error, AuthenticationError):
        return _refused_credentials(url)
    if isinstance(error, ResponseError):
        if str(error).startswith("DB index is out of range"):
            return (f"has no database {_database(url)}: a Redis has databases 0 to {DATABASES_BY_DEFAULT - 1} "
                    "unless its redis.conf's `databases` says more")
        return f"refused: {error}"
    if isinstance(error, InvalidResponse):
        return f"does not speak Redis: it answered {_first_words(error)!r}"
    cause = error.__cause__ or error.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (f"offers a TLS certificate this process does not trust ({cause.verify_message}): name its CA "
                "with ?ssl_ca_certs=/PATH/TO/ca.pem")
    if isinstance(cause, ssl.SSLError):
        return f"failed the TLS handshake ({cause.reason or cause}){' (a plain Redis wants redis://)' if scheme == 'rediss' else ''}"
    if isinstance(cause, socket.gaierror):
        return f"cannot be found: no address for {_host(url)!r} ({cause.strerror})"
    if isinstance(cause, FileNotFoundError):
        return "does not answer: no such socket file"
    if isinstance(cause, PermissionError):
        return "cannot be reached: this user may not open its socket file"
    if isinstance(cause, ConnectionRefusedError):
        return "does not answer: nothing listens there (connection refused)"
    if isinstance(cause, ConnectionResetError) or "Connection closed by server" in str(error):
        tls = " (a TLS port? then rediss://)" if scheme == "redis" else ""
        return f"closed the connection without an answer{tls}"
    if isinstance(error, RedisTimeoutError | TimeoutError):
        if scheme == "rediss":
            return f"does not answer the TLS handshake within {timeout:g} s (a plain, non-TLS port? then redis://)"
        return f"does not answer within {timeout:g} s"
    if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"does not answer: {cause.strerror}"
    return f"does not answer: {error}"


def _refused_credentials(url: str) -> str:
    """AUTH (or HELLO's) refusal: a password that is missing, or one that is wrong."""
    sentinel = parse_sentinel_url(url)
    if sentinel is not None:
        user, password = sentinel.username or "", sentinel.password or ""
    else:
        parts = urlsplit(url)
        user, password = unquote(parts.username or ""), parts.password or ""
        if re.search(r"(?:^|&)password=[^&]", parts.query):
            password = "given"
    if not password:
        return f"needs a password: put it in the URL, e.g. {_WITH_A_PASSWORD[url.partition('://')[0].lower()]}"
    if user:
        return f"refused the password of user {user!r} (or that user is disabled)"
    return "refused the password"


def _database(url: str) -> str:
    """The database the URL names: ?db=, else its path (a socket's: 0), a Sentinel URL's /DB/."""
    sentinel = parse_sentinel_url(url)
    if sentinel is not None:
        return str(sentinel.db)
    parts = urlsplit(url)
    asked = re.search(r"(?:^|&)db=([0-9]+)", parts.query)
    if asked:
        return asked.group(1)
    return "0" if parts.scheme == "unix" else parts.path.strip("/") or "0"


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "localhost"
    except ValueError:
        return "?"


def _first_words(error: InvalidResponse) -> str:
    """What the other end said (a proxy's "HTTP/1.1 400 Bad Request"), shortened."""
    said = str(error).removeprefix("Protocol Error: ")
    if said[:2] in ("b'", 'b"') and said[-1:] == said[1]:  # the repr of the bytes it sent
        said = said[2:-1]
    return said if len(said) <= 60 else said[:57] + "..."


def in_short(error: BaseException) -> str:
    """The error for a log line. redis-py's "No master found" holds the repr of every
    Sentinel's client (a screenful each); it is said as the Sentinels' answers instead."""
    if not isinstance(error, MasterNotFoundError):
        return str(error)
    text = str(error)
    answers = re.findall(r"> - (?:\w+:)?(\w+: .*?)(?=, <redis\.|$)", text)
    said = text.partition(" : ")[0]
    return f"{said} (the Sentinels said: {'; '.join(dict.fromkeys(answers))})" if answers else said
