"""Tornado's request without a deep copy of its query arguments on every request.

`tornado.httputil.HTTPServerRequest.__init__` sets `query_arguments = copy.deepcopy(arguments)`:
the generic deep copy walks a dict of lists of bytes through `copy`'s dispatch, memo and
reductions (7 calls, about 4 µs per request: every Engine.IO handshake and poll). Bytes are
immutable, so a new dict of new lists is the same deep copy. `install()` gives httputil a
`copy` whose `deepcopy` does that for such a dict, and defers to `copy.deepcopy` for anything
else. httputil names `copy` at that one place only (tests/patches/test_query_copy.py checks
the line, and that the two dicts stay apart).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

from tornado import httputil


def copy_query_arguments(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """A deep copy of `value`: cheaply for a dict of lists of bytes (a request's arguments)."""
    if type(value) is dict and all(type(values) is list and all(type(item) is bytes for item in values)
                                   for values in value.values()):
        return {name: list(values) for name, values in value.items()}
    return copy.deepcopy(value, memo)


def install() -> None:
    """Have Tornado's requests copy their query arguments with `copy_query_arguments`."""
    httputil.copy = SimpleNamespace(deepcopy=copy_query_arguments, copy=copy.copy)  # type: ignore[assignment]
