"""`python -m tornado_app` as a person runs it: a real process, its output, its exit."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import socketio

from tornado_app.cli import build_parser

from .conftest import SocketClient, free_port

ROOT = Path(__file__).resolve().parent.parent


def test_help_explains_every_flag() -> None:
    text = build_parser().format_help()
    for flag in ["--address", "--port", "--cookie-secret", "--session-ttl", "--max-sessions", "--allowed-origin", "--log-level"]:
        assert flag in text
    assert "TORNADO_APP_COOKIE_SECRET" in text


def test_bad_flag_values_are_refused_with_status_2(capsys) -> None:
    for argv in (["--port", "70000"], ["--session-ttl", "0"], ["--allowed-origin", "not an origin"], ["--max-sessions", "x"]):
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
    status, out, err = server.stop(signum)
    assert status == 0
    assert "Traceback" not in err
    assert "random one" in err  # says that no secret was given, so a restart logs everyone out
    assert "stopped" in err
    with socket.socket() as probe:  # the port is free again, for a server (as Tornado binds)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()


def test_a_port_in_use_is_one_line_and_status_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "tornado_app", "--port", str(port)], cwd=ROOT, capture_output=True, text=True, timeout=20)
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
        token = re.search(r'name="_xsrf" value="([^"]+)"', form).group(1)
        browser.open(f"{base}{path}", data=urllib.parse.urlencode({"_xsrf": token, **fields}).encode())

    submit("/login", {"username": "ada"})
    submit("/logout", {})

    async def anonymous_socket() -> None:
        for headers, transport in [({}, "websocket"), ({"Origin": "http://evil.example"}, "polling")]:
            client = SocketClient()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await client.sio.connect(base, headers=headers, transports=[transport], wait_timeout=3)
            await client.close()

    asyncio.run(anonymous_socket())
    status, _, err = server.stop()
    assert status == 0
    assert "login: 'ada' from 127.0.0.1" in err
    assert "logout: 'ada' from 127.0.0.1" in err
    assert "refused socket from 127.0.0.1: not authenticated" in err
    assert "refused socket from 127.0.0.1: origin 'http://evil.example' not allowed" in err
    assert "Traceback" not in err
