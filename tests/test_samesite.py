"""Same-site pages against a real server (issue 21, item 5), in both stores.

A page on another port of 127.0.0.1 (or of a sibling subdomain of a deployment) is the same
*site*: the browser sends this server's cookies with the forms it submits (SameSite=Lax does
not stop that), and its own server can set cookies this server receives, `_xsrf` included.
Before: it planted an `_xsrf` cookie it knew, submitted the matching field, and logged the
person out, or logged their browser in under a name it chose. The browser side of the same
attack, in Chromium, is in test_browser.py.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from deploy.services import AppProcess, free_port
from tests.support.app_env import app_env
from tests.support.forms import http_session, log_in
from tests.support.matching import found
from tests.support.wire import WireSocket

pytestmark = pytest.mark.process  # every test here starts an app, redis-server or nginx

@pytest.fixture(params=["memory", "redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppProcess]:
    """`python -m tornado_app` in memory mode, or on the test Redis."""
    app = AppProcess(tmp_path / "app.log", "--log-level", "info", "--login-rate", "off", env=app_env(request, request.param))
    yield app
    app.stop()


async def planted_pair(http: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    """What the same-site page knows: an `_xsrf` cookie and the form token that matches it,
    fetched for itself (or made up: Tornado takes any value), to plant and submit."""
    async with http.get(base + "/login") as page:
        token = found(r'name="_xsrf" value="([^"]+)"', await page.text()).group(1)
        return page.cookies["_xsrf"].value, token


async def forged_post(http: aiohttp.ClientSession, url: str, cookie: str, fields: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
    async with http.post(url, data=fields, headers={"Cookie": cookie, **headers}, allow_redirects=False) as answer:
        assert "Set-Cookie" not in answer.headers  # no session replaced, no cookie cleared
        return answer.status, await answer.text()


async def session_name(http: aiohttp.ClientSession, base: str, cookie: str) -> str | None:
    async with http.get(base + "/api/session", headers={"Cookie": cookie}) as answer:
        return (await answer.json()).get("username")


def test_a_page_on_another_port_with_a_planted_xsrf_cookie_neither_logs_the_person_out_nor_in_as_another(server: AppProcess) -> None:
    base = server.url
    evil = f"http://127.0.0.1:{free_port()}"
    # What a browser sends with a form submitted by the page on the other port, and what a
    # client without browser headers sends (its only check is then the session's token).
    senders = {"browser": {"Origin": evil, "Sec-Fetch-Site": "same-site"},
               "browser-without-origin": {"Sec-Fetch-Site": "same-site"}, "no-browser-headers": {}}

    async def scenario() -> tuple[str, str]:
        async with http_session() as http:
            victim = await log_in(http, base, "ada", origin=base)
            socket = await WireSocket.connect(http, base, victim, origin=base)
            assert (await socket.next("welcome"))["username"] == "ada"
            planted, token = await planted_pair(http, base)
            tossed = re.sub(r"_xsrf=[^;]*", f"_xsrf={planted}", victim)  # over the person's own
            for sender, headers in senders.items():
                for path, fields in [("/logout", {}), ("/login", {"username": "mallory"})]:
                    status, page = await forged_post(http, base + path, tossed, {"_xsrf": token, **fields}, headers)
                    assert status == 403, (sender, path)
                    assert "Traceback" not in page
            assert await session_name(http, base, victim) == "ada"
            assert (await socket.call("whoami", timeout=5))["username"] == "ada"
            await socket.close()

            # A logged-out browser: the planted cookie is all it has, and the Origin check
            # is what refuses the login under the attacker's name.
            status, page = await forged_post(http, base + "/login", f"_xsrf={planted}",
                                             {"_xsrf": token, "username": "mallory"}, senders["browser"])
            assert status == 403 and "sent from a page of another site" in page
            return planted, token

    planted, token = asyncio.run(scenario())
    server.stop()
    log = server.log()
    assert "Traceback" not in log and "login: 'mallory'" not in log and "logout:" not in log
    # One INFO line per refusal, saying why; never the cookie or the token.
    refusals = [line for line in log.splitlines() if "refused POST" in line]
    assert len(refusals) == 7, refusals
    assert sum("403 form from another origin" in line for line in refusals) == 5
    assert all(" INFO " in line for line in refusals)
    assert planted not in log and token not in log
