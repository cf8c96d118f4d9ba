"""The JSON of every packet this server sends: UTF-8 as it is, not `\\uXXXX` escapes.

python-socketio and engineio encode packets with the `json` module's defaults, whose
`ensure_ascii=True` writes every character outside ASCII as an escape: 6 bytes for an `é`
that UTF-8 writes in 2, 12 for an emoji it writes in 4 (51 messages of 500 emoji made every
newcomer's history frame 304,528 bytes instead of about 102,000, above --max-unsent-kib).
This module is what sockets.py hands to `socketio.AsyncServer(json=...)`, python-socketio's
documented way to choose the JSON module of its packets (engineio's follow); the direct
write path (patches/managers.py) encodes through the same `Packet.json`, so both paths agree.

Two more things for this server:
- `RawJSON`: a value encoded once (the presence state, per version) and written as it is
  where it is one argument of an event or an acknowledgement, so that sending it again costs
  the send, not another walk through everyone online;
- a string that UTF-8 cannot write (a lone surrogate, which JSON's `"\\ud83d"` decodes to)
  would make writing the frame fail: such a packet is written with escapes, as before.
"""

from __future__ import annotations

import json
from typing import Any


class RawJSON:
    """JSON text encoded once, written as it is by `dumps` (python-socketio passes an event's
    or an ack's arguments to `dumps` as one list: a RawJSON there is one argument)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def of(cls, value: object) -> RawJSON:
        return cls(dumps(value, separators=(",", ":")))

    def __repr__(self) -> str:
        return f"RawJSON({self.text[:60]!r}{'...' if len(self.text) > 60 else ''})"


def _utf8_safe(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# JSON encoders by (ASCII escapes, separators). `json.dumps` with any argument but the object
# builds a new JSONEncoder per call (ours always pass two: ensure_ascii and separators), which
# was about a third of each packet's encoding; an encoder keeps no state between calls.
_ENCODERS: dict[tuple[bool, Any], json.JSONEncoder] = {}


def _encoder(ascii_only: bool, separators: Any) -> json.JSONEncoder:
    key = (ascii_only, separators)
    encoder = _ENCODERS.get(key)
    if encoder is None:
        encoder = _ENCODERS[key] = json.JSONEncoder(ensure_ascii=ascii_only, separators=separators)
    return encoder


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` without ASCII escapes (and RawJSON arguments written as they are)."""
    kwargs.pop("ensure_ascii", None)
    if kwargs.keys() - {"separators"}:  # indent, sort_keys, default...: what the json module does
        text = json.dumps(obj, ensure_ascii=False, **kwargs)
        return text if _utf8_safe(text) else json.dumps(obj, ensure_ascii=True, **kwargs)
    separators = kwargs.get("separators")
    if type(obj) is list and any(type(item) is RawJSON for item in obj):
        comma = separators[0] if separators is not None else ", "
        return "[" + comma.join(item.text if type(item) is RawJSON else dumps(item, **kwargs) for item in obj) + "]"
    text = _encoder(False, separators).encode(obj)
    if not _utf8_safe(text):
        text = _encoder(True, separators).encode(obj)
    return text


def loads(text: str | bytes, **kwargs: Any) -> Any:
    return json.loads(text, **kwargs)
