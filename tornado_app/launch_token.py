"""The desktop launcher's per-launch secret: only its window may use the server.

A server on 127.0.0.1 shares its address with every process of every user on the machine,
so per-address limits (logins, connects, sockets) and the session store's places are shared
with them too: another local user could use up the person's login budget or evict their
session (issue 21, item 7). The launcher therefore makes a secret at each launch and opens
its window on `/?launch=SECRET`. The server exchanges that for an HttpOnly, SameSite=Strict
cookie and a redirect to the same address without the secret, and from then on requires the
cookie on every request, pages, static files, the API and the sockets alike. A request
without it is answered 403 before any handler runs: it reaches no session, no rate counter
and no socket.

The plain server does not use this; `make_app(launch_token=...)` turns it on.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import RequestHandler

from .refusals import RefusalReport

log = logging.getLogger(__name__)

LAUNCH_PARAMETER = "launch"  # in the address the window opens: /?launch=SECRET
LAUNCH_COOKIE = "launch"

NOT_FROM_THE_LAUNCHER = """<!doctype html>
<meta charset="utf-8">
<title>Open this app from its window</title>
<h1>Open this app from its window</h1>
<p>This server belongs to a desktop launcher and answers only to the window it opened (or to the
private address it printed, with its <code>?launch=</code> part).</p>
"""

# A navigation that came from another site (the file the launcher gives a web browser, which
# forwards to the private address) would not carry a SameSite=Strict cookie along a redirect:
# this page of ours asks for the clean address instead, so the cookie goes with it. (Not for
# the window: pywebview injects its script into every page it loads, and this one would be
# gone before the script ran.)
WELCOME_BACK = """<!doctype html>
<meta charset="utf-8">
<meta http-equiv="refresh" content="0; url={target}">
<title>Session Sockets</title>
<p><a href="{target}">Continue</a></p>
"""


@dataclass(frozen=True)
class LaunchToken:
    """One launch's secret, and how a request proves it has it."""

    value: str = field(repr=False)  # never in a log line or a traceback

    @classmethod
    def generate(cls) -> LaunchToken:
        return cls(secrets.token_urlsafe(32))

    def url(self, base_url: str) -> str:
        """The address that hands the secret over: `base_url` plus `?launch=SECRET`."""
        return f"{base_url}?{urlencode({LAUNCH_PARAMETER: self.value})}"

    def matches(self, candidate: str) -> bool:
        """Compared in constant time: the refusal takes as long whatever the guess."""
        return hmac.compare_digest(candidate.encode("utf-8", "replace"), self.value.encode())

    def carried_by(self, request: HTTPServerRequest) -> bool:
        return self.carried_in(request.headers)

    def carried_in(self, headers: HTTPHeaders) -> bool:
        """Whether any `launch` cookie of a request is the secret. Every one is looked at:
        a page on another port of 127.0.0.1 may have added one of its own beside ours."""
        for header in headers.get_list("Cookie"):
            for pair in header.split(";"):
                name, _, value = pair.strip().partition("=")
                if name == LAUNCH_COOKIE and self.matches(value.strip('"')):
                    return True
        return False


class LaunchGateHandler(RequestHandler):
    """Every request without the launch cookie: the exchange of `?launch=SECRET` for the
    cookie, or 403. Deliberately a bare RequestHandler: no session is read, no XSRF cookie
    written, nothing of the app is touched."""

    refusal_logged = True  # one line per 10 s from the RefusalReport, not one per request

    def initialize(self, token: LaunchToken, refusals: RefusalReport) -> None:
        self.token = token
        self.refusals = refusals

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")  # the secret's address is never a referrer
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "text/html; charset=UTF-8")

    def prepare(self) -> None:
        given = self.request.query_arguments.get(LAUNCH_PARAMETER, [])
        if self.request.method in ("GET", "HEAD") and len(given) == 1 and self.token.matches(given[0].decode("utf-8", "replace")):
            self.hand_over_the_cookie()
        else:
            self.refusals.refused(f"{self.request.method} {self.request.path}, the latest from {self.request.remote_ip}")
            self.set_status(403)
            self.finish(NOT_FROM_THE_LAUNCHER)

    def hand_over_the_cookie(self) -> None:
        self.set_cookie(LAUNCH_COOKIE, self.token.value, path="/", httponly=True, samesite="Strict")
        rest = [(name, value) for name, value in parse_qsl(self.request.query, keep_blank_values=True) if name != LAUNCH_PARAMETER]
        path = "/" + self.request.path.lstrip("/\\")  # never `//elsewhere`, another site
        target = path + (f"?{urlencode(rest)}" if rest else "")
        if self.request.headers.get("Sec-Fetch-Site") == "cross-site":
            self.finish(WELCOME_BACK.format(target=_html_attribute(target)))
        else:
            self.redirect(target, status=303)

    def check_xsrf_cookie(self) -> None:
        """Refused whatever the XSRF token: say "open it from its window", not "XSRF"."""


def _html_attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def gate_refusals() -> RefusalReport:
    return RefusalReport("refused requests without the launcher's secret (another local program?)", logger=log)
