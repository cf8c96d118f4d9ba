"""The HTTP contract: pages, login, logout, the session API, the cookie and XSRF."""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from http.cookies import SimpleCookie

import pytest
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from tests.support.clock import FakeClock
from tests.support.constants import ALLOWED_ORIGIN, MAX_SESSIONS, SESSION_TTL, TEST_SECRET
from tests.support.matching import found
from tornado_app.app import TornadoApp, make_app
from tornado_app.backend import Backend
from tornado_app.cookies import SESSION_COOKIE
from tornado_app.sessions import MemorySessionStore

from .support.web_user import logged_in


def session_cookie_attributes(response, name: str = SESSION_COOKIE) -> dict[str, str]:
    """The attributes of the `session` (or `name`) Set-Cookie header, lower-cased, flags mapped to ''."""
    for header in response.headers.get_list("Set-Cookie"):
        if header.startswith(f"{name}="):
            parts = [part.strip() for part in header.split(";")]
            attributes = {"value": parts[0].split("=", 1)[1].strip('"')}
            for part in parts[1:]:
                key, _, value = part.partition("=")
                attributes[key.lower()] = value
            return attributes
    raise AssertionError(f"no {name} cookie was set")


@pytest.mark.gen_test
async def test_logged_out_index_explains_and_offers_the_login_form(web_user) -> None:
    response = await web_user().get("/")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode()
    assert 'name="username"' in page and 'name="_xsrf"' in page


@pytest.mark.gen_test
async def test_login_page_has_username_and_xsrf_fields(web_user) -> None:
    page = (await web_user().get("/login")).body.decode()
    assert re.search(r'<form[^>]*\baction="/login"', page) and re.search(r'<form[^>]*\bmethod="post"', page)
    assert 'name="username"' in page
    assert 'type="hidden" name="_xsrf"' in page


@pytest.mark.gen_test
async def test_login_sets_a_signed_httponly_lax_cookie_and_redirects_home(web_user, app: TornadoApp) -> None:
    user = web_user()
    response = await user.login("  ada  ")
    assert response.headers["Location"] == "/"
    cookie = session_cookie_attributes(response)
    assert cookie["path"] == "/"
    assert "httponly" in cookie
    assert cookie["samesite"] == "Lax"
    assert "secure" not in cookie  # plain HTTP here; HTTPS requests get Secure
    assert "expires" not in cookie  # a browser-session cookie
    assert cookie["value"].startswith("2|")  # Tornado's signed value, version 2
    assert await app.backend.store.count() == 1

    api = await user.get("/api/session")
    assert api.code == 200
    assert json.loads(api.body) == {"username": "ada", "logged_in_at": 1_700_000_000}


@pytest.mark.gen_test
async def test_logged_in_index_shows_the_user(web_user) -> None:
    user = web_user()
    await user.login("ada <b>")
    page = (await user.get("/")).body.decode()
    assert "ada &lt;b&gt;" in page
    assert "ada <b>" not in page
    assert 'action="/logout"' in page
    assert "socket.io.min.js" in page and 'type="module" src="/static/js/main.js?v=' in page and "probe.js" not in page


@pytest.mark.gen_test
async def test_session_api_without_login_is_401_json(web_user) -> None:
    response = await web_user().get("/api/session")
    assert response.code == 401
    assert json.loads(response.body) == {"error": "not logged in"}
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.gen_test
async def test_login_issues_a_new_id_and_drops_the_old_session(web_user, app: TornadoApp) -> None:
    user = web_user()
    await user.login("ada")
    first_cookie = user.cookies[SESSION_COOKIE]
    await user.login("grace")
    assert user.cookies[SESSION_COOKIE] != first_cookie
    assert await app.backend.store.count() == 1
    replay = web_user()
    replay.cookies[SESSION_COOKIE] = first_cookie
    assert (await replay.get("/api/session")).code == 401
    assert json.loads((await user.get("/api/session")).body)["username"] == "grace"


@pytest.mark.gen_test
async def test_a_cookie_sent_before_login_is_never_adopted(web_user, app: TornadoApp) -> None:
    """Session fixation: whatever id the attacker planted, login makes a new one."""
    victim = web_user()
    victim.cookies[SESSION_COOKIE] = "2|1:0|10:1700000000|7:session|44:planted|deadbeef"
    await victim.login("victim")
    assert isinstance(app.backend.store, MemorySessionStore)
    session_id = next(iter(app.backend.store._sessions))  # noqa: SLF001 (the only session; no public list)
    assert "planted" not in victim.cookies[SESSION_COOKIE]
    assert len(session_id) == 43


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter a username."),
        ("   ", "Enter a username."),
        ("x" * 33, "at most 32 characters"),
        ("bad\x07bell", "control"),
        ("\u3164", "visible letter"),  # a Hangul filler: a name that shows nothing
        ("\u200b\u200b", "invisible"),
        ("a\u2028b", "invisible"),
    ],
)
@pytest.mark.gen_test
async def test_bad_username_is_400_with_the_form_and_a_message_and_no_session(web_user, app: TornadoApp, typed: str, message: str) -> None:
    user = web_user()
    response = await user.post("/login", {"username": typed})
    assert response.code == 400
    page = response.body.decode()
    assert message in page
    assert 'name="username"' in page
    assert SESSION_COOKIE not in user.cookies
    assert await app.backend.store.count() == 0


@pytest.mark.gen_test
async def test_an_enormous_username_is_refused_without_echoing_it_all(web_user) -> None:
    response = await web_user().post("/login", {"username": "<" * 200_000})
    assert response.code == 400
    assert len(response.body) < 20_000
    assert "<<<" not in response.body.decode()  # escaped, never raw


@pytest.mark.gen_test
async def test_login_without_xsrf_is_403_and_no_session(web_user, app: TornadoApp) -> None:
    user = web_user()
    await user.get("/login")  # has the _xsrf cookie, but will not send the field
    response = await user.post("/login", {"username": "ada"}, with_xsrf=False)
    assert response.code == 403
    assert await app.backend.store.count() == 0
    assert "Traceback" not in response.body.decode()


@pytest.mark.gen_test
async def test_a_refused_xsrf_is_one_info_line_not_a_warning(web_user, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    user = web_user()
    await user.get("/login")
    for _ in range(3):
        assert (await user.post("/login", {"username": "ada"}, with_xsrf=False)).code == 403
    lines = [record for record in caplog.records if record.levelno >= logging.INFO and record.name != "tornado.access"]
    assert [record.getMessage() for record in lines] == ["refused POST /login from 127.0.0.1: 403 '_xsrf' argument missing from POST"] * 3
    assert all(record.levelno == logging.INFO for record in lines)
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


@pytest.mark.gen_test
async def test_login_with_a_wrong_xsrf_is_403(web_user, app: TornadoApp) -> None:
    user = web_user()
    await user.get("/login")
    response = await user.post("/login", {"username": "ada", "_xsrf": "2|00000000|ffffffffffffffffffffffffffffffff|1700000000"}, with_xsrf=False)
    assert response.code == 403
    assert await app.backend.store.count() == 0


@pytest.mark.gen_test
async def test_logout_without_xsrf_is_403_and_keeps_the_session(web_user) -> None:
    user = web_user()
    await user.login("ada")
    response = await user.post("/logout", {}, with_xsrf=False)
    assert response.code == 403
    assert (await user.get("/api/session")).code == 200


@pytest.mark.gen_test
async def test_logout_destroys_the_session_and_clears_the_cookie(web_user, app: TornadoApp) -> None:
    user = web_user()
    await user.login("ada")
    stolen_cookie = user.cookies[SESSION_COOKIE]
    response = await user.logout()
    assert response.code == 303
    assert response.headers["Location"] == "/login?logged_out=1"
    cleared = SimpleCookie(next(h for h in response.headers.get_list("Set-Cookie") if h.startswith("session=")))
    assert cleared[SESSION_COOKIE].value == ""
    assert await app.backend.store.count() == 0
    replay = web_user()
    replay.cookies[SESSION_COOKIE] = stolen_cookie
    assert (await replay.get("/api/session")).code == 401


@pytest.mark.gen_test
async def test_get_logout_shows_a_button_and_logs_nobody_out(web_user) -> None:
    user = web_user()
    await user.login("ada")
    response = await user.get("/logout")
    assert response.code == 200
    page = response.body.decode()
    assert 'action="/logout"' in page and 'name="_xsrf"' in page
    assert (await user.get("/api/session")).code == 200


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "2|1:0|10:1700000000|7:session|4:YWJj|0000000000000000000000000000000000000000000000000000000000000000",
        "",
        "%%%%",
        "2|" * 300,
    ],
)
@pytest.mark.gen_test
async def test_garbage_and_forged_cookies_are_simply_logged_out(web_user, cookie: str) -> None:
    user = web_user()
    user.cookies[SESSION_COOKIE] = cookie
    api = await user.get("/api/session")
    assert api.code == 401
    page = await user.get("/")
    assert page.code == 200
    assert 'name="username"' in page.body.decode()


@pytest.mark.gen_test
async def test_a_stale_cookie_gets_the_login_form_and_a_log_in_again_notice(web_user, app: TornadoApp) -> None:
    """After a restart (sessions are in memory) or an expiry, the page says what happened."""
    user = web_user()
    await user.login("ada")
    await app.backend.store.clear()  # what a restart does to in-memory sessions
    page = await user.get("/")
    assert page.code == 200
    assert "Your session has ended" in page.body.decode()
    assert SESSION_COOKIE not in user.cookies  # the stale cookie is cleared
    assert "Your session has ended" not in (await web_user().get("/")).body.decode()


@pytest.mark.gen_test
async def test_tampered_cookie_is_refused(web_user) -> None:
    user = web_user()
    await user.login("ada")
    value = user.cookies[SESSION_COOKIE]
    user.cookies[SESSION_COOKIE] = value[:-1] + ("0" if value[-1] != "0" else "1")
    assert (await user.get("/api/session")).code == 401


@pytest.mark.gen_test
async def test_idle_session_expires_and_requests_refresh_it(web_user, clock: FakeClock) -> None:
    user = web_user()
    await user.login("ada")
    for _ in range(3):
        clock.advance(SESSION_TTL - 1)
        assert (await user.get("/api/session")).code == 200  # each request refreshes
    clock.advance(SESSION_TTL + 1)
    assert (await user.get("/api/session")).code == 401


@pytest.mark.gen_test
async def test_store_is_bounded_and_evicts_the_least_recently_used(web_user, app: TornadoApp) -> None:
    users = [web_user() for _ in range(MAX_SESSIONS + 1)]
    for number, user in enumerate(users):
        await user.login(f"user{number}")
    assert await app.backend.store.count() == MAX_SESSIONS
    assert (await users[0].get("/api/session")).code == 401
    assert (await users[-1].get("/api/session")).code == 200


@pytest.mark.gen_test
async def test_unknown_path_is_a_friendly_404(web_user) -> None:
    response = await web_user().get("/no/such/page")
    assert response.code == 404
    assert "Not Found" in response.body.decode()


@pytest.mark.gen_test
async def test_pages_carry_security_headers(web_user) -> None:
    response = await web_user().get("/")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.gen_test
async def test_a_module_imported_without_its_version_is_checked_on_every_load(web_user) -> None:
    """The page loads js/main.js by static_url() (versioned, cached for long); main.js imports
    the others by plain relative paths, which must not be cached past an update."""
    user = web_user()
    await user.login("ada")
    page = (await user.get("/")).body.decode()
    entry = found(r'src="(/static/js/main\.js\?v=[0-9a-f]+)"', page).group(1)
    assert "max-age=" in (await user.get(entry)).headers["Cache-Control"]
    imported = await user.get("/static/js/chat.js")
    assert imported.code == 200 and imported.headers["Content-Type"] == "text/javascript"
    assert imported.headers["Cache-Control"] == "no-cache" and imported.headers["Etag"]
    again = await user.request("GET", "/static/js/chat.js", headers={"If-None-Match": imported.headers["Etag"]})
    assert again.code == 304


@pytest.mark.gen_test
async def test_invalid_utf8_in_the_form_is_a_clean_400(web_user, app: TornadoApp) -> None:
    user = web_user()
    token = await user.xsrf_token()
    body = f"_xsrf={urllib.parse.quote(token)}&username=%ff%fe"
    response = await user.request("POST", "/login", body=body)
    assert response.code == 400
    assert "Traceback" not in response.body.decode()
    assert await app.backend.store.count() == 0


class BrokenStore:
    """A store that fails on every read, as a networked store might when its server is down."""

    ttl = 60.0

    def add_end_listener(self, listener) -> None:
        pass

    async def get(self, session_id):
        raise RuntimeError("secret internal detail: connection to the store lost")


@pytest.mark.gen_test
async def test_an_internal_error_is_a_plain_500_page_without_traceback(http_client, base_url, io_loop) -> None:
    sock, port = bind_unused_port()
    server = HTTPServer(make_app(TEST_SECRET, backend=Backend.in_memory(store=BrokenStore())))  # type: ignore[arg-type]  # reads only
    server.add_socket(sock)
    try:
        response = await http_client.fetch(f"http://127.0.0.1:{port}/", raise_error=False)
        assert response.code == 500
        body = response.body.decode()
        assert "Internal Server Error" in body
        assert "Traceback" not in body and "secret internal detail" not in body
    finally:
        server.stop()
        await server.close_all_connections()


# --- Same-site pages (issue 21, item 5): a page on another port of this host, or of a sibling
# subdomain, can set cookies this server receives (`_xsrf` included) and submit forms to it
# with the person's cookies. ---------------------------------------------------------------


def other_port(base_url: str) -> str:
    """This server's origin on another port: the same site, another origin."""
    return base_url.rsplit(":", 1)[0] + ":1"


FOREIGN_FORMS = {
    "another-port": lambda base: {"Origin": other_port(base), "Sec-Fetch-Site": "same-site"},
    "https-same-host": lambda base: {"Origin": base.replace("http://", "https://")},
    "null-origin": lambda base: {"Origin": "null"},
    "another-site": lambda base: {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
    "same-site-no-origin": lambda base: {"Sec-Fetch-Site": "same-site"},
}


@pytest.mark.parametrize("path", ["/login", "/logout"])
@pytest.mark.parametrize("forged", FOREIGN_FORMS, ids=list(FOREIGN_FORMS))
@pytest.mark.gen_test
async def test_a_form_from_another_origin_is_403_with_a_page_saying_so_and_the_session_stays(
        web_user, app: TornadoApp, base_url: str, path: str, forged: str, caplog: pytest.LogCaptureFixture) -> None:
    """Even with the person's cookies and the right token (which such a page does not have):
    where the form comes from is checked first."""
    victim = await logged_in(web_user, "ada")
    token = await victim.form_token(path)
    caplog.set_level(logging.INFO)
    caplog.clear()
    body = urllib.parse.urlencode({"_xsrf": token, "username": "mallory"})
    response = await victim.request("POST", path, body=body, headers=FOREIGN_FORMS[forged](base_url))
    assert response.code == 403
    page = response.body.decode()
    assert "sent from a page of another site" in page and "Traceback" not in page
    assert json.loads((await victim.get("/api/session")).body)["username"] == "ada"
    assert await app.backend.store.count() == 1
    lines = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO and record.name != "tornado.access"]
    assert len(lines) == 1 and lines[0].startswith(f"refused POST {path} from 127.0.0.1: 403 form from another origin"), lines
    assert all(record.levelno == logging.INFO for record in caplog.records if record.name.startswith("tornado_app"))


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda base: {"Origin": base}, id="own-origin"),
        pytest.param(lambda base: {"Origin": ALLOWED_ORIGIN, "Sec-Fetch-Site": "cross-site"}, id="allowed-origin"),
        pytest.param(lambda base: {"Sec-Fetch-Site": "same-origin"}, id="same-origin-no-origin"),
        pytest.param(lambda base: {}, id="no-browser-headers"),  # curl and the like: the token alone
    ],
)
@pytest.mark.gen_test
async def test_the_own_page_an_allowed_origin_and_a_client_without_browser_headers_may_log_in_and_out(
        web_user, app: TornadoApp, base_url: str, headers) -> None:
    user = web_user()
    for path, fields in [("/login", {"username": "ada"}), ("/logout", {})]:
        body = urllib.parse.urlencode({"_xsrf": await user.form_token(path), **fields})
        response = await user.request("POST", path, body=body, headers=headers(base_url))
        assert response.code == 303, (path, response.body)
    assert await app.backend.store.count() == 0


async def tossed_xsrf_pair(web_user) -> tuple[str, str]:
    """What a same-site page knows: an `_xsrf` cookie and its matching form token, fetched for
    itself, to plant in the person's browser and submit."""
    attacker = web_user()
    token = await attacker.form_token("/login")
    return attacker.cookies["_xsrf"], token


@pytest.mark.parametrize("path", ["/login", "/logout"])
@pytest.mark.gen_test
async def test_a_tossed_xsrf_cookie_with_a_matching_field_neither_logs_out_nor_replaces_the_session(
        web_user, app: TornadoApp, path: str) -> None:
    """Without an Origin (the check a browser's headers allow is tested above), the token alone
    holds: a logged-in request's token is bound to its session, not to the `_xsrf` cookie."""
    victim = await logged_in(web_user, "ada")
    cookie, token = await tossed_xsrf_pair(web_user)
    victim.cookies["_xsrf"] = cookie  # planted over the person's own
    response = await victim.request("POST", path, body=urllib.parse.urlencode({"_xsrf": token, "username": "mallory"}))
    assert response.code == 403
    assert "Set-Cookie" not in response.headers
    assert json.loads((await victim.get("/api/session")).body)["username"] == "ada"
    assert await app.backend.store.count() == 1


@pytest.mark.gen_test
async def test_a_token_from_another_sessions_page_is_refused(web_user, app: TornadoApp) -> None:
    victim = await logged_in(web_user, "ada")
    attacker = await logged_in(web_user, "mallory")
    token = await attacker.form_token("/logout")  # a valid token, of the attacker's own session
    response = await victim.request("POST", "/logout", body=urllib.parse.urlencode({"_xsrf": token}))
    assert response.code == 403
    assert (await victim.get("/api/session")).code == 200
    assert await app.backend.store.count() == 2


@pytest.mark.gen_test
async def test_a_logged_in_token_needs_no_xsrf_cookie_and_changes_with_every_page(web_user) -> None:
    """The token of a logged-in page is the session's (masked afresh on each page, as Tornado
    masks its own), so no cookie a same-site page could set takes part."""
    user = await logged_in(web_user, "ada")
    first, second = await user.form_token("/logout"), await user.form_token("/logout")
    assert first != second
    del user.cookies["_xsrf"]
    response = await user.request("POST", "/logout", body=urllib.parse.urlencode({"_xsrf": first}), headers={"Origin": user.base_url})
    assert response.code == 303


@pytest.mark.gen_test
async def test_a_form_left_open_across_a_login_elsewhere_is_a_403_that_says_to_reload(web_user) -> None:
    """The logged-out form's token is not the session's: after logging in in another tab, the
    old tab's form is refused with the page's "reload and try again", and nothing changes."""
    user = web_user()
    stale = await user.form_token("/login")
    await user.login("ada")
    body = urllib.parse.urlencode({"_xsrf": stale, "username": "grace"})
    response = await user.request("POST", "/login", body=body, headers={"Origin": user.base_url})
    assert response.code == 403
    assert "reload the page and try again" in response.body.decode()
    assert json.loads((await user.get("/api/session")).body)["username"] == "ada"


@pytest.mark.gen_test
async def test_the_xsrf_cookie_stays_a_browser_session_cookie_after_a_logged_in_page(web_user) -> None:
    """Issue 21, item 14: Tornado wrote a 30-day expiry into the application's shared
    `xsrf_cookie_kwargs` on the first logged-in page served to a browser without an `_xsrf`
    cookie, and every later `_xsrf` cookie, anyone's, carried it."""
    first = await logged_in(web_user, "ada")
    del first.cookies["_xsrf"]  # a client that keeps only the session cookie
    assert (await first.get("/")).code == 200
    assert (await first.get("/logout")).code == 200
    for _ in range(2):
        fresh = await web_user().get("/login")
        xsrf = session_cookie_attributes(fresh, "_xsrf")
        assert "expires" not in xsrf and "max-age" not in xsrf, xsrf
        assert xsrf["path"] == "/" and "httponly" in xsrf and xsrf["samesite"] == "Lax" and "secure" not in xsrf


@pytest.mark.gen_test
async def test_a_second_session_cookie_planted_beside_the_persons_is_no_session_at_all(web_user) -> None:
    """A sibling subdomain can plant `session` for the parent domain (same path, sent after
    the person's, so a plain parse takes it): with two, neither is taken, on pages and on
    the API, rather than logging the person in as the planter."""
    victim = await logged_in(web_user, "ada")
    planter = await logged_in(web_user, "mallory")
    both = f"session={victim.cookies[SESSION_COOKIE]}; session={planter.cookies[SESSION_COOKIE]}"
    for path in ("/api/session", "/"):
        response = await victim.request("GET", path, headers={"Cookie": both})
        assert "mallory" not in response.body.decode()
    assert (await victim.request("GET", "/api/session", headers={"Cookie": both})).code == 401
    assert json.loads((await victim.get("/api/session")).body)["username"] == "ada"  # the session itself is untouched


@pytest.mark.gen_test
async def test_over_http_a_host_prefixed_session_cookie_is_not_read(web_user) -> None:
    """`__Host-session` is the HTTPS name; over plain HTTP only `session` counts (the HTTPS
    side: test_cli.py::test_https_with_a_certificate_marks_both_cookies_secure_and_checks_the_https_origin)."""
    user = await logged_in(web_user, "ada")
    value = user.cookies[SESSION_COOKIE]
    assert (await user.request("GET", "/api/session", headers={"Cookie": f"__Host-session={value}"})).code == 401
    assert (await user.request("GET", "/api/session", headers={"Cookie": f"session={value}"})).code == 200


@pytest.mark.gen_test
async def test_a_logout_form_outlives_its_session_and_still_logs_out(web_user, clock: FakeClock) -> None:
    """A page left open while its session expired still has its Log out button: its token is
    bound to the session id the signed cookie carries, not to the live session, so pressing it
    is a logout (its cookie cleared), not a 403."""
    user = await logged_in(web_user, "ada")
    token = await user.form_token("/logout")
    clock.advance(SESSION_TTL + 1)
    response = await user.request("POST", "/logout", body=urllib.parse.urlencode({"_xsrf": token}), headers={"Origin": user.base_url})
    assert response.code == 303 and response.headers["Location"] == "/login?logged_out=1"
    assert (await user.get("/api/session")).code == 401
