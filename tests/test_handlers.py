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

from tornado_app.app import TornadoApp, make_app
from tornado_app.backend import Backend
from tornado_app.cookies import SESSION_COOKIE

from .conftest import MAX_SESSIONS, SESSION_TTL, TEST_SECRET, FakeClock


def session_cookie_attributes(response) -> dict[str, str]:
    """The attributes of the `session` Set-Cookie header, lower-cased, flags mapped to ''."""
    for header in response.headers.get_list("Set-Cookie"):
        if header.startswith(f"{SESSION_COOKIE}="):
            parts = [part.strip() for part in header.split(";")]
            attributes = {"value": parts[0].split("=", 1)[1].strip('"')}
            for part in parts[1:]:
                key, _, value = part.partition("=")
                attributes[key.lower()] = value
            return attributes
    raise AssertionError("no session cookie was set")


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
    assert await app.store.count() == 1

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
    assert await app.store.count() == 1
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
    session_id = next(iter(app.store._sessions))  # the only session
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
    assert await app.store.count() == 0


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
    assert await app.store.count() == 0
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
    assert await app.store.count() == 0


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
    assert await app.store.count() == 0
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
    await app.store.clear()  # what a restart does to in-memory sessions
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
    assert await app.store.count() == MAX_SESSIONS
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
    entry = re.search(r'src="(/static/js/main\.js\?v=[0-9a-f]+)"', page).group(1)
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
    assert await app.store.count() == 0


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
    server = HTTPServer(make_app(TEST_SECRET, backend=Backend.in_memory(store=BrokenStore())))
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
