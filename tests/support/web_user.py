"""One browser's HTTP side for the in-process tests (the `web_user` fixture): a cookie jar,
the XSRF token from the page, and no automatic redirects, over Tornado's HTTP client."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from http.cookies import SimpleCookie

import tornado.httpclient


class WebUser:
    """One browser: a cookie jar, the XSRF token from the page, and no automatic redirects."""

    def __init__(self, http_client: tornado.httpclient.AsyncHTTPClient, base_url: str) -> None:
        self.http_client = http_client
        self.base_url = base_url
        self.cookies: dict[str, str] = {}

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    async def request(self, method: str, path: str, body: str | None = None, headers: dict[str, str] | None = None) -> tornado.httpclient.HTTPResponse:
        all_headers = {"Cookie": self.cookie_header} if self.cookies else {}
        all_headers.update(headers or {})
        response = await self.http_client.fetch(
            self.base_url + path, method=method, body=body, headers=all_headers,
            follow_redirects=False, raise_error=False,
        )
        for header in response.headers.get_list("Set-Cookie"):
            for name, morsel in SimpleCookie(header).items():
                if not morsel.value:  # clear_cookie sends an empty, already expired value
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    async def get(self, path: str) -> tornado.httpclient.HTTPResponse:
        return await self.request("GET", path)

    async def xsrf_token(self) -> str:
        """The hidden `_xsrf` field of the login form, as a browser would submit it."""
        page = (await self.get("/login")).body.decode()
        match = re.search(r'name="_xsrf" value="([^"]+)"', page)
        assert match, "the login form has no _xsrf field"
        return match.group(1)

    async def form_token(self, path: str) -> str:
        """The hidden `_xsrf` field of the form on `path` (the login form: /login; the logout
        button: /logout), as a browser would submit it."""
        page = (await self.get(path)).body.decode()
        match = re.search(r'name="_xsrf" value="([^"]+)"', page)
        assert match, f"{path} has no _xsrf field"
        return match.group(1)

    async def post(self, path: str, fields: dict[str, str], with_xsrf: bool = True) -> tornado.httpclient.HTTPResponse:
        """Submit a form as the page does: the token of the form that page shows (bound to the
        session when logged in) and the page's own Origin, which browsers always send."""
        if with_xsrf:
            fields = {"_xsrf": await self.form_token(path), **fields}
        return await self.request("POST", path, body=urllib.parse.urlencode(fields), headers={"Origin": self.base_url})

    async def login(self, username: str) -> tornado.httpclient.HTTPResponse:
        response = await self.post("/login", {"username": username})
        assert response.code == 303, response.body
        return response

    async def logout(self) -> tornado.httpclient.HTTPResponse:
        return await self.post("/logout", {})


async def logged_in(web_user: Callable[[], WebUser], username: str) -> WebUser:
    """A new browser from the `web_user` fixture, logged in as `username`."""
    user = web_user()
    await user.login(username)
    return user
