"""When two names look alike: Unicode's confusable skeleton (UTS #39, section 4), folded for case.

Two people may log in with one name; the page then shows each one's tag beside it (names.js).
A name that only *looks* like another ("аlice" with a Cyrillic а, "Αlice" with a Greek Alpha,
fullwidth "ａｌｉｃｅ", "AIice" with a capital i) must count as the same name, or it passes for
the other without a tag. So the server sends each name's skeleton beside it, and the page
groups names by skeleton rather than by their characters: Unicode's table (6,000 mappings)
stays here, and the page and the server agree on one definition of "looks the same".
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from .confusables_table import PROTOTYPES, UNICODE_VERSION

__all__ = ["UNICODE_VERSION", "skeleton", "tr39_skeleton"]


def _translation(table: str) -> dict[int, str]:
    """confusables_table's lines ("SOURCE TARGET..." in hex) as a str.translate table."""
    mapping: dict[int, str] = {}
    for line in table.splitlines():
        source, *target = line.split()
        mapping[int(source, 16)] = "".join(chr(int(code, 16)) for code in target)
    return mapping


_TO_PROTOTYPE = _translation(PROTOTYPES)


def tr39_skeleton(text: str) -> str:
    """UTS #39's skeleton: NFD, each character to its prototype, NFD again. Two strings with
    one skeleton are confusable (drawn alike in common fonts)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).translate(_TO_PROTOTYPE))


@lru_cache(maxsize=16_384)  # more than the 10,000 sessions kept by default (about 4 MiB when full)
def skeleton(name: str) -> str:
    """What a name looks like, for telling names apart: its compatibility form (NFKC: fullwidth
    and other variant forms become the plain characters they draw as, which the confusables
    table leaves to NFKC for some symbols such as "＃"), then the TR39 skeleton, case-folded,
    and skeletonized again (folding may give characters that have prototypes of their own).

    Case is folded after the first pass, not before: "AIice" (capital i) maps to "Alice"
    only while its I is a capital. "Alice" and "alice" count as one name too: the tag is
    what tells two people apart, and a capital is easy to miss."""
    return tr39_skeleton(tr39_skeleton(unicodedata.normalize("NFKC", name)).casefold())
