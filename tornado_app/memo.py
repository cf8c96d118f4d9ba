"""A bounded memo for pure functions of a short string that each connect asks again.

Every connect parses the same few strings: its client address (for the per-address caps,
three times per connect) and its Origin and Host (the Origin policy). Parsing them costs
microseconds each (`ipaddress`, `urlsplit`); looking the answer up costs a tenth of that.

Anyone can send new strings, so the memo must not grow with them: it keeps at most
`maxsize` answers (least recently used out first) and never keeps a string longer than
`longest` characters (those are computed each time). So a flood of distinct addresses or
Origins costs at most `maxsize` entries of at most `longest` characters each, and is only as
slow as without the memo.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class StringMemo(Generic[T]):
    """`function(text)`, remembered for the `maxsize` most recently asked texts of at most
    `longest` characters. `function` must be pure and its answers immutable."""

    def __init__(self, function: Callable[[str], T], maxsize: int, longest: int) -> None:
        self.function = function
        self.longest = longest
        self._cached = functools.lru_cache(maxsize=maxsize)(function)
        functools.update_wrapper(self, function)

    def __call__(self, text: str) -> T:
        if len(text) > self.longest:
            return self.function(text)
        return self._cached(text)

    def cache_info(self) -> functools._CacheInfo:
        """Hits, misses, maxsize and currsize (functools.lru_cache's)."""
        return self._cached.cache_info()

    def cache_clear(self) -> None:
        self._cached.cache_clear()


def string_memo(maxsize: int, longest: int) -> Callable[[Callable[[str], T]], StringMemo[T]]:
    """Decorate a pure function of a string with a StringMemo."""
    def decorate(function: Callable[[str], T]) -> StringMemo[T]:
        return StringMemo(function, maxsize, longest)
    return decorate
