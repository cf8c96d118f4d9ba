"""The words the server sends the page when it refuses or ends something, in one place.

The page matches some of them (a refused connect says "not authenticated", an ended session
gives its reason), so they are written once here: the server raises and emits these, and
the page reads the same values from `for_the_page()`, which the index template embeds as
JSON (a data block, not a script: the Content-Security-Policy allows it).
"""

from __future__ import annotations

from typing import Literal, get_args

# A Socket.IO connect refused (the client's `connect_error` carries the text).
NOT_AUTHENTICATED = "not authenticated"
SESSION_ENDED = "session ended"
STORE_UNAVAILABLE = "session store unavailable"
TOO_MANY_CONNECTS = "slow down: too many connections from your address"
# An Engine.IO handshake refused (401 with this text), or the WebSocket closed with it.
TOO_MANY_SOCKETS = "too many sockets from your address"
# A chat message refused (the ack's `message`, beside its `reason` code; the page keeps the text).
SLOW_DOWN = "slow down: too many messages"
# (Said when the store did not answer in time: the message reached nobody. A store that
# was hung may still keep it once it wakes; a retry with the same id then sends it once.)
NOT_STORED = "not sent: the server cannot reach its store right now, and nobody received this message; try again in a moment"
NOT_SENT_SESSION_ENDED = "not sent: your session has ended"
ChatRefusal = Literal["invalid", "rate", "store", "ended"]
# A private message refused: as a chat message, or because its recipient is not online now
# (the page, which knows their name, says it with the name).
PrivateRefusal = Literal[ChatRefusal, "offline"]
NOT_ONLINE = "is not online now: this message was not sent"  # after the recipient's "#" and tag
NOT_TO_YOURSELF = "A private message goes to someone else: choose a person in the list of who is online."
# An ask for the presence state over the client's fair share (the ack's `refused`, with `retry_after` seconds).
STATE_SLOW_DOWN = "slow down: the list of who is online was sent a moment ago"
# An ask to catch up on the chat over the client's fair share (the same shape).
CATCH_UP_SLOW_DOWN = "slow down: the messages you missed were sent a moment ago"

# Why a session ended: the `ended` event's reason, just before the socket is disconnected.
EndReason = Literal["logout", "replaced", "expired", "evicted", "shutdown", "gone"]
END_REASONS: tuple[EndReason, ...] = get_args(EndReason)


def for_the_page() -> dict[str, object]:
    """What the page's script needs to recognise what the server says."""
    return {
        "refusals": {
            "notAuthenticated": NOT_AUTHENTICATED,
            "sessionEnded": SESSION_ENDED,
            "storeUnavailable": STORE_UNAVAILABLE,
            "tooManyConnects": TOO_MANY_CONNECTS,
            "tooManySockets": TOO_MANY_SOCKETS,
            "slowDown": SLOW_DOWN,
            "notStored": NOT_STORED,
        },
        "endReasons": list(END_REASONS),
    }
