"""The session cookie: its name, how it is written, and how it is read back.

The cookie holds only the session id, signed with Tornado's `set_signed_cookie`. Reading it
follows Starlette's rule: a bad signature is not an error, it is simply "no session".
"""

from __future__ import annotations

import re

from tornado.httputil import HTTPHeaders, parse_cookie
from tornado.web import RequestHandler, decode_signed_value

SESSION_COOKIE = "session"

# The signature's own age limit; the server-side idle TTL is what really ends a session.
SIGNATURE_MAX_AGE_DAYS = 31

_SESSION_ID_SHAPE = re.compile(rb"[A-Za-z0-9_-]{20,128}")


def session_id_from_cookie(secret: str | bytes, value: str | bytes | None) -> str | None:
    """The session id in a signed cookie value, or None for anything forged, tampered or odd."""
    if not value:
        return None
    try:
        decoded = decode_signed_value(
            secret, SESSION_COOKIE, value, max_age_days=SIGNATURE_MAX_AGE_DAYS, min_version=2
        )
    except (ValueError, TypeError, UnicodeError):
        return None
    if decoded is None or not _SESSION_ID_SHAPE.fullmatch(decoded):
        return None
    return decoded.decode("ascii")


def read_session_id(handler: RequestHandler) -> str | None:
    """The session id carried by this request's cookie, if its signature holds."""
    # Parse the header here rather than through handler.get_cookie(): that caches every
    # cookie on the request, and a WebSocket keeps its request for as long as it lives
    # (about 1.7 KiB per idle socket).
    return session_id_in_headers(handler.settings["cookie_secret"], handler.request.headers)


def session_id_in_headers(secret: str | bytes, headers: HTTPHeaders) -> str | None:
    """The session id carried by these request headers' cookie, if its signature holds (for
    a request refused before any handler sees it)."""
    header = headers.get("Cookie")
    value = parse_cookie(header).get(SESSION_COOKIE) if header else None
    return session_id_from_cookie(secret, value)


def write_session_cookie(handler: RequestHandler, session_id: str) -> None:
    """Send the signed session id: HttpOnly, SameSite=Lax, and Secure over HTTPS."""
    handler.set_signed_cookie(
        SESSION_COOKIE,
        session_id,
        expires_days=None,  # a browser-session cookie; the server decides when the session ends
        path="/",
        httponly=True,
        samesite="Lax",
        secure=handler.request.protocol == "https",
    )


def clear_session_cookie(handler: RequestHandler) -> None:
    """Tell the browser to forget the session cookie."""
    handler.clear_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=handler.request.protocol == "https",
    )
