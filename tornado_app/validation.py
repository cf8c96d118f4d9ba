"""Checks on what people type: usernames at login and chat messages on the socket.

Each check returns the cleaned value or raises `InvalidInput` with a message fit to show the
person; nothing else ever escapes, whatever the input.
"""

from __future__ import annotations

import re
import unicodedata

from .skeleton import skeleton

MAX_USERNAME_LENGTH = 32
MAX_MARKS_PER_LETTER = 3  # combining marks on one character: enough for any script, not for "Zalgo" text
MAX_CHAT_LENGTH = 500
MAX_CHAT_LINES = 20  # the page's field sends one line; a script could send hundreds of blank ones
# Marks on one character in a chat message: room for Hebrew with points and cantillation and
# for Tibetan stacks (4 or 5); "Zalgo" text piles dozens, which spill over the lines around.
MAX_MARKS_PER_LETTER_IN_CHAT = 6
# The most bytes an accepted text takes in a frame (a JSON string in UTF-8): 4 a character,
# since the characters JSON would escape in 6 bytes (controls) are refused and UTF-8 takes
# at most 4; history.py sizes the newcomer's history frame by it (test_fuzz checks the bound).
MAX_CHAT_BYTES = 4 * MAX_CHAT_LENGTH


class InvalidInput(ValueError):
    """The input was refused; the message says why, in words for the person who sent it."""


# Letters that draw nothing: Hangul fillers, the blank Braille pattern. (Spaces, format
# characters and other invisible code points are refused by category below.)
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _refused_character(char: str) -> bool:
    """Control, format, private-use and unassigned code points (category C*: think of bidi
    overrides and zero-width spaces), and every separator but the plain space (line and
    paragraph separators, no-break and other odd spaces): none belongs in a name that other
    people read."""
    category = unicodedata.category(char)
    return category[0] == "C" or (category[0] == "Z" and char != " ")


# What the page draws beside names (names.js, presence.js, chat.js): "#" and the first
# characters of a session's tag where a name is shared, and "(you)" in the title of your own
# entry. A name that carries them could pass for a shared name's owner, or for you. Checked on
# the skeleton, so that "＃", "♯" or a Cyrillic "(уou)" are caught as well.
_TAG_MARKER = re.compile(r"[#\u266f][\w-]")
_YOU_MARKER = skeleton("(you)")

# Characters that reorder the text around them (Trojan Source, CVE-2021-42574): embeddings and
# overrides (U+202A-U+202E) and isolates (U+2066-U+2069). Marks (LRM, RLM, ALM) only nudge
# their neighbours and are kept: mixed right-to-left and left-to-right text needs them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _visible(char: str) -> bool:
    """Draws something on its own: a letter, digit, punctuation or symbol that is not blank.
    (A combining mark alone draws only on a dotted circle, so it does not count.)"""
    return unicodedata.category(char)[0] in "LNPS" and char not in BLANK_LETTERS


def clean_username(raw: object) -> str:
    """A username in NFC, trimmed of surrounding spaces: 1 to 32 characters, at least one of
    them visible, no control, format or separator characters but the plain space."""
    if not isinstance(raw, str):
        raise InvalidInput("Enter a username.")
    username = unicodedata.normalize("NFC", raw).strip()
    if not username:
        raise InvalidInput("Enter a username.")
    if len(username) > MAX_USERNAME_LENGTH:
        raise InvalidInput(f"A username is at most {MAX_USERNAME_LENGTH} characters long.")
    if any(_refused_character(char) for char in username):
        raise InvalidInput("A username cannot contain control or invisible characters, or spaces other than the plain space.")
    if not any(_visible(char) for char in username):
        raise InvalidInput("A username needs at least one visible letter, digit or symbol.")
    if any(char in BLANK_LETTERS for char in username):
        # "alice" and "alice" + a Hangul filler look the same: one could pass for the other.
        raise InvalidInput("A username cannot contain blank letters (Hangul fillers, the blank Braille pattern).")
    if _most_marks_in_a_row(username) > MAX_MARKS_PER_LETTER:
        raise InvalidInput(f"A username can have at most {MAX_MARKS_PER_LETTER} accents or marks on one letter.")
    _refuse_page_markers(username)
    return username


def _refuse_page_markers(username: str) -> None:
    """Refuse a name that imitates what the page draws beside names."""
    looks = "".join(char for char in skeleton(username) if unicodedata.category(char)[0] != "M")
    if _TAG_MARKER.search(looks):
        raise InvalidInput('A username cannot contain "#" followed by a letter or digit: '
                           "the page shows a session's tag that way, beside a shared name.")
    if _YOU_MARKER in looks:
        raise InvalidInput('A username cannot contain "(you)": the page marks your own name that way.')


def _most_marks_in_a_row(text: str) -> int:
    """The longest run of combining marks (category M*): they pile up on one character and
    spill over the lines around it."""
    longest = run = 0
    for char in text:
        run = run + 1 if unicodedata.category(char)[0] == "M" else 0
        longest = max(longest, run)
    return longest


CLIENT_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,36}")


def client_message_id(payload: object) -> str | None:
    """The page's own id of a `chat` message (a retry sends the same), if it gave one."""
    value = payload.get("id") if isinstance(payload, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not CLIENT_MESSAGE_ID.fullmatch(value):
        raise InvalidInput("A chat message's id must be 1 to 36 letters, digits, '-' or '_'.")
    return value


def clean_chat_payload(payload: object) -> str:
    """The text of a `chat` event: an object with a `text` string of 1 to 500 characters, at
    most 20 lines, without controls that would reorder or hide text, or piles of marks."""
    if not isinstance(payload, dict):
        raise InvalidInput('A chat message must be an object like {"text": "hello"}.')
    text = payload.get("text")
    if not isinstance(text, str):
        raise InvalidInput("A chat message needs a text string.")
    if not text:
        raise InvalidInput("A chat message cannot be empty.")
    if len(text) > MAX_CHAT_LENGTH:
        raise InvalidInput(f"A chat message is at most {MAX_CHAT_LENGTH} characters long.")
    # One scan in C for the common case: every message passes here, hundreds a second.
    refused = _REFUSED_IN_CHAT.search(text)
    if refused is not None:
        char = refused.group()
        if char in BIDI_CONTROLS:
            raise InvalidInput("A chat message cannot contain bidirectional overrides or isolates (U+202A to U+202E, "
                               "U+2066 to U+2069): they reorder the text shown after them.")
        if "\ud800" <= char <= "\udfff":  # "\ud83d" alone in the JSON: no UTF-8 writes it
            raise InvalidInput("A chat message must be text (it held half of a character).")
        raise InvalidInput("A chat message cannot contain control characters other than line breaks and tabs.")
    if text.count("\n") >= MAX_CHAT_LINES:
        raise InvalidInput(f"A chat message is at most {MAX_CHAT_LINES} lines long.")
    if not text.isascii() and _most_marks_in_a_row(text) > MAX_MARKS_PER_LETTER_IN_CHAT:  # ASCII has no marks
        raise InvalidInput(f"A chat message can have at most {MAX_MARKS_PER_LETTER_IN_CHAT} accents or marks on one letter.")
    return text


# What no chat text may hold: bidi embeddings, overrides and isolates; control characters
# (category Cc: C0, DEL, C1) but the line break and the tab; the line and paragraph separators
# (a line break the page would draw without counting it as one); and surrogates, which only
# half of a character sent as "\ud83d" can leave in a str.
_REFUSED_IN_CHAT = re.compile("[\u202a-\u202e\u2066-\u2069\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
