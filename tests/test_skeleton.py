"""The confusable skeleton: names that look alike count as one name (issue 21, item 10)."""

from __future__ import annotations

import unicodedata

import pytest

from tornado_app.confusables_table import PROTOTYPES, UNICODE_VERSION
from tornado_app.history import WIDEST_SKELETON_CHARACTER
from tornado_app.skeleton import skeleton, tr39_skeleton


@pytest.mark.parametrize(
    "look_alike",
    ["alice", "аlice", "Αlice", "ａｌｉｃｅ", "AIice", "Alice", "a1ice", "аliсе", "ɑlice", "alıce"],
    ids=["itself", "cyrillic-a", "greek-alpha", "fullwidth", "capital-i", "capital-a", "digit-one",
         "cyrillic-a-and-es-and-ie", "latin-alpha", "dotless-i"],
)
def test_names_that_look_like_alice_have_alices_skeleton(look_alike: str) -> None:
    """Each was accepted beside a real alice and never got a tag: the page compared characters."""
    assert skeleton(look_alike) == skeleton("alice")


@pytest.mark.parametrize(("one", "other"), [("alice", "alicia"), ("Zoë", "Zoe"), ("bob", "bab"), ("이하은", "이하온"),
                                            ("ada", "ada lovelace")])
def test_names_that_look_different_keep_different_skeletons(one: str, other: str) -> None:
    assert skeleton(one) != skeleton(other)


def test_the_skeleton_follows_uts39_on_its_own_examples() -> None:
    """UTS #39 section 4: "paypal" with a Cyrillic а is confusable with "paypal"; "rn" draws as "m"."""
    assert tr39_skeleton("pаypal") == tr39_skeleton("paypal")
    assert tr39_skeleton("rn") == tr39_skeleton("m")
    assert tr39_skeleton("ǉ") == "lj"


def test_the_table_is_unicodes_whole_table() -> None:
    """The generated table holds every one of Unicode's mappings (6,311 in version 13.0.0), each
    source once, and each skeleton comes out in NFD as UTS #39 defines it."""
    lines = PROTOTYPES.splitlines()
    assert UNICODE_VERSION == "13.0.0" and len(lines) == 6311
    sources = [line.split()[0] for line in lines]
    assert len(set(sources)) == len(sources)
    for source in sources:
        assert unicodedata.is_normalized("NFD", tr39_skeleton(chr(int(source, 16)))), source


def test_no_character_has_a_longer_skeleton_than_the_one_the_history_frame_is_sized_by() -> None:
    """history.py sizes the newcomer's history frame (and so the largest --history that fits in
    --max-unsent-kib) by the longest skeleton a name can have: 32 of U+FDFA. A character with
    a longer one would let a frame outgrow that bound."""
    widest = len(skeleton(WIDEST_SKELETON_CHARACTER).encode())
    longer = [hex(code) for code in range(0x110000)
              if not 0xD800 <= code <= 0xDFFF and len(skeleton(chr(code)).encode()) > widest]
    assert not longer
