"""Giving freed memory back to the operating system after a wave of request bodies.

A request body arrives in 16 KiB pieces (server.READ_CHUNK_BYTES), each a `bytes` object
that CPython takes from the C library's malloc (anything over 512 bytes is). glibc's malloc
gives memory back only from the top of its heap: once the wave is over, the freed pieces
lie between objects still alive, and the process keeps them. Measured (issue 21, item 13):
1,000 connections from 5 addresses each sending 64,999 of a 65,000-byte polling POST took
the server from 53 to 144 MiB, and 142 MiB were still held after they closed; one
`malloc_trim(0)` then brought it to 68 MiB. `malloc_trim` hands every whole free page inside
the heap back to the kernel (glibc 2.8 and later).

Elsewhere (musl, macOS) there is no `malloc_trim`, and `give_back` does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        this_process = ctypes.CDLL(None)  # the C library this Python runs on
    except OSError:
        return None
    trim = getattr(this_process, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()


def give_back() -> bool:
    """Return the C heap's whole free pages to the kernel; False where the C library cannot."""
    if _malloc_trim is None:
        return False
    started = time.perf_counter()
    released = bool(_malloc_trim(0))
    log.debug("gave free heap memory back to the OS (%s) in %.1f ms", "some" if released else "none",
              1000 * (time.perf_counter() - started))
    return True
