"""patches/query_copy.py: Tornado's requests copy their query arguments without copy.deepcopy."""

from __future__ import annotations

import copy
import inspect

from tornado import httputil
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from tornado_app.patches import query_copy


def test_tornado_still_deep_copies_a_requests_arguments_through_its_module_level_copy() -> None:
    source = inspect.getsource(httputil.HTTPServerRequest.__init__)
    assert "self.query_arguments = copy.deepcopy(self.arguments)" in source
    module_source = inspect.getsource(httputil)
    assert module_source.count("copy.deepcopy(") == 1 and module_source.count("copy.copy(") == 0


def test_a_requests_query_arguments_are_an_equal_copy_apart_from_its_arguments() -> None:
    query_copy.install()
    assert httputil.copy.deepcopy is query_copy.copy_query_arguments
    request = HTTPServerRequest(start_line=RequestStartLine("GET", "/socket.io/?EIO=4&transport=websocket&t=a&t=b&empty=", "HTTP/1.1"),
                                 headers=HTTPHeaders({"Host": "127.0.0.1"}))
    assert request.query_arguments == request.arguments == {
        "EIO": [b"4"], "transport": [b"websocket"], "t": [b"a", b"b"], "empty": [b""]}
    request.arguments["t"].append(b"c")
    request.arguments["new"] = [b"x"]
    assert request.query_arguments == {"EIO": [b"4"], "transport": [b"websocket"], "t": [b"a", b"b"], "empty": [b""]}


def test_anything_but_a_dict_of_lists_of_bytes_is_deep_copied_as_before() -> None:
    nested: dict[str, list[object]] = {"a": [[b"x"]], "b": [b"y"]}
    copied: dict[str, list[object]] = query_copy.copy_query_arguments(nested)
    assert copied == nested
    assert copied["a"][0] is not nested["a"][0]  # the inner list copied too
    assert query_copy.copy_query_arguments([1, {"k": [2]}]) == copy.deepcopy([1, {"k": [2]}])
