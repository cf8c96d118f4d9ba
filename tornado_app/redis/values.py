"""Values read back from Redis, checked like client input.

Anyone who can write to Redis could put anything there: a history entry that is not JSON, a
name that validation.py refuses at login, a timestamp that is not a number. Each check here
returns the value as the app wrote it or raises BadValue (a ValueError); the caller skips
that value, and `IgnoredValues` says so in one log line per bad value (never one per request).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import OrderedDict
from typing import Any, get_args

from ..reasons import EndReason
from ..skeleton import skeleton
from ..validation import InvalidInput, clean_chat_payload, clean_username

log = logging.getLogger(__name__)


class BadValue(ValueError):
    """A value read from Redis that the app would not have written."""


TAG = re.compile(r"[A-Za-z0-9_-]{11}")  # sessions.new_tag(): token_urlsafe(8)
MESSAGE_ID = re.compile(r"[0-9a-f]{12}")  # sockets: secrets.token_hex(6)
HISTORY_EPOCH = re.compile(r"[A-Za-z0-9]{1,16}")  # history.new_epoch()
COUNT = re.compile(r"0|[1-9][0-9]{0,15}")
# "live" comes with a session a script found live; the others are why a session ended.
END_REASONS = frozenset(get_args(EndReason)) | {"live"}
REMEMBERED = 4096  # distinct bad values already logged, least recently seen forgotten first


def username(value: object) -> str:
    """A name as the login form would have accepted it, unchanged by cleaning."""
    try:
        cleaned = clean_username(value)
    except InvalidInput as refusal:
        raise BadValue(f"username refused: {refusal}") from None
    if cleaned != value:
        raise BadValue("username not in its cleaned form")
    return cleaned


def tag(value: object) -> str:
    if not isinstance(value, str) or not TAG.fullmatch(value):
        raise BadValue("tag is not 11 URL-safe characters")
    return value


def timestamp(value: object) -> float:
    """A finite number (Redis gives strings or bytes; Lua's cjson gives numbers or strings)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadValue("timestamp is not a number")
    try:
        number = float(value)
    except ValueError:
        raise BadValue("timestamp is not a number") from None
    if not math.isfinite(number):
        raise BadValue("timestamp is not finite")
    return number


def chat_message(raw: object) -> dict[str, Any]:
    """One history entry: the JSON object sockets.py writes, with exactly its fields. Its
    skeleton is made again from its username (an entry written before skeletons were sent
    has none, and one written with an older confusables table may differ)."""
    try:
        message = json.loads(raw)  # type: ignore[arg-type]  # whatever Redis held: a TypeError is caught
    except (ValueError, TypeError, RecursionError):
        raise BadValue("not JSON") from None
    if not isinstance(message, dict) or set(message) - {"skeleton"} != {"id", "username", "tag", "text", "time"}:
        raise BadValue("not a chat message object")
    if not isinstance(message["id"], str) or not MESSAGE_ID.fullmatch(message["id"]):
        raise BadValue("id is not 12 hex digits")
    username(message["username"])
    tag(message["tag"])
    try:
        clean_chat_payload({"text": message["text"]})
    except InvalidInput as refusal:
        raise BadValue(f"text is not a chat message's: {refusal}") from None
    if isinstance(message["time"], bool) or not isinstance(message["time"], int) or message["time"] < 0:
        raise BadValue("time is not a whole number of seconds")
    message["skeleton"] = skeleton(message["username"])
    return message


class CheckedMessages:
    """`chat_message`, remembered by the entry's bytes for the last `remembered` good ones: a
    newcomer's history is the same entries read again (50 of them, ~25 µs each to check:
    JSON, name, text, skeleton), and the check depends on nothing but those bytes. A bad
    entry is not remembered: it raises each time it is read."""

    def __init__(self, remembered: int) -> None:
        self._remembered = remembered
        self._checked: OrderedDict[bytes, dict[str, Any]] = OrderedDict()

    def check(self, raw: object) -> dict[str, Any]:
        """A new dict each time (the caller adds to it)."""
        if not isinstance(raw, bytes):
            return chat_message(raw)
        message = self._checked.get(raw)
        if message is None:
            message = self._checked[raw] = chat_message(raw)
            if len(self._checked) > self._remembered:
                self._checked.popitem(last=False)
        else:
            self._checked.move_to_end(raw)
        return dict(message)


def history_epoch(value: object) -> str:
    """The word naming the chat's count (redis/history.py)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str) or not HISTORY_EPOCH.fullmatch(value):
        raise BadValue("chat epoch is not 1 to 16 letters or digits")
    return value


def history_count(value: object) -> int:
    """A message's n in the chat's count: a whole number below 2**53 (exact in Lua)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not COUNT.fullmatch(value) or int(value) >= 2**53:
        raise BadValue("chat count is not a whole number")
    return int(value)


def person(member: bytes) -> tuple[str, str]:
    """An online entry, "<tag> <name>", as (name, tag)."""
    try:
        text = member.decode("utf-8")
    except UnicodeDecodeError:
        raise BadValue("not UTF-8") from None
    found_tag, _, name = text.partition(" ")
    return username(name), tag(found_tag)


def session_fields(fields: object) -> tuple[str, str, float, float, str, str]:
    """[id, username, logged in at, last seen, reason, tag] from a session script or the
    `ended` channel, as (id, username, logged_in_at, last_seen, reason, tag). A session hash
    without a tag (Lua gives false for the missing field) is not one the app writes."""
    if not isinstance(fields, list) or len(fields) != 6:
        raise BadValue("session fields are not a list of 6")
    session_id = fields[0]
    if not isinstance(session_id, str) or not 1 <= len(session_id) <= 128:
        raise BadValue("session id is not a string")
    reason = fields[4]
    if not isinstance(reason, str) or reason not in END_REASONS:
        raise BadValue("reason is not one of the end reasons")
    return (session_id, username(fields[1]), timestamp(fields[2]), timestamp(fields[3]), reason,
            tag(fields[5]))


class IgnoredValues:
    """Logs a bad value read from Redis once, however often it is read again."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._remembered = remembered
        self.count = 0  # bad values skipped, logged or not

    def skip(self, where: str, value: object, error: BaseException) -> None:
        self.count += 1
        digest = hashlib.blake2b(f"{where}\0{value!r}".encode("utf-8", "replace"), digest_size=16).digest()
        if digest in self._seen:
            self._seen.move_to_end(digest)
            return
        self._seen[digest] = None
        if len(self._seen) > self._remembered:
            self._seen.popitem(last=False)
        shown = repr(value)
        log.warning("ignored a bad value in Redis (%s): %s: %s%s", where, error,
                    shown[:80], "..." if len(shown) > 80 else "")
