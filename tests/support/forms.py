"""The login and logout forms as a page submits them (XSRF token included), over aiohttp.

A session from `http_session()` keeps no cookies: many simulated people share it, each
sending the `Cookie` header that `log_in` returned for them.
"""

from __future__ import annotations

import aiohttp


def http_session() -> aiohttp.ClientSession:
    """No connection limit and no cookie jar: one session for a crowd of simulated people."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar())


def _form_token(html: str) -> str:
    return html.split('name="_xsrf" value="', 1)[1].split('"', 1)[0]


async def log_in(http: aiohttp.ClientSession, base_url: str, username: str, origin: str | None = None) -> str:
    """Log in through the form (XSRF token included) and return the `Cookie` header value.

    The session uses its own cookie jar, so give each simulated person their own
    aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) or read the value returned.
    """
    base = base_url.rstrip("/")
    async with http.get(base + "/login") as page:
        html = await page.text()
        xsrf_cookie = page.cookies["_xsrf"].value
    token = _form_token(html)
    headers = {"Cookie": f"_xsrf={xsrf_cookie}"}
    if origin:
        headers["Origin"] = origin
    async with http.post(base + "/login", data={"_xsrf": token, "username": username}, headers=headers, allow_redirects=False) as response:
        if response.status != 303:
            raise RuntimeError(f"login as {username!r} answered {response.status}")
        session = response.cookies["session"].value
    return f'_xsrf={xsrf_cookie}; session="{session}"'


async def can_log_in(http: aiohttp.ClientSession, url: str, username: str) -> bool:
    """Whether a login works now (not while the store cannot take one: a 503)."""
    try:
        await log_in(http, url, username)
    except RuntimeError:
        return False
    return True


async def logout_token(http: aiohttp.ClientSession, base_url: str, cookie: str) -> str:
    """The XSRF token of the logout form, as the page that holds the button has it."""
    async with http.get(base_url.rstrip("/") + "/logout", headers={"Cookie": cookie}) as page:
        html = await page.text()
    return _form_token(html)


async def post_logout(http: aiohttp.ClientSession, base_url: str, cookie: str, token: str) -> int:
    """Press the logout button: POST /logout with the form's token; returns the HTTP status."""
    async with http.post(base_url.rstrip("/") + "/logout", data={"_xsrf": token}, headers={"Cookie": cookie}, allow_redirects=False) as response:
        return response.status


async def log_out(http: aiohttp.ClientSession, base_url: str, cookie: str) -> int:
    """Open the logout page and press its button; returns the HTTP status of the POST."""
    return await post_logout(http, base_url, cookie, await logout_token(http, base_url, cookie))
