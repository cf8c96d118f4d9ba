"""patches/environ.py: the environ engineio acts on, built for less, and the same.

engineio's Tornado driver's `translate_request` is the reference: for the same requests
both give the same keys, in the same order, with the same values, and a body read the
same way; engineio's server still builds its environ through `_async['translate_request']`."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

import pytest
from engineio.async_drivers import tornado as engineio_tornado
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from tornado_app.patches import environ
from tornado_app.patches.engineio_server import TunedEngineIOServer


class Handler:
    """What a translation reads of engineio's Tornado handler: its request."""

    def __init__(self, request: HTTPServerRequest) -> None:
        self.request = request


def handler(method: str, uri: str, headers: list[tuple[str, str]], body: bytes = b"") -> Handler:
    fields = HTTPHeaders()
    for name, value in headers:
        fields.add(name, value)
    request = HTTPServerRequest(start_line=RequestStartLine(method, uri, "HTTP/1.1"), headers=fields, body=body)
    return Handler(request)


BROWSER = [("Host", "127.0.0.1:8888"), ("Origin", "http://127.0.0.1:8888"), ("Cookie", "session=abc; other=1"),
           ("Sec-Fetch-Mode", "websocket"), ("Sec-Fetch-Dest", "empty"), ("User-Agent", "Mozilla/5.0")]
REQUESTS = [
    handler("GET", "/socket.io/?EIO=4&transport=websocket",
            [*BROWSER, ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
             ("Sec-WebSocket-Version", "13")]),
    handler("GET", "/socket.io/?EIO=4&transport=polling&t=abc", BROWSER),
    handler("POST", "/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA",
            [*BROWSER, ("Content-Type", "text/plain;charset=UTF-8"), ("Content-Length", "14")], b"42[\"whoami\",1]"),
    handler("GET", "/socket.io/", [("Host", "h"), ("X-Forwarded-Proto", "https"), ("x-custom-header", "a"), ("X-Custom-Header", "b"),
                                   ("content-type", "x/y")]),
    handler("GET", "//odd/path?x", [("Host", "h")]),
    handler("OPTIONS", "/socket.io/?" + "q" * 5000, [("X-" + "N" * 100, "long name"), ("Host", "h")]),
]


@pytest.mark.parametrize("request_handler", REQUESTS)
def test_the_environ_is_the_one_engineios_tornado_driver_builds(request_handler: Handler) -> None:
    theirs = engineio_tornado.translate_request(request_handler)
    ours = environ.translate_request(request_handler)
    assert list(ours) == list(theirs)
    assert {key: value for key, value in ours.items() if key != "wsgi.input"} == \
        {key: value for key, value in theirs.items() if key != "wsgi.input"}

    async def read(env: dict[str, Any]) -> list[bytes]:
        return [await env["wsgi.input"].read(3), await env["wsgi.input"].read(), await env["wsgi.input"].read()]

    assert asyncio.run(read(ours)) == asyncio.run(read(theirs))


def test_a_kept_environ_holds_no_class_of_its_own() -> None:
    """python-socketio keeps each socket's handshake environ while the socket is open:
    engineio's translation defined a class per request, which every open socket then held."""
    first, second = (environ.translate_request(handler("GET", "/socket.io/?EIO=4", BROWSER)) for _ in range(2))
    assert type(first["wsgi.input"]) is type(second["wsgi.input"]) is environ.AwaitablePayload

    def kept_bytes(translate: Any) -> float:
        request_handler = REQUESTS[0]
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [translate(request_handler) for _ in range(200)]
            gc.collect()
            return (tracemalloc.get_traced_memory()[0] - before) / len(kept)
        finally:
            tracemalloc.stop()

    ours, theirs = kept_bytes(environ.translate_request), kept_bytes(engineio_tornado.translate_request)
    assert ours < 1600 < 3 * ours < theirs, (ours, theirs)  # measured: ~1,030 and ~4,600 bytes


def test_header_names_are_remembered_within_a_bound() -> None:
    for n in range(2 * environ.ENVIRON_KEYS_KEPT):
        assert environ.environ_key(f"X-Made-Up-{n}") == f"HTTP_X_MADE_UP_{n}"
    assert environ._remembered_key.cache_info().currsize <= environ.ENVIRON_KEYS_KEPT
    before = environ._remembered_key.cache_info().currsize
    assert environ.environ_key("X-" + "n" * environ.HEADER_NAME_LONGEST) == "HTTP_X_" + "N" * environ.HEADER_NAME_LONGEST
    assert environ._remembered_key.cache_info().currsize == before


def test_engineio_builds_its_environ_through_our_translation() -> None:
    """engineio's handle_request calls `_async['translate_request']`: replaced on our server
    only, not in engineio's driver for every server."""
    server = TunedEngineIOServer(async_mode="tornado")
    assert server._async["translate_request"] is environ.translate_request
    assert engineio_tornado._async["translate_request"] is engineio_tornado.translate_request
    seen: list[Any] = []

    class Seen(Exception):
        pass

    def translate(request_handler: Any) -> dict[str, Any]:
        seen.append(request_handler)
        raise Seen

    server._async["translate_request"] = translate
    with pytest.raises(Seen):
        asyncio.run(server.handle_request(REQUESTS[0]))
    assert seen == [REQUESTS[0]]
