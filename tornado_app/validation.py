"""Checks on what people type: usernames at login and chat messages on the socket.

Each check returns the cleaned value or raises `InvalidInput` with a message fit to show the
person; nothing else ever escapes, whatever the input.
"""

from __future__ import annotations

import unicodedata

MAX_USERNAME_LENGTH = 32
MAX_CHAT_LENGTH = 500


class InvalidInput(ValueError):
    """The input was refused; the message says why, in words for the person who sent it."""


def _has_control_characters(text: str) -> bool:
    # Category "C*" covers control, format, surrogate, private-use and unassigned code points:
    # none belongs in a name shown to other people (think of bidi overrides).
    return any(unicodedata.category(char).startswith("C") for char in text)


def clean_username(raw: object) -> str:
    """A username trimmed of surrounding whitespace: 1 to 32 characters, no control characters."""
    if not isinstance(raw, str):
        raise InvalidInput("Enter a username.")
    username = raw.strip()
    if not username:
        raise InvalidInput("Enter a username.")
    if len(username) > MAX_USERNAME_LENGTH:
        raise InvalidInput(f"A username is at most {MAX_USERNAME_LENGTH} characters long.")
    if _has_control_characters(username):
        raise InvalidInput("A username cannot contain control or invisible characters.")
    return username


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
    return text
