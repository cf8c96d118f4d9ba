"""The log, in both formats (`--log-format text|json`) and both stores: what a full run writes.

A full run against real processes (two sharing a password-protected Redis, or one holding its
sessions in memory): logins, sockets, chats, refusals (a socket without a session or with a
tampered cookie, an Engine.IO sid used without its cookie, a polling payload no client sends
and one too large, chats and logins over their rates), a logout, a login that replaces a
session, a Redis outage and its return, and a stop. Every secret the run handled is collected
as the client saw it: each cookie value (the signed session cookie, its signature, the XSRF
cookie), each session id (decoded from its cookie, and read from Redis's keys), each
Engine.IO sid, the cookie secret and the Redis password. None may appear in any log line, at
debug level, in either format; every line of a JSON log is one object with the stable fields.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from deploy.services import AppProcess, RedisServer
from tests.support.cluster import SECRET
from tests.support.forms import can_log_in, http_session, log_in, log_out
from tests.support.waiting import eventually
from tests.support.wire import Refused, WireSocket
from tornado_app.cookies import session_id_from_cookie
from tornado_app.logs import JsonFormatter, facts

STABLE_FIELDS = {"time", "level", "logger", "message", "process"}
ISO_UTC_MILLISECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
# How much of a secret counts as carrying it: a log line with a 12-character piece of a
# random token (a truncated id, say) has leaked it as surely as the whole.
PIECE = 12



class Secrets:
    """Every credential the run handled, as the client saw it."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.tokens: set[str] = set()

    def add(self, *values: str | None, random: bool = True) -> None:
        """Secrets to look for; `random` ones (tokens) in pieces too, others (a signed cookie,
        whose first characters are the same for every cookie) whole."""
        for value in values:
            assert value and len(value) >= PIECE, f"not a secret worth looking for: {value!r}"
            self.values.add(value)
            if random:
                self.tokens.add(value)

    def cookies(self, cookie_header: str) -> str:
        """The cookies of a `Cookie` header from forms.log_in: their values, the session's
        signature and the session id it carries. Returns the session id."""
        cookies = dict(pair.strip().split("=", 1) for pair in cookie_header.split(";"))
        signed = cookies["session"].strip('"')
        session_id = session_id_from_cookie(SECRET, signed)
        assert session_id is not None, signed
        self.add(signed, cookies["_xsrf"], random=False)
        self.add(signed.rsplit("|", 1)[1], session_id)
        return session_id

    def pieces(self) -> set[str]:
        """Each secret whole, and a random one's first and last PIECE characters."""
        return self.values | {piece for value in self.tokens for piece in (value[:PIECE], value[-PIECE:])}


def leaks(log: str, secrets: Secrets) -> list[str]:
    """The log lines that carry any piece of a secret."""
    pieces = secrets.pieces()
    return [line for line in log.splitlines() if any(piece in line for piece in pieces)]


def json_lines(log: str, pid: int) -> list[dict[str, Any]]:
    """Every line of a JSON log, parsed and checked for the stable fields; only the one line
    the server prints on stdout when it serves ("Serving on ...") is not a log line."""
    lines = []
    for line in log.splitlines():
        if line.startswith("Serving on "):
            continue
        parsed = json.loads(line)
        assert isinstance(parsed, dict) and parsed.keys() >= STABLE_FIELDS, line
        assert ISO_UTC_MILLISECONDS.fullmatch(parsed["time"]) and parsed["level"] in LEVELS, line
        assert parsed["process"] == str(pid) and all(isinstance(value, str) for value in parsed.values()), line
        lines.append(parsed)
    return lines


async def polling_sid(http: aiohttp.ClientSession, url: str, cookie: str, origin: str, secrets: Secrets) -> str:
    """A new long-polling Engine.IO session's sid (a secret: with the cookie, it is the connection)."""
    async with http.get(url, headers={"Cookie": cookie, "Origin": origin}) as opened:
        body = await opened.text()
    sid = json.loads(body[body.index("{"):])["sid"]
    secrets.add(sid)
    return sid


async def misuse_polling_sids(http: aiohttp.ClientSession, base: str, cookie: str, secrets: Secrets) -> None:
    """Requests that name a sid in their URL and are refused, each logged: a sid used without
    its cookie (403), a payload no client sends (400, the session ended), a packet over the
    size bound (413 from its headers, the session ended)."""
    url = f"{base}/socket.io/?EIO=4&transport=polling"
    headers = {"Cookie": cookie, "Origin": base}
    sid = await polling_sid(http, url, cookie, base, secrets)
    async with http.get(f"{url}&sid={sid}", headers={"Origin": base}) as stolen:
        assert stolen.status == 403, stolen.status
    async with http.post(f"{url}&sid={sid}", data=b"\xff\xfe", headers=headers) as garbage:
        assert garbage.status == 400, garbage.status
    sid = await polling_sid(http, url, cookie, base, secrets)
    async with http.post(f"{url}&sid={sid}", data=b"4" + b"x" * 70_000, headers=headers) as oversized:
        assert oversized.status == 413, oversized.status


async def log_in_again(http: aiohttp.ClientSession, base: str, cookie: str, username: str) -> str:
    """Log in through the form of a page that is logged in already (`cookie`): the session is
    replaced by a new one, whose `Cookie` header this returns."""
    async with http.get(base + "/login", headers={"Cookie": cookie}) as page:
        token = (await page.text()).split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
    async with http.post(base + "/login", data={"_xsrf": token, "username": username}, headers={"Cookie": cookie},
                         allow_redirects=False) as response:
        assert response.status == 303, response.status
        session = response.cookies["session"].value
    return cookie.split(";", 1)[0] + f'; session="{session}"'


async def logs_in(http: aiohttp.ClientSession, base: str, username: str, secrets: Secrets) -> bool:
    """Whether a login works now (not while the store is away); its cookies are secrets."""
    try:
        secrets.cookies(await log_in(http, base, username))
    except RuntimeError:
        return False
    return True


async def flood_logins(http: aiohttp.ClientSession, base: str, secrets: Secrets) -> None:
    """Log in until --login-rate refuses (429): each login's cookies are secrets too."""
    for number in range(20):
        try:
            secrets.cookies(await log_in(http, base, f"flood{number}"))
        except RuntimeError as refused:
            assert "429" in str(refused), refused
            return
    raise AssertionError("--login-rate never refused")


async def full_run(apps: list[AppProcess], secrets: Secrets, outage: RedisServer | None) -> dict[str, str]:
    """The run; returns each person's public tag (as the welcome told it)."""
    a, b = apps[0].url, apps[-1].url
    tags: dict[str, str] = {}
    async with http_session() as http:
        alice_cookie, bob_cookie = await log_in(http, a, "alice"), await log_in(http, b, "bob")
        secrets.cookies(alice_cookie)
        secrets.cookies(bob_cookie)
        alice = await WireSocket.connect(http, a, alice_cookie, origin=a)
        bob = await WireSocket.connect(http, b, bob_cookie, origin=b)
        for name, socket in (("alice", alice), ("bob", bob)):
            tags[name] = (await socket.next("welcome"))["tag"]
        assert (await alice.call("chat", {"text": "hello", "id": "m1"}))["ok"] is True
        assert (await bob.next("chat"))["text"] == "hello"

        with pytest.raises(Refused):
            await WireSocket.connect(http, a, None, origin=a)  # no session
        with pytest.raises(Refused):
            forged = alice_cookie[:-2] + ("1" if alice_cookie[-2] == "0" else "0") + '"'  # a tampered signature
            await WireSocket.connect(http, a, forged, origin=a)
        await misuse_polling_sids(http, a, alice_cookie, secrets)
        answers = [await bob.call("chat", {"text": f"fast {n}", "id": f"f{n}"}) for n in range(4)]
        assert answers[-1]["ok"] is False and answers[-1]["reason"] == "rate", answers

        assert await log_out(http, a, alice_cookie) == 303
        await eventually(alice.closed.is_set, what="alice's socket closed by her logout")
        secrets.cookies(await log_in_again(http, b, bob_cookie, "bob"))
        await eventually(bob.closed.is_set, what="bob's socket closed as his session was replaced")

        if outage is not None:
            with redis.Redis.from_url(outage.url) as client:
                stored = {key.decode().rpartition(":")[2] for key in client.scan_iter("tornado_app:session:*")}
            assert stored and stored <= secrets.values, (stored, "the store holds ids the cookies did not carry")
            outage.kill()
            assert not await can_log_in(http, a, "carol")  # 503 while Redis is away
            await eventually(lambda: all("Redis" in app.log() and "unavailable" in app.log() for app in apps),
                             what="every process logged Redis lost")
            outage.start()
            await eventually(lambda: logs_in(http, a, "someone", secrets), what="logins work again once Redis is back")
        carol_cookie = await log_in(http, b, "carol")
        secrets.cookies(carol_cookie)
        carol = await WireSocket.connect(http, b, carol_cookie, origin=b)
        tags["carol"] = (await carol.next("welcome"))["tag"]
        assert (await carol.call("chat", {"text": "after", "id": "c1"}))["ok"] is True
        await flood_logins(http, a, secrets)
        for app in apps:  # with carol's socket open: its close line says the server stops
            await asyncio.to_thread(app.stop)
        for socket in (bob, carol):
            await socket.close()
    return tags


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("store", ["memory", "redis"])
@pytest.mark.process
def test_no_log_line_of_a_full_run_carries_a_session_id_a_cookie_a_sid_or_the_redis_password(
    store: str, log_format: str, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    secrets = Secrets()
    outage: RedisServer | None = None
    env = {"TORNADO_APP_COOKIE_SECRET": SECRET}
    secrets.add(SECRET, random=False)
    if store == "redis":
        outage = request.getfixturevalue("own_redis")
        env["TORNADO_APP_REDIS_URL"] = outage.url
        secrets.add(outage.password)
    args = ("--log-level", "debug", "--log-format", log_format, "--login-rate", "8/minute", "--chat-rate", "3/minute")
    apps = [AppProcess(tmp_path / f"app{number}.log", *args, env=env) for number in range(1 if store == "memory" else 2)]
    try:
        tags = asyncio.run(full_run(apps, secrets, outage))
    finally:
        for app in apps:
            if app.process.poll() is None:
                app.stop()
    logs = [app.log() for app in apps]
    everything = "\n".join(logs)
    # It was a full run: every kind of line was written (so the grep below looked at them).
    for expected in ("login: 'alice'", "logout: 'alice'", "closed: logged out", "closed: session replaced", "closed: server stopping",
                     "refused sockets without a session", "a sid without its session's cookie",
                     "refused polling payloads engineio cannot take", "refused request bodies over their route's size",
                     "refused chat messages over --chat-rate", "refused logins over --login-rate"):
        assert expected in everything, (expected, everything[-3000:])
    if outage is not None:
        assert "session store unavailable" in everything and "session store is back" in everything, everything[-3000:]
    print(f"{store}/{log_format}: {sum(len(log.splitlines()) for log in logs)} log lines, {len(secrets.values)} secrets")

    for log in logs:
        assert leaks(log, secrets) == []
    if log_format == "text":
        return
    lines = [line for app, log in zip(apps, logs, strict=True) for line in json_lines(log, app.process.pid)]
    login = next(line for line in lines if line["message"].startswith("login: 'alice'"))
    assert (login["reason"], login["client"], login["tag"], login["logger"]) == ("login", "127.0.0.1", tags["alice"], "tornado_app.handlers")
    closed = next(line for line in lines if line["message"].startswith("socket of 'alice'"))
    assert (closed["reason"], closed["client"], closed["tag"]) == ("logout", "127.0.0.1", tags["alice"]), closed
    chats = next(line for line in lines if line["message"].startswith("refused chat messages over --chat-rate"))
    assert (chats["reason"], chats["tag"]) == ("refused chat messages over --chat-rate", tags["bob"])
    logins = next(line for line in lines if line["message"].startswith("refused logins over --login-rate"))
    assert logins["client"] == "127.0.0.1" and logins["level"] == "INFO"
    if outage is not None:
        lost = [line for line in lines if line.get("reason") == "redis lost"]
        assert lost and all(line["level"] == "WARNING" and "***" in line["message"] for line in lost), lost
        assert any(line.get("reason") == "redis back" for line in lines)


def test_a_json_line_is_one_line_with_its_traceback_escaped_inside() -> None:
    """An exception, a newline and a line separator (U+2028, which some readers split on) in
    the message: still one ASCII line, which parses back to the very text."""
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("tornado_app.x", logging.ERROR, __file__, 1, "failed for %s", ("a\u2028b\nc",), sys.exc_info())
    record.__dict__.update(facts("refused", "2001:db8::1", None))
    line = JsonFormatter().format(record)
    assert "\n" not in line and line.isascii()
    parsed = json.loads(line)
    assert parsed["message"] == "failed for a\u2028b\nc" and parsed["reason"] == "refused" and parsed["client"] == "2001:db8::1"
    assert "tag" not in parsed and parsed["traceback"].startswith("Traceback") and "ValueError: bad\nvalue" in parsed["traceback"]
    assert ISO_UTC_MILLISECONDS.fullmatch(parsed["time"])


@pytest.mark.process
def test_sigterm_leaves_a_json_log_of_json_lines_only(tmp_path: Path) -> None:
    """The shutdown's own lines (and anything a library logs meanwhile) are JSON too."""
    app = AppProcess(tmp_path / "app.log", "--log-format", "json", "--log-level", "debug")
    assert app.stop(signal.SIGTERM) == 0
    lines = json_lines(app.log(), app.process.pid)
    assert any(line["message"] == "stopped" for line in lines), lines
