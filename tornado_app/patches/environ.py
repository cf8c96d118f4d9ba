"""engineio's Tornado driver's `translate_request`, the same environ built for less.

engineio turns every request it handles (each handshake, each poll and POST) into a
WSGI-like environ with `_async['translate_request']`. Its Tornado driver's version defines a
class (`AwaitablePayload`) anew on every call and formats each header's name twice: 20-25 us
per request measured, about 2 % of a connect's CPU. And python-socketio keeps each socket's
handshake environ for the socket's whole life, so every open socket held a class of its
own: 4.5 KB per kept environ, against 1.1 KB here (RSS per idle socket in the harness: 43.9
-> 39.2 KiB). `translate_request` here builds exactly the same dict (the same keys and
values; `wsgi.input` reads the same bytes) with the class defined once and the header
names' environ keys remembered (at most ENVIRON_KEYS_KEPT names of at most
HEADER_NAME_LONGEST characters: any client can invent names).

It relies on the shape of engineio's environ (which keys it and python-socketio read) and
on `_async` being the driver's table of functions, replaced on the server instance only;
tests/patches/test_environ.py compares the two translations on the same requests.
"""

from __future__ import annotations

import functools
import sys
from typing import Any
from urllib.parse import urlsplit

ENVIRON_KEYS_KEPT = 256  # distinct header names remembered (a browser sends ~20)
HEADER_NAME_LONGEST = 64


class AwaitablePayload:
    """A request's body as engineio reads it (`await environ['wsgi.input'].read(length)`)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes | None) -> None:
        self.payload = payload or b""

    async def read(self, length: int | None = None) -> bytes:
        if length is None:
            r = self.payload
            self.payload = b""
        else:
            r = self.payload[:length]
            self.payload = self.payload[length:]
        return r


def _environ_key(name: str) -> str:
    upper = name.upper()
    if upper == "CONTENT-TYPE":
        return "CONTENT_TYPE"
    if upper == "CONTENT-LENGTH":
        return "CONTENT_LENGTH"
    return "HTTP_" + upper.replace("-", "_")


_remembered_key = functools.lru_cache(maxsize=ENVIRON_KEYS_KEPT)(_environ_key)


def environ_key(name: str) -> str:
    """The environ key of a header (`Sec-Fetch-Mode` -> `HTTP_SEC_FETCH_MODE`), as
    engineio's driver names it; remembered for the names browsers send."""
    return _remembered_key(name) if len(name) <= HEADER_NAME_LONGEST else _environ_key(name)


def translate_request(handler: Any) -> dict[str, Any]:
    """engineio's Tornado `translate_request(handler)`: the same environ (module docstring)."""
    request = handler.request
    path = request.path
    query = request.query
    environ: dict[str, Any] = {
        "wsgi.input": AwaitablePayload(request.body),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.async": True,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "SERVER_SOFTWARE": "aiohttp",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": query or "",
        "RAW_URI": f"{path}?{query}" if query else path,
        "SERVER_PROTOCOL": f"HTTP/{request.version}",  # "HTTP/HTTP/1.1", as engineio's
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
        "SERVER_NAME": "aiohttp",
        "SERVER_PORT": "0",
        "tornado.handler": handler,
    }
    for name, value in request.headers.items():
        environ[environ_key(name)] = value
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    environ["PATH_INFO"] = urlsplit(path).path
    environ["SCRIPT_NAME"] = ""
    return environ
