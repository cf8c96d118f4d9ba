"""Checks on what people type: usernames at login and chat messages on the socket.

Each check returns the cleaned value or raises `InvalidInput` with a message fit to show the
person; nothing else ever escapes, whatever the input.
"""

from __future__ import annotations

import json
import unicodedata

MAX_USERNAME_LENGTH = 32
MAX_MARKS_PER_LETTER = 3  # combining marks on one character: enough for any script, not for "Zalgo" text
MAX_CHAT_LENGTH = 500
# The text as every frame carries it (a JSON string in UTF-8): 500 characters of any script
# fit (an emoji is 4 bytes), 500 control characters (6 bytes each as JSON escapes) do not.
# history.py sizes the newcomer's history frame from it.
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
    return username


def _most_marks_in_a_row(text: str) -> int:
    """The longest run of combining marks (category M*): they pile up on one character and
    spill over the lines around it."""
    longest = run = 0
    for char in text:
        run = run + 1 if unicodedata.category(char)[0] == "M" else 0
        longest = max(longest, run)
    return longest


def clean_chat_payload(payload: object) -> str:
    """The text of a `chat` event: an object with a `text` string of 1 to 500 characters."""
    if not isinstance(payload, dict):
        raise InvalidInput('A chat message must be an object like {"text": "hello"}.')
    text = payload.get("text")
    if not isinstance(text, str):
        raise InvalidInput("A chat message needs a text string.")
    if not text:
        raise InvalidInput("A chat message cannot be empty.")
    if len(text) > MAX_CHAT_LENGTH:
        raise InvalidInput(f"A chat message is at most {MAX_CHAT_LENGTH} characters long.")
    if _encoded_bytes(text) > MAX_CHAT_BYTES:
        raise InvalidInput(f"A chat message is at most {MAX_CHAT_BYTES} bytes once encoded (control characters count 6 each).")
    return text


def _encoded_bytes(text: str) -> int:
    """The bytes of `text` in a frame, as a JSON string in UTF-8 without its quotes."""
    try:
        return len(json.dumps(text, ensure_ascii=False).encode()) - 2
    except UnicodeEncodeError:  # a lone surrogate ("\\ud83d" alone in the JSON): no text UTF-8 can carry
        raise InvalidInput("A chat message must be text (it held half of a character).") from None
