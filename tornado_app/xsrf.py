"""What makes a form POST this site's own: the page it was sent from, and a token bound to the
session.

Tornado's XSRF check compares the form's `_xsrf` field with the `_xsrf` cookie. Any page of
the same *site* can set that cookie (cookies are not isolated by port, and a sibling
subdomain can set one for the parent domain; a server on another port can even overwrite an
HttpOnly one), so a page that planted a value it knows could send a matching field and pass.
Two checks close that:

- where the form comes from: a POST whose `Origin` (or, without one, `Sec-Fetch-Site`) is
  not this server's own page or an `--allowed-origin` is refused, whatever its token (every
  browser sends `Origin` with a form POST; a request with neither header comes from no
  browser, and has only the token to pass);
- for a logged-in request, the token is an HMAC of the session id under the cookie secret,
  not a copy of a cookie: a page that cannot read the HttpOnly session cookie cannot compute
  it, and planting a cookie changes nothing. (A logged-out request has no secret to bind to;
  it keeps Tornado's cookie token, behind the Origin check.) The token is made under the
  newest secret and accepted under any listed one (cookie_secrets.py), so a page served
  before a rotation still sends its forms after it.

Tornado 6.6 has a `cross_origin_protection` setting of its own; it is not used because it
applies to every handler (the socket endpoint has its own Origin policy, transport.py) and
matches an Origin to the Host without the scheme.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping

from .cookie_secrets import CookieSecrets, Secret, as_bytes
from .origins import origin_allowed

# Sec-Fetch-Site values of a request made by this server's own page, or by the person
# themself (a bookmark, the address bar).
OWN_FETCH_SITES = frozenset({"same-origin", "none"})
MAX_LOGGED_ORIGIN = 100  # characters of a refused Origin that go to the log
_TOKEN_VERSION = "s1"
_LABEL = b"form token for session\x00"


def foreign_form(headers: Mapping[str, str], scheme: str, host: str, allowed_origins: Iterable[str]) -> str | None:
    """Why a POST does not come from this server's own page (what to log), or None."""
    origin = headers.get("Origin")
    if origin is not None:
        if origin_allowed(origin, scheme, host, allowed_origins):
            return None
        return f"form from another origin (Origin {origin[:MAX_LOGGED_ORIGIN]!r})"
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in OWN_FETCH_SITES:
        return f"form from another origin (Sec-Fetch-Site {site[:MAX_LOGGED_ORIGIN]!r}, no Origin)"
    return None


def _session_mac(secret: Secret, session_id: str) -> bytes:
    return hmac.new(as_bytes(secret), _LABEL + session_id.encode("ascii"), hashlib.sha256).digest()


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def session_form_token(secrets: CookieSecrets | Secret, session_id: str) -> str:
    """The `_xsrf` field for a page of this session, under the newest secret. Masked with
    fresh random bytes on each page, as Tornado masks its own, so that a compressed page
    never repeats it (BREACH)."""
    mac = _session_mac(CookieSecrets.of(secrets).newest, session_id)
    mask = os.urandom(len(mac))
    return f"{_TOKEN_VERSION}|{mask.hex()}|{_xor(mask, mac).hex()}"


def session_form_token_matches(secrets: CookieSecrets | Secret, session_id: str, submitted: str | None) -> bool:
    """Whether `submitted` is a form token made for this session (any mask) under any listed
    secret. (The token names no secret: each is tried, a few HMACs at most.)"""
    if not submitted:
        return False
    version, _, rest = submitted.partition("|")
    mask_hex, _, masked_hex = rest.partition("|")
    if version != _TOKEN_VERSION:
        return False
    try:
        mask, masked = binascii.a2b_hex(mask_hex), binascii.a2b_hex(masked_hex)
    except (binascii.Error, ValueError):
        return False
    if len(mask) != hashlib.sha256().digest_size or len(masked) != len(mask):
        return False
    unmasked = _xor(mask, masked)
    return any(hmac.compare_digest(unmasked, _session_mac(secret, session_id)) for secret in CookieSecrets.of(secrets).secrets)
