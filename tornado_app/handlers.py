"""HTTP handlers: the demo page, login, logout and the session API; the static files (revalidated
when asked for without a version); and the refusals of an unknown path (404), an unknown host
(421) and new work while the process drains (503).

They know the session store and the cookie, and nothing of Socket.IO: logging out ends the
session in the store, and the socket layer, listening to the store, drops its sockets.
"""

from __future__ import annotations

import http
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, cast, overload

from tornado.web import HTTPError, RequestHandler, StaticFileHandler

from .cookie_secrets import COOKIE_SECRETS_SETTING
from .cookies import (
    clear_session_cookie,
    cookie_name,
    read_session_id,
    session_cookie_value,
    sign_again_with_the_newest,
    write_session_cookie,
)
from .errors import BackendUnavailable
from .logs import facts
from .reasons import for_the_page
from .refusals import RefusalReport
from .sessions import Session, SessionStore
from .validation import MAX_USERNAME_LENGTH, InvalidInput, clean_username
from .xsrf import foreign_form, session_form_token, session_form_token_matches

if TYPE_CHECKING:
    from .backend import Backend

log = logging.getLogger(__name__)

XSRF_COOKIE = "_xsrf"  # Tornado's default name (`__Host-_xsrf` over HTTPS: cookies.py)
FOREIGN_FORM_TEXT = ("This form was sent from a page of another site, so it was refused. "
                     "To log in or out, use the form on this site's own page.")

# What a person who opens a page or logs in on a process that is draining is told.
DRAINING_TEXT = ("This server is stopping for a restart, so it takes no new pages or logins. "
                 "Reload in a few seconds: another server of this site, or this one once it is back, will answer.")
DRAINING_RETRY_AFTER_SECONDS = 5

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class PageApplication(Protocol):
    """What these handlers need of their application (app.py's TornadoApp provides it), so
    that imports point one way: app -> handlers."""

    backend: Backend  # the store and the rates: reached through it only
    login_refusals: RefusalReport
    allowed_origins: frozenset[str]


class FormRefused(HTTPError):
    """A 403 whose page says why in plain words (a form from another site, say)."""

    def __init__(self, explanation: str, log_message: str) -> None:
        super().__init__(403, "%s", log_message)
        self.explanation = explanation


class BaseHandler(RequestHandler):
    """Loads the session before every request and renders errors without tracebacks."""

    application: PageApplication  # type: ignore[assignment]
    session: Session | None = None
    refusal_logged = False  # the access log then adds no second line (app.log_request)

    @property
    def store(self) -> SessionStore:
        return self.application.backend.store

    def set_cookie(self, name: str, value: str | bytes, *args: Any, **kwargs: Any) -> None:
        # Tornado writes the XSRF cookie with the application's `xsrf_cookie_kwargs` and adds
        # a 30-day expiry into that very dict for a logged-in request (every later cookie
        # carried it). The app has no such setting (app.py): its attributes are decided here,
        # on each request: a browser-session cookie, HttpOnly, SameSite=Lax, Path=/, and over
        # HTTPS (a certificate, or --behind-proxy and the proxy's X-Forwarded-Proto) Secure
        # and `__Host-` prefixed.
        if name == XSRF_COOKIE:
            https = self.request.protocol == "https"
            name, args = cookie_name(XSRF_COOKIE, self.request.protocol), ()
            kwargs = {"path": "/", "httponly": True, "samesite": "Lax", "secure": https, "expires_days": None}
        super().set_cookie(name, value, *args, **kwargs)

    @overload
    def get_cookie(self, name: str, default: str) -> str: ...
    @overload
    def get_cookie(self, name: str, default: None = None) -> str | None: ...

    def get_cookie(self, name: str, default: str | None = None) -> str | None:
        # Tornado reads its XSRF cookie by the plain name; over HTTPS only the prefixed one counts.
        # (Its xsrf_token and check_xsrf_cookie go through these two methods; were that to
        # change, test_cli.py's HTTPS tests would fail: every HTTPS login would be a 403.)
        if name == XSRF_COOKIE:
            name = cookie_name(XSRF_COOKIE, self.request.protocol)
        return super().get_cookie(name, default)

    @property
    def xsrf_token(self) -> bytes:
        """The `_xsrf` field of this page's forms: bound to the session id that the request's
        signed cookie carries (xsrf.py), Tornado's cookie token where there is none. The id,
        not the live session: a page whose session ended meanwhile (it expired, a restart)
        still sends its Log out."""
        session_id = read_session_id(self)
        if session_id is None:
            return super().xsrf_token
        return session_form_token(self.settings[COOKIE_SECRETS_SETTING], session_id).encode("ascii")

    def check_xsrf_cookie(self) -> None:
        """Tornado calls this before prepare() on every POST, so a forged form costs no store
        lookup. Where the form comes from: a page of another site or port is refused whatever
        its token. Then the token: with a signed session cookie it must be that session's
        (a planted `_xsrf` cookie counts for nothing); without one, Tornado's cookie check."""
        foreign = foreign_form(self.request.headers, self.request.protocol, self.request.host,
                               self.application.allowed_origins)
        if foreign is not None:
            raise FormRefused(FOREIGN_FORM_TEXT, foreign)
        session_id = read_session_id(self)
        if session_id is None:
            super().check_xsrf_cookie()
            return
        submitted = (self.get_body_argument("_xsrf", None) or self.request.headers.get("X-Xsrftoken")
                     or self.request.headers.get("X-Csrftoken"))
        if not submitted:
            raise HTTPError(403, "'_xsrf' argument missing from POST")
        if not session_form_token_matches(self.settings[COOKIE_SECRETS_SETTING], session_id, submitted):
            raise HTTPError(403, "XSRF token is not this session's")

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Cache-Control", "no-store")

    async def prepare(self) -> None:
        # get_current_user cannot be a coroutine, so load the session here instead; the
        # lookup also refreshes the session's idle timer.
        self.session = await self.store.get(read_session_id(self))
        self.current_user = self.session
        if self.session is not None:
            sign_again_with_the_newest(self, self.session.id)  # after a rotation (cookie_secrets.py)

    def log_exception(self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        """A client's refused request (a missing XSRF token, say) is one INFO line: Tornado
        would log it as a WARNING, and anyone can send those."""
        if isinstance(value, BackendUnavailable):
            self.refusal_logged = True  # the store says so once, not once per request
            return
        if isinstance(value, HTTPError) and value.status_code < 500:
            log.info("refused %s %s from %s: %d %s", self.request.method, self.request.path,
                     self.request.remote_ip, value.status_code, value.get_message() or "",
                     extra=facts(f"HTTP {value.status_code}", self.request.remote_ip))
            self.refusal_logged = True
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A short page in the site's style; Tornado's traceback page is never served. The
        session store being down is a 503 that says so, not a 500."""
        if _store_unavailable(kwargs):
            status_code = 503
            self.set_status(503)
            self.set_header("Retry-After", "5")
        exc_info = kwargs.get("exc_info")
        explanation = getattr(exc_info[1], "explanation", None) if exc_info else None
        self.render("error.html", status_code=status_code, message=_status_phrase(status_code), explanation=explanation)


def activity_report_ms(session_ttl: float) -> int:
    """How often a page in use reports activity: once a minute, or often enough to refresh a
    shorter idle TTL three times over."""
    return int(min(60.0, session_ttl / 3) * 1000)


def _store_unavailable(error_kwargs: dict[str, Any]) -> bool:
    exc_info = error_kwargs.get("exc_info")
    return exc_info is not None and isinstance(exc_info[1], BackendUnavailable)


def _status_phrase(status_code: int) -> str:
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


class IndexHandler(BaseHandler):
    """The demo page: the login explanation when logged out, the live view when logged in."""

    def get(self) -> None:
        # A cookie that names no live session: say so (rather than a bare login form), and
        # drop the stale cookie.
        session_ended = self.session is None and bool(session_cookie_value(self))
        if session_ended:
            clear_session_cookie(self)
        self.render("index.html", session=self.session, session_ended=session_ended,
                    activity_report_ms=activity_report_ms(self.store.ttl), words=for_the_page())


class LoginHandler(BaseHandler):
    """Shows the login form and starts a new session, always under a fresh id."""

    def get(self) -> None:
        logged_out = self.get_query_argument("logged_out", None) is not None and self.session is None
        self.render("login.html", error=None, username="", logged_out=logged_out)

    async def post(self) -> None:
        typed = self._raw_body_argument("username")
        try:
            username = clean_username(typed)
        except InvalidInput as refusal:
            self.set_status(400)
            shown_back = typed[: MAX_USERNAME_LENGTH * 4]  # enough to fix a typo, not a megabyte
            self.render("login.html", error=str(refusal), username=shown_back, logged_out=False)
            return
        # Tornado's server always sets remote_ip ("0.0.0.0" on a Unix socket); typed Optional.
        if not await self.application.backend.rate_limiter.allows("login", cast(str, self.request.remote_ip)):
            self._refuse_too_many_logins()
            return
        if self.session is not None:
            # No fixation: a login never keeps the id the request came with.
            await self.store.delete(self.session.id, reason="replaced")
        self.session = await self.store.create(username)
        write_session_cookie(self, self.session.id)
        log.info("login: %r from %s", username, self.request.remote_ip, extra=facts("login", self.request.remote_ip, self.session.tag))
        self.redirect("/", status=303)

    def _refuse_too_many_logins(self) -> None:
        """429, said on the form: one address logging in faster than people do would evict
        everyone's sessions from the bounded store."""
        self.application.login_refusals.refused(f"the latest from {self.request.remote_ip}", client=self.request.remote_ip)
        self.refusal_logged = True
        self.set_status(429)
        self.set_header("Retry-After", "60")
        rate = self.application.backend.rate_limiter.rates.describe("login")
        self.render("login.html", error=f"Too many logins from your address (at most {rate}). Try again in a minute.",
                    username="", logged_out=False)

    def _raw_body_argument(self, name: str) -> str:
        # get_body_argument would quietly turn control characters into spaces; we refuse them
        # with a message instead. decode_argument still answers 400 to invalid UTF-8.
        values = self.request.body_arguments.get(name) or [b""]
        return self.decode_argument(values[-1], name=name)


class LogoutHandler(BaseHandler):
    """GET shows a logout button; POST ends the session and, through the store, its sockets."""

    def get(self) -> None:
        self.render("logout.html", session=self.session)

    async def post(self) -> None:
        if self.session is not None:
            await self.store.delete(self.session.id, reason="logout")
            log.info("logout: %r from %s", self.session.username, self.request.remote_ip,
                     extra=facts("logout", self.request.remote_ip, self.session.tag))
        clear_session_cookie(self)
        self.redirect("/login?logged_out=1", status=303)


class SessionApiHandler(BaseHandler):
    """`GET /api/session`: who this request's session belongs to, as JSON."""

    def get(self) -> None:
        if self.session is None:
            self.set_status(401)
            self.finish({"error": "not logged in"})
            return
        self.finish(self.session.public_view())

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if _store_unavailable(kwargs):
            self.set_status(503)
            self.finish({"error": "the session store is unavailable"})
            return
        self.finish({"error": _status_phrase(status_code).lower()})


class NotFoundHandler(BaseHandler):
    """Any other path: a 404 page in the site's style."""

    async def prepare(self) -> None:
        await super().prepare()
        self.send_error(404)


class RevalidatedStaticFileHandler(StaticFileHandler):
    """Tornado's static files, except that one asked for without static_url()'s version is
    checked with the server on every load (an ETag makes that a 304). The page's modules
    import each other by plain relative paths, which carry no version: cached by a browser's
    heuristics, an old module could run beside a new one after an update."""

    def set_extra_headers(self, path: str) -> None:
        if "v" not in self.request.arguments:
            self.set_header("Cache-Control", "no-cache")


class DrainingHandler(BaseHandler):
    """New work while this process drains (drain.py): a page, a login, an Engine.IO handshake.
    503 "draining" with Retry-After, before any session is read or cookie set: it costs the
    draining process nothing, and a proxy in front (nginx's `proxy_next_upstream http_503`)
    sends the request on to another process. A page gets a short page that says so; a
    handshake (`plain`) the word alone."""

    refusal_logged = True  # a state of the process, said once where it begins (drain.py)

    def initialize(self, plain: bool = False) -> None:
        self.plain = plain

    async def prepare(self) -> None:
        self.set_status(503)
        self.set_header("Retry-After", str(DRAINING_RETRY_AFTER_SECONDS))
        if self.plain:
            self.set_header("Content-Type", "text/plain; charset=UTF-8")
            self.finish("draining\n")
        else:
            self.render("error.html", status_code=503, message="Restarting", explanation=DRAINING_TEXT)

    def check_xsrf_cookie(self) -> None:
        """Refused whatever the token; say that, not "XSRF"."""


class UnknownHostHandler(RequestHandler):
    """A request whose `Host` is not one of this server's names (a DNS-rebinding page, a
    misconfigured proxy): 421 Misdirected Request, before any session or socket is touched."""

    refusal_logged = True

    def prepare(self) -> None:
        log.info("refused %s %s from %s: unknown host %r", self.request.method, self.request.path,
                 self.request.remote_ip, self.request.host, extra=facts("unknown host", self.request.remote_ip))
        self.set_status(421)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish("unknown host: this server does not answer to that name\n")

    def check_xsrf_cookie(self) -> None:
        """The host is refused whatever the token; say that, not "XSRF"."""
