"""Rotating the cookie secret on real servers sharing a real Redis (sessions outlive the
process only there): log in under secret A; restart with B as the secret and A as an old
one: A's cookies (and one signed as the release before key versions signed it) still open
their sessions, page and socket, and a page served under A still sends its logout form,
while new cookies are signed with B, and a page view signs an old one again with B; restart
with B alone: A's cookies are refused cleanly, a logged-out page and `not authenticated`,
with no traceback and no secret in the log, while the re-signed one still opens its session.

In-memory mode has nothing to rotate across: its sessions end with the process.
Skips with the reason where redis-server is missing (fails under REQUIRE_E2E=1).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
from tornado.web import create_signed_value, get_signature_key_version

from deploy.services import AppProcess, free_port
from tests.support.forms import http_session, log_in, logout_token, post_logout
from tests.support.wire import Refused, WireSocket
from tornado_app.cli import COOKIE_SECRET_ENV, OLD_COOKIE_SECRETS_ENV, REDIS_URL_ENV
from tornado_app.cookie_secrets import CookieSecrets, key_version
from tornado_app.cookies import SESSION_COOKIE
from tornado_app.reasons import NOT_AUTHENTICATED

A = "secret-a-" + "a" * 32
B = "secret-b-" + "b" * 32
LOGGED_IN_TITLE = "<title>Live view · Session Sockets</title>"
LOGGED_OUT_FORM = 'id="login-heading"'


class Site:
    """One app process on one port, restarted with other secrets as an operator would."""

    def __init__(self, redis_url: str, workdir: Path) -> None:
        self.redis_url = redis_url
        self.log_path = workdir / "app.log"
        self.port = free_port()
        self.app: AppProcess | None = None

    def restart(self, *args: str, env: dict[str, str]) -> AppProcess:
        if self.app is not None:
            self.app.stop()
        self.app = AppProcess(self.log_path, "--log-level", "info", "--login-rate", "off", "--connect-rate", "off", *args,
                              port=self.port, env={REDIS_URL_ENV: self.redis_url, OLD_COOKIE_SECRETS_ENV: "", **env})
        return self.app

    def stop(self) -> None:
        if self.app is not None:
            self.app.stop()


def signed_session(cookie: str) -> str:
    """The signed value of the `session` cookie in a `Cookie` header from log_in."""
    found = re.search(r'session="([^"]+)"', cookie)
    assert found is not None, cookie
    return found.group(1)


def legacy_cookie(cookie: str, secret: str) -> str:
    """The same session's cookie as the release before key versions wrote it: Tornado's
    create_signed_value with one plain secret (key version 0)."""
    session_id = CookieSecrets(secret).decode(SESSION_COOKIE, signed_session(cookie), max_age_days=31)
    assert session_id is not None
    value = create_signed_value(secret, SESSION_COOKIE, session_id).decode()
    assert get_signature_key_version(value) == 0
    return re.sub(r'session="[^"]+"', f'session="{value}"', cookie)


async def opens_its_session(http: aiohttp.ClientSession, url: str, cookie: str, username: str) -> None:
    async with http.get(url + "/", headers={"Cookie": cookie}) as page:
        assert page.status == 200 and LOGGED_IN_TITLE in await page.text()
    async with http.get(url + "/api/session", headers={"Cookie": cookie}) as api:
        assert api.status == 200 and (await api.json())["username"] == username
    socket = await WireSocket.connect(http, url, cookie, origin=url)
    assert (await socket.call("whoami"))["username"] == username
    await socket.close()


async def signed_again(http: aiohttp.ClientSession, url: str, cookie: str) -> str | None:
    """The `Cookie` header after a page view, if the page wrote the session cookie again."""
    async with http.get(url + "/", headers={"Cookie": cookie}) as page:
        assert page.status == 200
        if SESSION_COOKIE not in page.cookies:
            return None
        return re.sub(r'session="[^"]+"', f'session="{page.cookies[SESSION_COOKIE].value}"', cookie)


async def is_logged_out(http: aiohttp.ClientSession, url: str, cookie: str) -> None:
    async with http.get(url + "/", headers={"Cookie": cookie}) as page:
        assert page.status == 200
        html = await page.text()
        assert LOGGED_OUT_FORM in html and LOGGED_IN_TITLE not in html
    async with http.get(url + "/api/session", headers={"Cookie": cookie}) as api:
        assert api.status == 401
    with pytest.raises(Refused, match=f"^{NOT_AUTHENTICATED}$"):
        await WireSocket.connect(http, url, cookie, origin=url)


# Step 2 of the rotation, told through the environment or through the flags.
ROTATED = {
    "environment": ((), {COOKIE_SECRET_ENV: B, OLD_COOKIE_SECRETS_ENV: f"  {A}, "}),
    "flags": (("--cookie-secret", B, "--old-cookie-secret", A), {COOKIE_SECRET_ENV: ""}),
}


@pytest.mark.parametrize("told_by", list(ROTATED))
def test_a_rotation_logs_nobody_out_and_removing_the_old_secret_logs_its_cookies_out(
    told_by: str, redis_url: str, tmp_path: Path,
) -> None:
    site = Site(redis_url, tmp_path)
    try:
        app = site.restart(env={COOKIE_SECRET_ENV: A})

        async def before() -> tuple[str, str, str]:
            async with http_session() as http:
                ada, grace = await log_in(http, app.url, "ada"), await log_in(http, app.url, "grace")
                return ada, grace, await logout_token(http, app.url, grace)

        ada, grace, graces_logout_token = asyncio.run(before())
        assert get_signature_key_version(signed_session(ada)) == key_version(A)
        adas_legacy = legacy_cookie(ada, A)

        args, env = ROTATED[told_by]
        app = site.restart(*args, env=env)

        async def rotated() -> tuple[str, str]:
            async with http_session() as http:
                await opens_its_session(http, app.url, ada, "ada")
                await opens_its_session(http, app.url, adas_legacy, "ada")
                # A page view signs the old cookie again with B (once: not B's own cookies).
                adas_new = await signed_again(http, app.url, ada)
                assert adas_new is not None and await signed_again(http, app.url, adas_new) is None
                # The logout form of a page served under A still works under B.
                assert await post_logout(http, app.url, grace, graces_logout_token) == 303
                await is_logged_out(http, app.url, grace)
                lin = await log_in(http, app.url, "lin")
                await opens_its_session(http, app.url, lin, "lin")
                assert await signed_again(http, app.url, lin) is None
                return lin, adas_new

        lin, adas_new = asyncio.run(rotated())
        assert get_signature_key_version(signed_session(lin)) == key_version(B)
        assert get_signature_key_version(signed_session(adas_new)) == key_version(B)
        assert f"signing cookies with key version {key_version(B)}; 1 old secret(s) still verify" in app.log()

        app = site.restart(env={COOKIE_SECRET_ENV: B})

        async def old_one_removed() -> None:
            async with http_session() as http:
                await opens_its_session(http, app.url, lin, "lin")
                await opens_its_session(http, app.url, adas_new, "ada")  # came back after the rotation
                await is_logged_out(http, app.url, ada)
                await is_logged_out(http, app.url, adas_legacy)

        asyncio.run(old_one_removed())
    finally:
        site.stop()
    log = site.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert A not in log and B not in log


def test_a_deploy_of_this_release_with_the_same_secret_keeps_the_previous_releases_cookies(redis_url: str, tmp_path: Path) -> None:
    """The upgrade itself: cookies written by the release before key versions (one plain
    secret) open their sessions under this one with that secret, and go on doing so after
    a rotation (the test above)."""
    site = Site(redis_url, tmp_path)
    try:
        app = site.restart(env={COOKIE_SECRET_ENV: A})

        async def scenario() -> None:
            async with http_session() as http:
                legacy = legacy_cookie(await log_in(http, app.url, "ada"), A)
                await opens_its_session(http, app.url, legacy, "ada")
                versioned = await signed_again(http, app.url, legacy)  # moved to A's key version
                assert versioned is not None and get_signature_key_version(signed_session(versioned)) == key_version(A)
                await opens_its_session(http, app.url, versioned, "ada")

        asyncio.run(scenario())
    finally:
        site.stop()
    assert "Traceback" not in site.log_path.read_text()


def test_in_a_rolling_rotation_two_processes_between_steps_verify_each_others_cookies(redis_url: str, tmp_path: Path) -> None:
    """docs/scaling.md's rolling rotation, between steps 1 and 2: one process signs with A and
    lists B, the other signs with B and lists A. A person logged in on either, or whose
    cookie either wrote again on a page view, is logged in on both."""
    step_1 = Site(redis_url, tmp_path / "one")
    step_2 = Site(redis_url, tmp_path / "two")
    for site in (step_1, step_2):
        site.log_path.parent.mkdir()
    try:
        one = step_1.restart(env={COOKIE_SECRET_ENV: A, OLD_COOKIE_SECRETS_ENV: B})
        two = step_2.restart(env={COOKIE_SECRET_ENV: B, OLD_COOKIE_SECRETS_ENV: A})

        async def scenario() -> None:
            async with http_session() as http:
                ada, lin = await log_in(http, one.url, "ada"), await log_in(http, two.url, "lin")
                assert get_signature_key_version(signed_session(ada)) == key_version(A)
                assert get_signature_key_version(signed_session(lin)) == key_version(B)
                for app in (one, two):
                    await opens_its_session(http, app.url, ada, "ada")
                    await opens_its_session(http, app.url, lin, "lin")
                adas_by_two = await signed_again(http, two.url, ada)
                assert adas_by_two is not None and get_signature_key_version(signed_session(adas_by_two)) == key_version(B)
                await opens_its_session(http, one.url, adas_by_two, "ada")

        asyncio.run(scenario())
    finally:
        step_1.stop()
        step_2.stop()
    for site in (step_1, step_2):
        assert "Traceback" not in site.log_path.read_text()
