"""`found`: re.search for a test, which fails saying what it looked for and in what, where
re.search's None would fail the next line with an AttributeError."""

from __future__ import annotations

import re


def found(pattern: str, text: str, flags: int = 0) -> re.Match[str]:
    match = re.search(pattern, text, flags)
    assert match is not None, f"{pattern!r} is not in {text[:300]!r}"
    return match
