"""Private messages: who may be addressed, where a message goes, and what it looks like.

A person (a session) is addressed by the public tag the server gave their session, and only
while they are online: the tag is the name of a Socket.IO room (`person_room`) that every
socket of that session enters when it is accepted, in whichever process it is. An emit to a
room goes through the Socket.IO manager, so in the Redis mode it reaches the person's sockets
in every process. Nothing is kept: a private message reaches the sockets open as it is sent,
and no history or catch-up ever holds it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from .presence import wire
from .registry import Person
from .validation import InvalidInput

# A session's public tag as sessions.new_tag makes it (11 characters) with room to spare; a
# tag is only ever compared with the tags of the people online, never used as anything else.
TAG = re.compile(r"[A-Za-z0-9_-]{1,32}")
MESSAGE_ID_HEX = 16  # 64 bits: a page drops a repeated id, so two messages must not share one


def person_room(tag: str) -> str:
    """The room of every socket of the session whose public tag this is. (The prefix keeps
    it apart from python-socketio's own room per socket, named by its sid.)"""
    return "person:" + tag


def recipient_tag(payload: object) -> str:
    """The tag a `private` payload is addressed to (`"to"`); InvalidInput in words if it is
    not one a tag can be."""
    to = payload.get("to") if isinstance(payload, dict) else None
    if not isinstance(to, str) or not TAG.fullmatch(to):
        raise InvalidInput('A private message needs "to": the tag of a person online, as the list of who is online gives it.')
    return to


def private_message_id(session_id: str, client_id: str | None) -> str:
    """The id of a private message: for a message with the page's own id, the same on a
    retry of it (pages drop an id they hold, so a retry after a lost answer is shown once),
    without anything kept to remember it.

    An HMAC keyed by the sender's session id: unguessable without it, the same in every
    process (a retry may reach another one; the session id is what they all share), and
    different for two sessions that send the same page id. A message without the page's id
    gets a random one."""
    if client_id is None:
        return secrets.token_hex(MESSAGE_ID_HEX // 2)
    digest = hmac.new(session_id.encode(), b"private message\0" + client_id.encode(), hashlib.sha256)
    return digest.hexdigest()[:MESSAGE_ID_HEX]


def private_message(message_id: str, sender: Person, recipient: Person, text: str, time: int) -> dict[str, Any]:
    """A private message as its recipient's sockets, the sender's other sockets and the
    sender's ack carry it: who it is from and to as presence names people."""
    [sent_by, sent_to] = wire([sender, recipient])
    return {"id": message_id, "from": sent_by, "to": sent_to, "text": text, "time": time}
