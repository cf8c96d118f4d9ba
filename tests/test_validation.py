"""Usernames and chat payloads: what is accepted, and a clear message for the rest."""

from __future__ import annotations

import re
import unicodedata

import pytest

from tornado_app.validation import InvalidInput, clean_chat_payload, clean_username


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("ada", "ada"),
        ("  ada lovelace \t", "ada lovelace"),
        ("x" * 32, "x" * 32),
        ("Zoë 🚀", "Zoë 🚀"),
        ("Zoe\u0308", "Zoë"),  # NFC: "e" + combining diaeresis is stored as one "ë"
        ("이하은", "이하은"),
        ("🚀", "🚀"),
    ],
)
def test_usernames_are_trimmed_and_kept(typed: str, kept: str) -> None:
    assert clean_username(typed) == kept


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter a username."),
        ("   ", "Enter a username."),
        ("x" * 33, "at most 32 characters"),
        ("ada\x00", "control"),
        ("a\nb", "control"),
        ("evil\u202egnp", "control"),  # right-to-left override
        # Names that show nothing: each was accepted once although it draws no character.
        ("\u3164", "visible"),  # Hangul filler (a letter by category)
        ("\u3164\u3164 \u3164", "visible"),
        ("\u2800", "visible"),  # blank Braille pattern (a symbol by category)
        ("\u200b\u200b\u200b", "invisible"),  # zero-width spaces (format)
        ("\u0301", "visible"),  # a combining mark alone
        # Separators other than the plain space, inside a name.
        ("a\u2028b", "invisible"),  # line separator
        ("a\u2029b", "invisible"),  # paragraph separator
        ("a\u00a0b", "spaces other than the plain space"),  # no-break space
        ("a\u3000b", "spaces other than the plain space"),  # ideographic space
        ("ad\u00ada", "invisible"),  # soft hyphen (format)
        (None, "Enter a username."),
        (["ada"], "Enter a username."),
    ],
)
def test_bad_usernames_are_refused_with_a_reason(typed: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        clean_username(typed)


@pytest.mark.parametrize("text", ["hi", "x", "y" * 500, "<script>alert(1)</script>", "line\nbreak"])
def test_chat_text_of_1_to_500_characters_is_accepted(text: str) -> None:
    assert clean_chat_payload({"text": text}) == text


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"text": ""}, "cannot be empty"),
        ({"text": "z" * 501}, "at most 500"),
        ({"text": 42}, "needs a text string"),
        ({"text": None}, "needs a text string"),
        ({}, "needs a text string"),
        ("hello", "must be an object"),
        (["hello"], "must be an object"),
        (None, "must be an object"),
        (7, "must be an object"),
    ],
)
def test_bad_chat_payloads_are_refused_with_a_reason(payload: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        clean_chat_payload(payload)


@pytest.mark.parametrize("name", ["alice\u3164", "\u3164alice", "bo\u2800b", "a" + "\u0301" * 31, "x\u0301\u0302\u0303\u0304"],
                         ids=["hangul-filler-after", "hangul-filler-before", "braille-blank-inside", "31-marks", "4-marks"])
def test_a_name_that_passes_for_another_or_spills_over_its_line_is_refused(name: str) -> None:
    """'alice' plus an invisible Hangul filler looked exactly like 'alice'; 'a' with 31
    combining marks drew over the lines around it. Both were accepted."""
    with pytest.raises(InvalidInput):
        clean_username(name)


@pytest.mark.parametrize("name", ["Zoë", "Nguyễn", "e\u0301\u0302\u0303", "ค่ะ", "한국어"])
def test_names_with_accents_and_marks_of_real_scripts_stay_accepted(name: str) -> None:
    assert clean_username(name) == unicodedata.normalize("NFC", name)


# Look-alikes and the page's own markers (issue 21, item 10).

@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("alice #k3Jd", '"#" followed by a letter or digit'),  # the chat's tag marker, after a shared name
        ("alice#k3Jd", '"#" followed by a letter or digit'),
        ("#1 fan", '"#" followed by a letter or digit'),
        ("alice ＃k3Jd", '"#" followed by a letter or digit'),  # fullwidth number sign
        ("alice ﹟k3Jd", '"#" followed by a letter or digit'),  # small number sign
        ("alice ♯k3Jd", '"#" followed by a letter or digit'),  # music sharp sign
        ("alice #\u0301k3Jd", '"#" followed by a letter or digit'),  # a mark between them hides nothing
        ("alice #_-", '"#" followed by a letter or digit'),  # tags are URL-safe base64
        ("alice (you)", '"(you)"'),  # the title of one's own entry in the online list
        ("alice (YOU)", '"(you)"'),
        ("alice （you）", '"(you)"'),  # fullwidth parentheses
        ("alice (уоu)", '"(you)"'),  # Cyrillic у and о
    ],
)
def test_a_name_that_imitates_the_pages_markers_is_refused(name: str, message: str) -> None:
    """'alice #k3Jd' beside a real alice read as a shared name with its tag, and
    'alice (you)' as somebody's own entry: both were accepted."""
    with pytest.raises(InvalidInput, match=re.escape(message)):
        clean_username(name)


@pytest.mark.parametrize("name", ["C#", "C# fan", "a # b", "number #", "(you", "you", "thank you", "Ada (yours)"])
def test_names_near_the_markers_but_not_imitating_them_stay_accepted(name: str) -> None:
    assert clean_username(name) == name


@pytest.mark.parametrize("text", ["שָׁלוֹם", "مرحبا\u200f!", "👨\u200d👩\u200d👧", "می\u200cخواهم", "a\tb",
                                  "\n".join(["line"] * 20), "x\u0301\u0302\u0303\u0304\u0305\u0306"],
                         ids=["hebrew-points", "rlm", "zwj-emoji", "zwnj-persian", "tab", "20-lines", "6-marks"])
def test_chat_text_of_real_scripts_and_short_layouts_is_accepted(text: str) -> None:
    assert clean_chat_payload({"text": text}) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("evil \u202etxt.exe", "bidirectional overrides"),  # right-to-left override
        ("a\u202ab", "bidirectional overrides"),  # left-to-right embedding
        ("a\u2066b", "bidirectional overrides"),  # left-to-right isolate, never closed
        ("a\u2069b", "bidirectional overrides"),
        ("a\x00b", "control characters"),
        ("a\rb", "control characters"),
        ("a\x1b[2Jb", "control characters"),  # a terminal escape, for whoever reads the logs
        ("a\x85b", "control characters"),  # next line (C1)
        ("a\u2028b", "control characters"),  # line separator
        ("hi" + "\n" * 300, "at most 20 lines"),
        ("\n".join(["line"] * 21), "at most 20 lines"),
        ("x" + "\u0301" * 50, "at most 6 accents"),
        ("x" + "\u0301" * 7, "at most 6 accents"),
    ],
)
def test_chat_text_that_reorders_hides_or_spills_is_refused_with_a_reason(text: str, message: str) -> None:
    """A U+202E reversed the text shown after it, 300 line breaks pushed everything else
    out of view and 50 combining marks drew over the lines around: all were passed as they
    were."""
    with pytest.raises(InvalidInput, match=message):
        clean_chat_payload({"text": text})
