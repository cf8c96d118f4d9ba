"""`python -m tornado_app` as a person runs it: a real process, its output, its exit."""

from __future__ import annotations

import asyncio
import errno
import http.cookiejar
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from deploy.services import Service, ServiceMissing, find_program, free_port, wait_for_port
from tests.support import other_user
from tests.support.e2e import e2e_unavailable
from tests.support.forms import http_session, log_in, logout_token, post_logout
from tests.support.matching import found
from tests.support.socketio_client import SocketClient
from tests.support.waiting import eventually
from tests.support.wire import Refused, WireSocket
from tornado_app.cli import COOKIE_SECRET_ENV, build_parser
from tornado_app.cookie_secrets import MAKE_A_SECRET
from tornado_app.redis.urls import FORMS

ROOT = Path(__file__).resolve().parent.parent


def test_help_explains_every_flag() -> None:
    text = build_parser().format_help()
    for flag in ["--address", "--port", "--cookie-secret", "--session-ttl", "--max-sessions", "--allowed-origin", "--log-level",
                 "--allowed-host", "--certfile", "--keyfile", "--behind-proxy", "--connect-timeout", "--ping-interval", "--ping-timeout", "--max-unsent-kib", "--no-fast-path", "--no-uvloop",
                 "--max-connections-per-ip", "--max-sockets-per-ip", "--first-poll-timeout", "--old-cookie-secret"]:
        assert flag in text
    assert "TORNADO_APP_COOKIE_SECRET" in text and "TORNADO_APP_OLD_COOKIE_SECRETS" in text


def test_bad_flag_values_are_refused_with_status_2(capsys) -> None:
    for argv in (["--port", "70000"], ["--session-ttl", "0"], ["--allowed-origin", "not an origin"], ["--max-sessions", "x"],
                 ["--allowed-host", "http://example.com"], ["--connect-timeout", "0"], ["--ping-interval", "0"], ["--ping-timeout", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(argv)
        assert exit_info.value.code == 2
    assert "not an origin like" in capsys.readouterr().err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_the_page_logs_and_stops_cleanly(server_process, signum: int) -> None:
    port = free_port()
    server = server_process("--port", str(port), "--session-ttl", "120")
    assert server.first_line.startswith(f"Serving on http://127.0.0.1:{port}/")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
        assert response.status == 200
        assert b"Log in" in response.read()
    with pytest.raises(urllib.error.HTTPError) as api:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/session")
    assert api.value.code == 401 and json.loads(api.value.read()) == {"error": "not logged in"}
    status, _out, err = server.stop(signum)
    assert status == 0
    assert "Traceback" not in err
    assert "random one" in err  # says that no secret was given, so a restart logs everyone out
    assert "stopped" in err
    with socket.socket() as probe:  # the port is free again, for a server (as Tornado binds)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()


@pytest.mark.process
def test_a_port_in_use_is_one_line_and_status_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "tornado_app", "--port", str(port)], cwd=ROOT, check=False, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr.strip() == f"tornado-app: error: port {port} on 127.0.0.1 is already in use"


def test_the_secret_comes_from_the_environment(server_process) -> None:
    port = free_port()
    server = server_process("--port", str(port), env={"TORNADO_APP_COOKIE_SECRET": "from-the-environment"})
    status, _, err = server.stop()
    assert status == 0
    assert "random one" not in err


def test_logins_logouts_and_refused_sockets_are_logged_with_the_real_address(server_process) -> None:
    port = free_port()
    server = server_process("--port", str(port))
    base = f"http://127.0.0.1:{port}"
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def submit(path: str, fields: dict[str, str]) -> None:
        form = browser.open(f"{base}/login").read().decode()
        token = found(r'name="_xsrf" value="([^"]+)"', form).group(1)
        browser.open(f"{base}{path}", data=urllib.parse.urlencode({"_xsrf": token, **fields}).encode())

    submit("/login", {"username": "ada"})
    submit("/logout", {})

    async def anonymous_socket() -> None:
        for headers, transport in [({}, "websocket"), ({"Origin": "http://evil.example"}, "polling")]:
            client = SocketClient()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await client.sio.connect(base, headers=headers, transports=[transport], wait_timeout=10)
            await client.close()

    asyncio.run(anonymous_socket())
    status, _, err = server.stop()
    assert status == 0
    assert "login: 'ada' from 127.0.0.1" in err
    assert "logout: 'ada' from 127.0.0.1" in err
    assert "refused socket from 127.0.0.1: origin 'http://evil.example' not allowed" in err
    assert "not authenticated" not in err  # a socket without a session: DEBUG only (below)
    assert "Traceback" not in err


@pytest.mark.parametrize("level", [(), ("--log-level", "debug")], ids=["default-level", "debug"])
def test_a_logged_out_pages_socket_probe_shows_only_at_debug(server_process, level: tuple[str, ...]) -> None:
    """Issue 17, point 8: every logged-out page view opens a socket that is refused, as the demo
    means it to be; at INFO that was 28 of ~70 lines in a short session. At the default level a
    few logged-out visits now write nothing at all; at DEBUG the refusals are reported (one
    line per 10 s, the rest counted)."""
    server = server_process("--port", "0", *level, env={COOKIE_SECRET_ENV: "a-secret-for-this-test-" + "x" * 16})
    base = server.url.rstrip("/")

    async def logged_out_visits() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            for _ in range(3):
                async with http.get(base + "/") as page:
                    assert page.status == 200 and "socket-probe" in await page.text()
                with pytest.raises(Refused, match="not authenticated"):  # the probe, as probe.js opens it
                    await WireSocket.connect(http, base, None, origin=base)

    asyncio.run(logged_out_visits())
    status, _, log = server.stop()
    assert status == 0
    events = [line.split(" ", 2)[2] for line in log.splitlines() if line.strip()]  # without the timestamp
    if level:
        refusals = [event for event in events if "refused sockets without a session" in event]
        assert refusals == ["DEBUG tornado_app.sockets: refused sockets without a session: not authenticated, the latest from 127.0.0.1"]
    else:
        assert events == ["INFO tornado_app.server: stopped"]


def test_a_socket_closed_for_its_sessions_end_is_logged_with_why(server_process) -> None:
    """Issue 17, point 8: a socket dropped because its session ended was logged with engineio's
    "server disconnect", an idle expiry too; the line now says which end it was."""
    server = server_process("--port", "0", "--session-ttl", "3", env={COOKIE_SECRET_ENV: "a-secret-for-this-test-" + "x" * 16})
    base = server.url.rstrip("/")

    async def log_out_then_sit_idle() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            cookie = await log_in(http, base, "ada")
            ada = await WireSocket.connect(http, base, cookie, origin=base)
            assert await post_logout(http, base, cookie, await logout_token(http, base, cookie)) == 303
            await asyncio.wait_for(ada.closed.wait(), 10)
            idle = await WireSocket.connect(http, base, await log_in(http, base, "idle"), origin=base)
            assert await idle.next("ended", timeout=15) == {"reason": "expired"}
            await asyncio.wait_for(idle.closed.wait(), 10)

    asyncio.run(log_out_then_sit_idle())
    status, _, log = server.stop()
    assert status == 0
    assert [line.split(" ", 2)[2] for line in log.splitlines() if line.strip()] == [
        "INFO tornado_app.handlers: login: 'ada' from 127.0.0.1",
        "INFO tornado_app.sockets: socket of 'ada' from 127.0.0.1 closed: logged out",
        "INFO tornado_app.handlers: logout: 'ada' from 127.0.0.1",
        "INFO tornado_app.handlers: login: 'idle' from 127.0.0.1",
        "INFO tornado_app.sockets: socket of 'idle' from 127.0.0.1 closed: session expired",
        "INFO tornado_app.server: stopped",
    ]


# --- HTTPS, directly or behind a proxy: the session cookie's Secure flag and the Origin
# check follow the scheme the browser really used. ----------------------------------------


@pytest.fixture
def self_signed_certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost made for this test, and its key."""
    if shutil.which("openssl") is None:
        e2e_unavailable("openssl is not installed (sudo make system-deps)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


async def login_response(http: aiohttp.ClientSession, base: str, headers: dict[str, str], **request: Any) -> tuple[str, str]:
    """Log in as ada through the form; returns (the XSRF Set-Cookie, the session Set-Cookie)."""
    async with http.get(f"{base}/login", headers=headers, **request) as page:
        assert page.status == 200, await page.text()
        xsrf_header = page.headers["Set-Cookie"]
        token = found(r'name="_xsrf" value="([^"]+)"', await page.text()).group(1)
    xsrf_cookie = xsrf_header.split(";", 1)[0]  # `_xsrf=...`, or `__Host-_xsrf=...` over HTTPS
    async with http.post(f"{base}/login", data={"_xsrf": token, "username": "ada"}, allow_redirects=False,
                         headers={**headers, "Cookie": xsrf_cookie}, **request) as response:
        assert response.status == 303
        return xsrf_header, response.headers["Set-Cookie"]


async def socket_answer(http: aiohttp.ClientSession, base: str, headers: dict[str, str], **request: Any) -> int | str | None:
    """Open a socket with these headers: the refusal's HTTP status, or the welcome's name."""
    try:
        opened = await WireSocket.connect(http, base, headers=headers, **request)
    except Refused as refusal:
        return refusal.status
    try:
        return (await opened.next("welcome"))["username"]
    finally:
        await opened.close()


def test_https_with_a_certificate_marks_both_cookies_secure_and_checks_the_https_origin(server_process, self_signed_certificate) -> None:
    cert, key = self_signed_certificate
    port = free_port()
    server = server_process("--port", str(port), "--certfile", str(cert), "--keyfile", str(key))
    assert server.first_line.startswith(f"Serving on https://127.0.0.1:{port}/")
    base = f"https://127.0.0.1:{port}"
    tls = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            xsrf, session = await login_response(http, base, {}, ssl=tls)
            assert "Secure" in xsrf and "Secure" in session
            assert "HttpOnly" in session and "SameSite=Lax" in session and "Path=/" in session
            # `__Host-`: no sibling subdomain or plain-HTTP page can plant one; no Domain.
            assert session.startswith("__Host-session=") and xsrf.startswith("__Host-_xsrf=")
            assert "domain" not in session.lower() and "domain" not in xsrf.lower()
            cookie = session.split(";", 1)[0]
            assert await socket_answer(http, base, {"Cookie": cookie, "Origin": base}, ssl=tls) == "ada"
            # Over HTTPS the unprefixed name counts for nothing, valid signature or not.
            planted = cookie.replace("__Host-session=", "session=")
            assert await socket_answer(http, base, {"Cookie": planted, "Origin": base}, ssl=tls) is None  # refused: no session
            assert await socket_answer(http, base, {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}, ssl=tls) == 403

    asyncio.run(scenario())
    status, _, log = server.stop()
    assert status == 0 and "Traceback" not in log


def test_over_https_a_planted_unprefixed_xsrf_cookie_counts_for_nothing(server_process, self_signed_certificate) -> None:
    """A sibling subdomain, or a plain-HTTP page of this host, can plant `_xsrf` for it, but
    never a `__Host-` cookie: over HTTPS only the prefixed name is read (issue 21, item 5)."""
    cert, key = self_signed_certificate
    port = free_port()
    server = server_process("--port", str(port), "--certfile", str(cert), "--keyfile", str(key))
    base = f"https://127.0.0.1:{port}"
    tls = ssl.create_default_context(cafile=str(cert))

    async def post_login(http: aiohttp.ClientSession, cookie: str, token: str) -> int:
        async with http.post(f"{base}/login", data={"_xsrf": token, "username": "mallory"}, headers={"Cookie": cookie},
                             allow_redirects=False, ssl=tls) as answer:
            return answer.status

    async def scenario() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            async with http.get(f"{base}/login", ssl=tls) as page:
                token = found(r'name="_xsrf" value="([^"]+)"', await page.text()).group(1)
                value = next(morsel.value for name, morsel in page.cookies.items() if name.endswith("_xsrf"))
            assert await post_login(http, f"_xsrf={value}", token) == 403  # planted under the plain name
            assert await post_login(http, f"__Host-_xsrf={value}", token) == 303

    asyncio.run(scenario())
    status, _, log = server.stop()
    assert status == 0 and "Traceback" not in log


@pytest.mark.process
def test_a_certificate_that_cannot_be_loaded_is_one_line_and_status_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    result = subprocess.run([sys.executable, "-m", "tornado_app", "--port", "0", "--certfile", str(missing), "--keyfile", str(missing)],
                            cwd=ROOT, check=False, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr.strip() == f"tornado-app: error: cannot load the certificate {missing} with the key {missing}: No such file or directory"


@pytest.mark.parametrize("behind_proxy", [True, False], ids=["behind-proxy", "proxy-headers-ignored"])
def test_behind_a_proxy_the_scheme_and_address_come_from_its_headers(server_process, behind_proxy: bool) -> None:
    """With --behind-proxy, X-Forwarded-Proto: https makes the session and XSRF cookies Secure and the
    https Origin the page's own, and X-Forwarded-For is the address logged; without it those
    headers, which any client can send, change nothing."""
    port = free_port()
    server = server_process("--port", str(port), "--allowed-host", "chat.example.com", *(["--behind-proxy"] if behind_proxy else []))
    base = f"http://127.0.0.1:{port}"
    from_proxy = {"Host": "chat.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}

    async def scenario() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            xsrf, session = await login_response(http, base, from_proxy)
            assert ("Secure" in session) is behind_proxy
            assert ("Secure" in xsrf) is behind_proxy  # the XSRF cookie too (it never was)
            assert session.startswith("__Host-session=") is behind_proxy and xsrf.startswith("__Host-_xsrf=") is behind_proxy
            cookie = session.split(";", 1)[0]
            https_page = {**from_proxy, "Cookie": cookie, "Origin": "https://chat.example.com"}
            http_page = {**https_page, "Origin": "http://chat.example.com"}
            assert await socket_answer(http, base, https_page) == ("ada" if behind_proxy else 403)
            assert await socket_answer(http, base, http_page) == (403 if behind_proxy else "ada")
            async with http.get(f"{base}/", headers={**from_proxy, "Host": "evil.example"}) as other_name:
                assert other_name.status == 421

    asyncio.run(scenario())
    status, _, log = server.stop()
    assert status == 0 and "Traceback" not in log
    assert ("login: 'ada' from 203.0.113.9" in log) is behind_proxy
    assert ("login: 'ada' from 127.0.0.1" in log) is not behind_proxy


# --- --redis-url: refusals at start are one line and status 2. ----------------------------


def run_server(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TORNADO_APP_")}
    return subprocess.run([sys.executable, "-m", "tornado_app", "--port", "0", *args], cwd=ROOT, check=False, capture_output=True,
                          text=True, timeout=20, env={**environment, **(env or {})})


@pytest.mark.process
def test_redis_without_a_shared_cookie_secret_refuses_to_start() -> None:
    result = run_server("--redis-url", "redis://127.0.0.1:6379/0")
    assert result.returncode == 2
    assert result.stderr.strip() == ("tornado-app: error: --redis-url needs --cookie-secret (or $TORNADO_APP_COOKIE_SECRET): "
                                     "every process must verify the others' cookies")


@pytest.mark.parametrize("args, env", [
    (("--old-cookie-secret", "o" * 32), {}),
    ((), {"TORNADO_APP_OLD_COOKIE_SECRETS": "o" * 32}),
])
@pytest.mark.process
def test_old_cookie_secrets_without_a_cookie_secret_refuse_to_start(args: tuple[str, ...], env: dict[str, str]) -> None:
    """An old secret only verifies: with no --cookie-secret, a random one would sign, and
    every cookie would change secret at each start."""
    result = run_server(*args, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == ("tornado-app: error: --old-cookie-secret needs --cookie-secret (or $TORNADO_APP_COOKIE_SECRET): "
                                     "the newest secret signs, the old ones only verify")
    assert "o" * 32 not in result.stdout


@pytest.mark.process
def test_redis_that_does_not_answer_at_start_is_one_line_naming_it_and_status_2() -> None:
    port = free_port()  # nothing listens there
    result = run_server(env={"TORNADO_APP_REDIS_URL": f"redis://:hunter2@127.0.0.1:{port}/0", "TORNADO_APP_COOKIE_SECRET": "s" * 32})
    assert result.returncode == 2
    assert result.stderr == (f"tornado-app: error: Redis at redis://***@127.0.0.1:{port}/0 does not answer: "
                             "nothing listens there (connection refused)\n")
    assert "hunter2" not in result.stderr + result.stdout  # the password stays out of the log


def refused_in_one_line(result: subprocess.CompletedProcess[str], line: str, *hidden: str) -> None:
    """The process said `line`, and only it, on stderr, printed nothing, and stopped with
    status 2; none of `hidden` (a password, a secret) shows."""
    assert (result.returncode, result.stderr, result.stdout) == (2, line + "\n", ""), result.stderr
    for secret in hidden:
        assert secret not in result.stderr


@pytest.mark.parametrize("argv, said", [
    (["--port", "abc"], "argument --port: invalid port value: 'abc'"),
    (["--port", "70000"], "argument --port: must be between 0 and 65535"),
    (["--session-ttl", "soon"], "argument --session-ttl: invalid int value: 'soon'"),
    (["--max-body-kib-in-flight", "lots"], "argument --max-body-kib-in-flight: invalid int value: 'lots'"),
    (["--connect-timeout", "later"], "argument --connect-timeout: invalid float value: 'later'"),
    (["--drain-seconds", "-1"], "argument --drain-seconds: must be 0 or more"),
    (["--allowed-origin", "http://[::1"], "argument --allowed-origin: invalid origin value: 'http://[::1'"),
    (["--redis-url", "localhost:6391"], f"argument --redis-url: 'localhost:6391' has no scheme: write redis://localhost:6391 ({FORMS})"),
    (["--redis-url", "http://:hunter2@localhost:6391/0"], "argument --redis-url: http:// is not a Redis URL's scheme: write redis://***@localhost:6391/0"),
])
def test_a_refused_flag_is_one_line_naming_the_flag_and_what_it_takes(capsys, argv: list[str], said: str) -> None:
    """argparse's own line, naming the flag and the kind of value (not the type function's
    name, "_port"), without the 17 lines of usage that buried it."""
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"tornado-app: error: {said}\n"


@pytest.mark.parametrize("how", ["flag", "environment"])
@pytest.mark.process
def test_a_malformed_redis_url_is_one_line_and_status_2_however_it_is_given(how: str) -> None:
    url = "redis://:hunter2@localhost:6379/zero"
    secret = {"TORNADO_APP_COOKIE_SECRET": "s" * 32}
    result = run_server("--redis-url", url, env=secret) if how == "flag" else run_server(env={**secret, "TORNADO_APP_REDIS_URL": url})
    refused_in_one_line(result, "tornado-app: error: argument --redis-url: redis://***@localhost:6379/zero: "
                                "the path is the database's number, e.g. /0 (got '/zero')", "hunter2")


def with_password(url: str, password: str | None, user: str = "", path: str = "/0") -> str:
    """The test Redis's URL with these credentials and this path instead of its own."""
    parts = urllib.parse.urlsplit(url)
    userinfo = f"{user}:{password}@" if password is not None else ""
    return f"redis://{userinfo}{parts.hostname}:{parts.port}{path}"


@pytest.mark.parametrize("user, password, path, said", [
    ("", None, "/0", "needs a password: put it in the URL, e.g. redis://:PASSWORD@HOST:PORT/DB"),
    ("", "hunter2", "/0", "refused the password"),
    ("ada", "hunter2", "/0", "refused the password of user 'ada' (or that user is disabled)"),
    ("", "RIGHT", "/99", "has no database 99: a Redis has databases 0 to 15 unless its redis.conf's `databases` says more"),
])
@pytest.mark.process
def test_what_redis_answers_at_start_is_said_as_what_happened(redis_url: str, user: str, password: str | None, path: str, said: str) -> None:
    """Against a real redis-server with a password (conftest's): it answered, so "does not
    answer" would be untrue; one line, status 2, no password, whichever one was given."""
    right = urllib.parse.urlsplit(redis_url).password
    assert right
    url = with_password(redis_url, right if password == "RIGHT" else password, user, path)
    result = run_server(env={"TORNADO_APP_REDIS_URL": url, "TORNADO_APP_COOKIE_SECRET": "s" * 32})
    shown = url.replace(f":{right}@", ":***@").replace(":hunter2@", ":***@").replace("//:***@", "//***@")
    refused_in_one_line(result, f"tornado-app: error: Redis at {shown} {said}", right, "hunter2")


class OwnRedis(Service):
    """A redis-server with this configuration (TLS, a Unix socket) for one test."""

    def __init__(self, workdir: Path, config: str) -> None:
        self.config_path = workdir / "redis.conf"
        descriptor = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as written:
            written.write(f'bind 127.0.0.1\nprotected-mode yes\ndir "{workdir}"\nsave ""\nappendonly no\n'
                          f'logfile "{workdir / "redis.log"}"\n{config}')
        self.start()

    def start(self) -> None:
        command = [find_program("redis-server", sbin=True), str(self.config_path)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, umask=0o077)


@pytest.fixture
def tls_redis(tmp_path: Path, self_signed_certificate: tuple[Path, Path]) -> Any:
    """A redis-server with a password on a plain port and a TLS port (its certificate
    self-signed): (plain port, TLS port, password, the certificate)."""
    cert, key = self_signed_certificate
    plain, tls, password = free_port(), free_port(), secrets.token_urlsafe(16)
    try:
        redis = OwnRedis(tmp_path, f'port {plain}\ntls-port {tls}\ntls-cert-file "{cert}"\ntls-key-file "{key}"\n'
                                   f'tls-ca-cert-file "{cert}"\ntls-auth-clients no\nrequirepass "{password}"\n')
    except ServiceMissing as missing:
        e2e_unavailable(str(missing))
    try:
        wait_for_port(plain, redis.process)
        wait_for_port(tls, redis.process)
    except RuntimeError as error:
        redis.stop()
        e2e_unavailable(f"redis-server cannot serve TLS here ({error}): see {tmp_path / 'redis.log'}")
    yield plain, tls, password, cert
    redis.stop()


@pytest.mark.parametrize("scheme, port, said", [
    ("redis", "tls", "closed the connection without an answer (a TLS port? then rediss://)"),
    ("rediss", "plain", "does not answer the TLS handshake within 2 s (a plain, non-TLS port? then redis://)"),
    ("rediss", "tls", "offers a TLS certificate this process does not trust (self-signed certificate): "
                      "name its CA with ?ssl_ca_certs=/PATH/TO/ca.pem"),
])
@pytest.mark.process
def test_a_tls_mismatch_is_said_with_what_to_write(tls_redis: Any, scheme: str, port: str, said: str) -> None:
    plain, tls, password, _cert = tls_redis
    url = f"{scheme}://:{password}@127.0.0.1:{tls if port == 'tls' else plain}/0"
    result = run_server(env={"TORNADO_APP_REDIS_URL": url, "TORNADO_APP_COOKIE_SECRET": "s" * 32})
    refused_in_one_line(result, f"tornado-app: error: Redis at {url.replace(password, '***').replace('//:***', '//***')} {said}", password)


def test_with_the_tls_certificates_ca_named_rediss_serves(server_process, tls_redis: Any) -> None:
    """What the words advise works: the CA named in the URL, the server starts and logs in."""
    _plain, tls, password, cert = tls_redis
    server = server_process("--port", "0", env={"TORNADO_APP_REDIS_URL": f"rediss://:{password}@127.0.0.1:{tls}/0?ssl_ca_certs={cert}",
                                                "TORNADO_APP_COOKIE_SECRET": "s" * 32})
    assert asyncio.run(logs_in(server.url)) == "ada"


async def logs_in(url: str) -> str:
    """Log in as ada through the form; the name /api/session then answers."""
    async with http_session() as http:
        cookie = await log_in(http, url, "ada")
        async with http.get(url + "api/session", headers={"Cookie": cookie}) as response:
            return (await response.json())["username"]


@pytest.fixture
def unix_redis() -> Any:
    """A redis-server with a password on a Unix socket only: (the socket's path, the password)."""
    workdir = Path(tempfile.mkdtemp(prefix="redis-"))  # short: a socket's path has at most 107 bytes
    password = secrets.token_urlsafe(16)
    sock = workdir / "redis.sock"
    try:
        redis = OwnRedis(workdir, f'port 0\nunixsocket "{sock}"\nunixsocketperm 700\nrequirepass "{password}"\n')
    except ServiceMissing as missing:
        e2e_unavailable(str(missing))
    try:
        asyncio.run(eventually(sock.exists, what="the Redis socket file"))
        yield sock, password
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_redis_on_a_unix_socket_serves_logins(server_process, unix_redis: Any) -> None:
    """unix:// reaches every client of the URL: the rate limits too (`limits` read a bare
    unix:// as Valkey's, and the server stopped at start with its traceback)."""
    sock, password = unix_redis
    server = server_process("--port", "0", env={"TORNADO_APP_REDIS_URL": f"unix://:{password}@{sock}?db=1", "TORNADO_APP_COOKIE_SECRET": "s" * 32})
    assert asyncio.run(logs_in(server.url)) == "ada"
    status, _printed, log = server.stop()
    assert status == 0 and "Traceback" not in log


@pytest.mark.process
def test_a_missing_socket_file_is_said_so(tmp_path: Path) -> None:
    result = run_server(env={"TORNADO_APP_REDIS_URL": f"unix://{tmp_path}/redis.sock", "TORNADO_APP_COOKIE_SECRET": "s" * 32})
    refused_in_one_line(result, f"tornado-app: error: Redis at unix://{tmp_path}/redis.sock does not answer: no such socket file")


# --- The cookie secret's length. -----------------------------------------------------------

SHORT_SECRET = "a-short-secret-1"  # 16 characters


@pytest.mark.parametrize("how", ["flag", "environment"])
@pytest.mark.process
def test_a_short_cookie_secret_is_refused_with_redis(how: str) -> None:
    """Every process of the site trusts it, and one cookie is enough to try guesses offline."""
    url = {"TORNADO_APP_REDIS_URL": "redis://127.0.0.1:1/0"}  # refused before Redis is asked
    if how == "flag":
        result = run_server("--cookie-secret", SHORT_SECRET, env=url)
    else:
        result = run_server(env={**url, "TORNADO_APP_COOKIE_SECRET": SHORT_SECRET})
    refused_in_one_line(result, "tornado-app: error: the cookie secret is 16 characters: with --redis-url it is the whole site's "
                                "and needs 32 or more (one cookie it signed lets anyone try guesses at it offline, and whoever "
                                f"finds it signs cookies as this site); make one: {MAKE_A_SECRET}", SHORT_SECRET)


@pytest.mark.parametrize("length, warned", [(31, True), (32, False)])
def test_a_short_cookie_secret_alone_is_warned_about_once(server_process, length: int, warned: bool) -> None:
    """In memory a restart ends every session anyway: the server serves, and says why the
    secret should be longer and how to make one, in one WARNING."""
    secret = "s" * length
    server = server_process("--port", "0", "--cookie-secret", secret)
    status, _printed, log = server.stop()
    assert status == 0
    warnings = [line for line in log.splitlines() if " WARNING " in line]
    expected = (f"WARNING tornado_app: the cookie secret is 31 characters, under 32: one cookie it signed lets anyone try "
                f"guesses at it offline, and whoever finds it signs cookies as this site; make one: {MAKE_A_SECRET}")
    assert [line.partition(" ")[2].partition(" ")[2] for line in warnings] == ([expected] if warned else [])
    assert secret not in log


def test_a_short_old_cookie_secret_is_warned_about_even_with_redis(server_process, redis_url: str) -> None:
    """An old secret only verifies: refusing it would log out at once everyone it signed for,
    which a rotation away from it is for. It is warned about until it is removed."""
    env = {"TORNADO_APP_REDIS_URL": redis_url, "TORNADO_APP_COOKIE_SECRET": "n" * 40,
           "TORNADO_APP_OLD_COOKIE_SECRETS": f"{SHORT_SECRET}, {'o' * 40}"}
    server = server_process("--port", "0", env=env)
    status, _printed, log = server.stop()
    assert status == 0
    warnings = [line.partition(" ")[2].partition(" ")[2] for line in log.splitlines() if " WARNING " in line]
    assert warnings == ["WARNING tornado_app: old cookie secret 1 of 2 is 16 characters, under 32: while it is listed, whoever "
                        "guesses it (trying guesses offline against one cookie it signed) signs cookies as this site; "
                        "remove it once the people it signed for have been back"]
    assert SHORT_SECRET not in log


def test_an_ordinary_session_logs_each_line_once_and_nothing_above_info(server_process) -> None:
    """A logged-out page's refused probe, a login, a socket that long-polls then upgrades, a
    chat, another left long-polling, and a stop: only INFO lines, none twice, and no "refused"
    line for what the stop itself cut short. (An ordinary first login used to log engineio's
    "'Session is disconnected'" ERROR twice, and every open long poll a WARNING at the stop.)"""
    server = server_process("--port", "0")
    base = server.url.rstrip("/")

    async def session() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            # The logged-out page's probe, as probe.js does it: one WebSocket, refused.
            with pytest.raises(Refused, match="not authenticated"):
                await WireSocket.connect(http, base, None, origin=base)
            cookie = await log_in(http, base, "ada")
        talker, poller = SocketClient(cookie), SocketClient(cookie)
        await talker.sio.connect(base, headers={"Origin": base}, transports=["polling", "websocket"], wait_timeout=10)
        await talker.sio.emit("chat", {"text": "hello"})
        await talker.next("chat")
        await poller.sio.connect(base, headers={"Origin": base}, transports=["polling"], wait_timeout=10)
        await asyncio.sleep(0.5)  # its long poll is open when the server stops

    asyncio.run(session())
    status, _, log = server.stop()
    assert status == 0
    lines = [line for line in log.splitlines() if line.strip()]
    assert all(" INFO " in line for line in lines), [line for line in lines if " INFO " not in line]
    events = [line.split(" ", 2)[2] for line in lines]  # without the timestamp
    assert events.count("INFO tornado_app.sockets: socket of 'ada' from 127.0.0.1 closed: server stopping") == 2  # two sockets
    others = [event for event in events if "closed: server stopping" not in event]
    assert len(set(others)) == len(others), "a line was logged twice"
    assert not [line for line in lines if "refused GET" in line or "refused POST" in line]


def test_without_the_fast_path_the_server_says_so_and_chats_all_the_same(server_process) -> None:
    server = server_process("--port", "0", "--no-fast-path")
    base = server.url.rstrip("/")

    async def chat() -> None:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            cookie = await log_in(http, base, "ada")
            ada, again = [await WireSocket.connect(http, base, cookie, origin=base) for _ in range(2)]
            await ada.emit("chat", {"text": "hello"})
            assert (await again.next("chat"))["text"] == "hello"
            assert (await ada.call("whoami"))["username"] == "ada"

    asyncio.run(chat())
    status, _, log = server.stop()
    assert status == 0
    assert "fast path off: every packet goes through engineio's own queue" in log


def test_the_admission_flags_have_sane_defaults_and_refuse_bad_values(capsys) -> None:
    """Issue 14: per-address caps and the first-poll timeout are flags with defaults that a
    NAT'd office fits under; zero, negative or non-numbers are a usage error, not a crash."""
    defaults = build_parser().parse_args([])
    assert (defaults.max_connections_per_ip, defaults.max_sockets_per_ip, defaults.first_poll_timeout) == (200, 200, 5.0)
    for argv in (["--max-connections-per-ip", "0"], ["--max-sockets-per-ip", "-1"], ["--first-poll-timeout", "0"],
                 ["--max-connections-per-ip", "many"]):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args(argv)
        assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


@pytest.mark.process
def test_a_low_hard_open_files_limit_is_a_warning_at_start() -> None:
    """The server raises its soft open-files limit to the hard one; when even that is low
    for the per-address cap, it says so once at start (and still serves)."""
    code = ("import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
            "sys.argv = ['tornado_app', '--port', '0']; runpy.run_module('tornado_app', run_name='__main__', alter_sys=True)")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and "Serving on" in process.stdout.readline()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert err.count("the open-files limit is 256 (hard limit)") == 1


# ---- `localhost` is both loopbacks: hold both, or stop answering to it (issue 21, item 11) ----


def test_the_server_holds_both_loopbacks_so_no_other_user_can_take_localhost(server_process) -> None:
    """A browser tries http://localhost:PORT on ::1 first: with only 127.0.0.1 held, another
    local user bound [::1]:PORT and got the person's requests, cookies included."""
    reason = other_user.unavailable()
    if reason:
        e2e_unavailable(reason)
    server = server_process("--port", "0")
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    assert other_user.as_another_user(port, "bind-ipv6") == {"errno": errno.EADDRINUSE}
    for url in (f"http://[::1]:{port}/", f"http://127.0.0.1:{port}/"):
        for host in (f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
            with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host})) as response:
                assert response.status == 200, (url, host)


@pytest.mark.parametrize("taken", ["::1", "127.0.0.1"])
def test_with_one_loopback_taken_the_server_stops_answering_to_localhost(server_process, taken: str) -> None:
    """Another program on the other loopback of our port: localhost may reach it, so the
    server answers only to the name of the address it holds, and says why in the log."""
    held = "127.0.0.1" if taken == "::1" else "::1"
    port = free_port()
    with socket.socket(socket.AF_INET6 if taken == "::1" else socket.AF_INET) as squatter:
        squatter.bind((taken, port))
        squatter.listen()
        server = server_process("--address", held, "--port", str(port))
        assert server.url, server.log()
        url = f"http://{'[::1]' if held == '::1' else held}:{port}/"
        own = f"{'[::1]' if held == '::1' else held}:{port}"
        other = f"{'[::1]' if taken == '::1' else taken}:{port}"
        for host, status in [(own, 200), (f"localhost:{port}", 421), (other, 421)]:
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host})) as response:
                    assert (host, response.status) == (host, status)
            except urllib.error.HTTPError as error:
                assert (host, error.code) == (host, status)
        _, _, log = server.stop()
    assert f"port {port} on {taken} is taken by another program: not answering to localhost" in log


def test_port_0_picks_a_port_free_on_both_loopbacks(monkeypatch) -> None:
    """When the other loopback of the port picked is taken, another port is picked."""
    from tornado_app import server

    real = server.bind_sockets
    refused: list[int] = []

    def ipv6_taken_once(port: int, address: str, **options: Any) -> list[socket.socket]:
        if address == "::1" and not refused:
            refused.append(port)
            raise OSError(errno.EADDRINUSE, "Address already in use")
        return real(port, address, **options)

    monkeypatch.setattr(server, "bind_sockets", ipv6_taken_once)
    bound = server.bind("127.0.0.1", 0)
    try:
        assert refused and bound.port != refused[0]
        assert sorted(sock.getsockname()[0] for sock in bound.sockets) == ["127.0.0.1", "::1"]
        assert {sock.getsockname()[1] for sock in bound.sockets} == {bound.port}
        assert bound.loopback_names == ("127.0.0.1", "localhost", "[::1]")
    finally:
        bound.close()
