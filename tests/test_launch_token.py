"""The launcher's per-launch secret (launch_token.py), in process: without the cookie every
request is 403 before any handler; the secret in the address is exchanged for the cookie.
The attack by another uid on a real launcher is in test_launcher.py."""

from __future__ import annotations

import logging
import urllib.parse

import pytest

from tests.support.constants import MAX_SESSIONS, SESSION_TTL, TEST_SECRET
from tornado_app.app import TornadoApp, make_app
from tornado_app.backend import Backend
from tornado_app.launch_token import LAUNCH_COOKIE, LaunchToken
from tornado_app.settings import Settings

TOKEN = LaunchToken.generate()
PATHS = ["/", "/login", "/logout", "/api/session", "/static/js/main.js", "/nowhere", "/socket.io/?EIO=4&transport=polling"]


@pytest.fixture
def app(clock) -> TornadoApp:
    settings = Settings.lifted(session_ttl=SESSION_TTL, max_sessions=MAX_SESSIONS)
    return make_app(TEST_SECRET, settings=settings, backend=Backend.in_memory(settings, clock=clock), launch_token=TOKEN)


@pytest.mark.gen_test
async def test_without_the_cookie_every_path_is_403_and_touches_nothing(web_user, app: TornadoApp, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    user = web_user()
    for method, path in [("GET", path) for path in PATHS] + [("POST", "/login"), ("POST", "/logout"), ("POST", "/socket.io/?EIO=4&transport=polling&sid=x")]:
        body = "username=mallory&_xsrf=x" if method == "POST" else None
        response = await user.request(method, path, body=body, headers={"Cookie": f"{LAUNCH_COOKIE}=wrong; _xsrf=x"})
        assert response.code == 403, (method, path)
        assert b"Open this app from its window" in response.body
        assert "Set-Cookie" not in response.headers
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert await app.backend.store.count() == 0
    lines = [record for record in caplog.records if "launcher's secret" in record.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO  # one line per 10 s, whatever the flood
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert TOKEN.value not in caplog.text


@pytest.mark.gen_test
async def test_the_secret_in_the_address_becomes_a_strict_httponly_cookie(web_user) -> None:
    user = web_user()
    response = await user.request("GET", f"/?launch={TOKEN.value}")
    assert response.code == 303 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{LAUNCH_COOKIE}={TOKEN.value};")
    assert {"HttpOnly", "Path=/", "SameSite=Strict"} <= {part.strip() for part in cookie.split(";")}
    assert "expires" not in cookie.lower()  # ends with the browser session, and the secret with the launch
    assert response.headers["Referrer-Policy"] == "no-referrer"
    page = await user.request("GET", "/")
    assert page.code == 200 and b"Log in" in page.body
    assert await user.login("ada") is not None
    assert (await user.request("GET", "/api/session")).code == 200


@pytest.mark.gen_test
async def test_the_redirect_keeps_the_path_and_other_parameters_and_stays_on_this_site(web_user) -> None:
    user = web_user()
    response = await user.request("GET", f"/api/session?a=1&launch={TOKEN.value}&b=2")
    assert response.headers["Location"] == "/api/session?a=1&b=2"
    response = await web_user().request("GET", f"//evil.example/?launch={TOKEN.value}")
    assert response.headers["Location"] == "/evil.example/"  # never //evil.example: another site


@pytest.mark.parametrize("query", ["launch=", "launch=guess", f"launch={TOKEN.value}&launch={TOKEN.value}", f"launch={TOKEN.value[:-1]}"],
                         ids=["empty", "a-guess", "repeated", "one-character-short"])  # the same ids in every run
@pytest.mark.gen_test
async def test_a_wrong_or_repeated_secret_is_403(web_user, query: str) -> None:
    response = await web_user().request("GET", f"/?{query}")
    assert response.code == 403 and "Set-Cookie" not in response.headers


@pytest.mark.gen_test
async def test_the_secret_is_taken_by_get_only(web_user) -> None:
    response = await web_user().request("POST", f"/login?launch={TOKEN.value}", body="username=mallory")
    assert response.code == 403 and "Set-Cookie" not in response.headers


@pytest.mark.gen_test
async def test_from_another_site_the_exchange_is_a_page_that_reloads_itself(web_user) -> None:
    """A redirect would not carry a SameSite=Strict cookie when the navigation came from
    another site (the file that --browser hands the web browser): a page of ours reloads."""
    user = web_user()
    response = await user.request("GET", f"/?launch={TOKEN.value}", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.code == 200 and LAUNCH_COOKIE in user.cookies
    assert b'<meta http-equiv="refresh" content="0; url=/">' in response.body
    assert TOKEN.value.encode() not in response.body


@pytest.mark.gen_test
async def test_a_cookie_of_the_same_name_added_by_another_page_does_not_shadow_ours(web_user) -> None:
    """A page on another port of 127.0.0.1 can set a `launch` cookie for the same host."""
    user = web_user()
    for header in (f"{LAUNCH_COOKIE}=tossed; {LAUNCH_COOKIE}={TOKEN.value}", f"{LAUNCH_COOKIE}={TOKEN.value}; {LAUNCH_COOKIE}=tossed"):
        assert (await user.request("GET", "/", headers={"Cookie": header})).code == 200


def test_the_secret_is_never_in_a_repr() -> None:
    assert TOKEN.value not in repr(TOKEN)
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(TOKEN.url("http://127.0.0.1:1/")).query) == {"launch": [TOKEN.value]}


def test_the_waiting_room_makes_room_by_the_oldest_and_forgets_what_left() -> None:
    from tornado_app.launch_admission import WaitingRoom

    room = WaitingRoom(limit=2)
    first, second, third, fourth = (object() for _ in range(4))
    assert room.enter(first) is None and room.enter(second) is None  # type: ignore[arg-type]  # stand-in streams
    assert room.enter(third) is first  # type: ignore[arg-type]  # stand-in streams
    room.release(second)  # type: ignore[arg-type]  # showed the secret, or closed
    room.release(first)  # type: ignore[arg-type]  # already gone: nothing happens
    assert room.enter(fourth) is None and list(room.streams) == [third, fourth]  # type: ignore[arg-type]  # stand-in streams
