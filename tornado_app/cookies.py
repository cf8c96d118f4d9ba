"""The session cookie: its name, how it is written, and how it is read back.

The cookie holds only the session id, signed with Tornado's signed-value format under the
newest cookie secret; any listed secret verifies it (cookie_secrets.py: rotation). Reading it
follows Starlette's rule: a bad signature is not an error, it is simply "no session".

Over HTTPS the cookies are named with the `__Host-` prefix (`__Host-session`, `__Host-_xsrf`):
a browser accepts such a cookie only from a secure page of this very host, with `Path=/`
and no `Domain`, so a sibling subdomain (or a plain-HTTP page of the same host) cannot
plant one. Over HTTPS only the prefixed name is read, so a planted unprefixed `session` is
never taken for the person's.
"""

from __future__ import annotations

import re

from tornado.httputil import HTTPHeaders, parse_cookie
from tornado.web import RequestHandler, get_signature_key_version

from .cookie_secrets import COOKIE_SECRETS_SETTING, CookieSecrets, Secret

SESSION_COOKIE = "session"
HTTPS_PREFIX = "__Host-"

# The signature's own age limit; the server-side idle TTL is what really ends a session.
SIGNATURE_MAX_AGE_DAYS = 31

_SESSION_ID_SHAPE = re.compile(rb"[A-Za-z0-9_-]{20,128}")


def cookie_name(name: str, protocol: str) -> str:
    """The name a cookie goes by on a request of this scheme: `__Host-` + name over HTTPS."""
    return HTTPS_PREFIX + name if protocol == "https" else name


def session_id_from_cookie(secrets: CookieSecrets | Secret, value: str | bytes | None) -> str | None:
    """The session id in a signed cookie value, or None for anything forged, tampered or odd.
    (`secrets`: the app's CookieSecrets, or one secret.)

    The value is signed under the name `session` whatever the cookie is called, so one
    signature format serves both schemes."""
    if not value:
        return None
    try:
        decoded = CookieSecrets.of(secrets).decode(SESSION_COOKIE, value, max_age_days=SIGNATURE_MAX_AGE_DAYS)
    except (ValueError, TypeError, UnicodeError):
        return None
    if decoded is None or not _SESSION_ID_SHAPE.fullmatch(decoded):
        return None
    return decoded.decode("ascii")


def session_cookie_value(handler: RequestHandler) -> str | None:
    """The raw session cookie this request carries under its scheme's name, if exactly one.

    Two of them mean one was planted (a sibling subdomain's `Domain=` cookie, another path):
    which one is the person's cannot be told, so neither is taken. The person then looks
    logged out; taking the last, as a plain parse would, could log them in as the planter."""
    # Parse the header here rather than through handler.get_cookie(): that caches every
    # cookie on the request, and a WebSocket keeps its request for as long as it lives
    # (about 1.7 KiB per idle socket).
    header = handler.request.headers.get("Cookie")
    if not header:
        return None
    name = cookie_name(SESSION_COOKIE, handler.request.protocol)
    if sum(1 for pair in header.split(";") if pair.partition("=")[0].strip() == name) > 1:
        return None
    return parse_cookie(header).get(name)


def read_session_id(handler: RequestHandler) -> str | None:
    """The session id carried by this request's cookie, if its signature holds."""
    return session_id_from_cookie(handler.settings[COOKIE_SECRETS_SETTING], session_cookie_value(handler))


def session_id_in_headers(secrets: CookieSecrets, headers: HTTPHeaders) -> str | None:
    """The session id of the one session cookie in these headers, under either scheme's name,
    for a request refused before any handler (and so its scheme) is known: admission.py's
    oversized polling POST, which may end only the Engine.IO session opened with this very
    session. A planted cookie can never carry the person's id, so taking either name lets
    nothing through; two session cookies, as above, count as none."""
    header = headers.get("Cookie")
    if not header:
        return None
    names = {SESSION_COOKIE, HTTPS_PREFIX + SESSION_COOKIE}
    found = [pair.partition("=")[0].strip() for pair in header.split(";")]
    if sum(1 for name in found if name in names) != 1:
        return None
    cookies = parse_cookie(header)
    value = cookies.get(SESSION_COOKIE) or cookies.get(HTTPS_PREFIX + SESSION_COOKIE)
    return session_id_from_cookie(secrets, value)


def write_session_cookie(handler: RequestHandler, session_id: str) -> None:
    """Send the session id signed with the newest secret (Tornado's `key_version`): HttpOnly, SameSite=Lax, Path=/, and over HTTPS Secure and
    `__Host-` prefixed."""
    handler.set_cookie(
        cookie_name(SESSION_COOKIE, handler.request.protocol),
        handler.create_signed_value(SESSION_COOKIE, session_id),
        expires_days=None,  # a browser-session cookie; the server decides when the session ends
        path="/",
        httponly=True,
        samesite="Lax",
        secure=handler.request.protocol == "https",
    )


def sign_again_with_the_newest(handler: RequestHandler, session_id: str) -> None:
    """Write again, under the newest secret, a live session's cookie that an older secret
    signed (or that predates key versions): after a rotation, each person's first request
    moves them to the new secret, so removing the old one later logs out only those who have
    not been back since. The new signature starts its 31 days afresh, once per rotation."""
    value = session_cookie_value(handler)
    signing_version = handler.settings[COOKIE_SECRETS_SETTING].signing_version
    if value is not None and get_signature_key_version(value) != signing_version:
        write_session_cookie(handler, session_id)


def clear_session_cookie(handler: RequestHandler) -> None:
    """Tell the browser to forget the session cookie."""
    handler.clear_cookie(
        cookie_name(SESSION_COOKIE, handler.request.protocol),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=handler.request.protocol == "https",
    )
