"""launcher.py as a person uses it: a real process, with no display (it must fall back and
keep serving) and in a real window under Xvfb (log in by typing, screenshot, close)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import launcher
from tests.support import other_user
from tests.support.constants import OUTPUT_DIR, ROOT
from tests.support.e2e import e2e_unavailable
from tests.support.matching import found
from tests.support.processes import ChildProcess
from tornado_app.cli import COOKIE_SECRET_ENV, OLD_COOKIE_SECRETS_ENV
from tornado_app.cookie_secrets import MAKE_A_SECRET
from tornado_app.launch_token import LAUNCH_COOKIE
from tornado_app.redis.urls import FORMS

# This module's fixtures that start processes: a test using one is marked `process`
# (tests/support/process_marker.py).
PROCESS_FIXTURES = {"start_launcher"}

LAUNCHER = ROOT / "launcher.py"
SHOTS = OUTPUT_DIR / "window"
EXIT_DEADLINE_SECONDS = 5.0  # "instant" for a person; a busy shared machine adds seconds
WINDOW_TOOLS = ("Xvfb", "xdotool", "import", "compare", "convert")
PAINTED_COLOURS = 200  # more distinct colours than this in a screenshot: a page is painted


class LauncherProcess(ChildProcess):
    """launcher.py in a child process, started from another working directory."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        super().__init__([sys.executable, str(LAUNCHER), *args], cwd=tempfile.gettempdir(), env=env)
        assert self.process.stdout is not None  # a pipe
        self.lines = [self.process.stdout.readline()]
        if self.lines[0].startswith("No window:"):
            self.lines.append(self.process.stdout.readline())
        if self.lines[-1].startswith("Open "):
            self.lines.append(self.process.stdout.readline())  # keep that address private
        match = re.search(r"(http://127\.0\.0\.1:(\d+)/)(\?launch=([\w-]+))?", "".join(self.lines))
        assert match, f"the launcher did not print its URL: {self.lines!r}\n{self.log()}"
        self.url, self.port = match.group(1), int(match.group(2))
        self.private_url, self.token = match.group(0), match.group(4)  # the token: only where no window opens

    def cookie(self) -> str:
        """The Cookie header a browser sends once it has opened the private URL."""
        return f"{LAUNCH_COOKIE}={self.token}"

    def open(self, path: str = "", headers: dict[str, str] | None = None) -> urllib.request.Request:
        """A request for `path` that carries the launch cookie, as the person's browser's do."""
        return urllib.request.Request(self.url + path, headers={"Cookie": self.cookie(), **(headers or {})})

    def wait_for_log(self, pattern: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match.group(0)
            assert self.process.poll() is None, f"the launcher exited:\n{self.log()}"
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in the launcher's log:\n{self.log()}")

    def wait_for_exit(self, timeout: float) -> tuple[int, float]:
        """(exit status, seconds it took)."""
        started = time.monotonic()
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the launcher did not exit within {timeout} s; its log:\n{self.log()}") from None
        return status, time.monotonic() - started


def environment_without_display() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name not in ("DISPLAY", "WAYLAND_DISPLAY")}


def assert_port_free(port: int) -> None:
    with socket.socket() as probe:  # as a server binds it (Tornado sets SO_REUSEADDR too)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


@pytest.fixture
def start_launcher() -> Iterator:
    started: list[LauncherProcess] = []

    def start(*args: str, env: dict[str, str]) -> LauncherProcess:
        process = LauncherProcess(*args, env=env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


# ---- no display: a clear line, and the server keeps serving --------------------------------


def test_without_a_display_the_reason_is_one_line(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert launcher.window_unavailable_reason() == "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"


def test_a_display_that_does_not_answer_is_detected_before_qt_aborts(monkeypatch) -> None:
    monkeypatch.setenv("DISPLAY", ":987")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert launcher.window_unavailable_reason() == "the X display :987 does not answer"
    assert launcher.x_display_reachable("garbage") is False


def test_help_explains_every_flag() -> None:
    text = launcher.build_parser().format_help()
    for flag in ("--port", "--no-window", "--browser", "--redis-url", "--log-level"):
        assert flag in text


def test_without_a_display_it_says_why_serves_and_stops_on_ctrl_c(start_launcher) -> None:
    app = start_launcher(env=environment_without_display())
    assert app.lines[0] == "No window: no display (neither DISPLAY nor WAYLAND_DISPLAY is set). Serving in the background instead.\n"
    assert app.lines[1] == f"Open {app.private_url} in a browser (Ctrl-C to stop).\n"
    assert app.lines[2] == launcher.PRIVATE_URL_NOTE + "\n"
    with urllib.request.urlopen(app.open()) as response:
        assert response.status == 200 and b"Session Sockets" in response.read()
    app.process.send_signal(signal.SIGINT)
    status, seconds = app.wait_for_exit(5)
    assert status == 0 and seconds < EXIT_DEADLINE_SECONDS
    assert "Traceback" not in app.log()
    assert_port_free(app.port)


def test_no_window_flag_serves_on_the_port_asked_and_stops_on_sigterm(start_launcher) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = start_launcher("--no-window", "--port", str(port), env=dict(os.environ))
    assert app.lines[0] == f"Open http://127.0.0.1:{port}/?launch={app.token} in a browser (Ctrl-C to stop).\n"
    # A local server on a desktop is what DNS rebinding aims at: another site's name that
    # resolves to 127.0.0.1 gets nothing, the loopback names on our port get the page.
    for host, status in [(f"evil.example:{port}", 421), (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 200)]:
        request = app.open(headers={"Host": host, "Origin": f"http://{host}"})
        try:
            with urllib.request.urlopen(request) as response:
                assert (host, response.status) == (host, status)
        except urllib.error.HTTPError as error:
            assert (host, error.code) == (host, status)
    app.process.send_signal(signal.SIGTERM)
    assert app.wait_for_exit(5)[0] == 0


@pytest.mark.process
def test_a_taken_port_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, str(LAUNCHER), "--port", str(port)], check=False, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert result.stderr.strip() == f"launcher: error: port {port} on 127.0.0.1 is already in use"


# ---- Redis mode: the launcher joins a site served by several processes ---------------------


def log_in_over_http(app: LauncherProcess, username: str) -> str:
    """Log in through the form as the person's browser does; the session's Cookie header part."""

    async def run() -> str:
        person = Person(app)
        try:
            await person.open_the_private_url()
            assert await person.log_in(username) == 303
            return "; ".join(f"{morsel.key}={morsel.coded_value}" for morsel in person.http.cookie_jar if morsel.key == "session")
        finally:
            await person.http.close()

    return asyncio.run(run())


def test_with_redis_a_session_outlives_the_launcher_that_made_it(start_launcher, redis_url: str) -> None:
    env = {**environment_without_display(), COOKIE_SECRET_ENV: "a-site-secret-" + "x" * 24}
    first = start_launcher("--no-window", "--redis-url", redis_url, env=env)
    cookie = log_in_over_http(first, "ada")
    first.process.send_signal(signal.SIGINT)
    assert first.wait_for_exit(5)[0] == 0
    second = start_launcher("--no-window", "--redis-url", redis_url, env=env)
    request = second.open("api/session", headers={"Cookie": f"{cookie}; {second.cookie()}"})
    with urllib.request.urlopen(request) as response:
        assert json.loads(response.read())["username"] == "ada"


def test_with_redis_the_launcher_verifies_the_sites_old_cookie_secrets(start_launcher, redis_url: str) -> None:
    """After the site rotated its secret, a launcher given the old one in
    $TORNADO_APP_OLD_COOKIE_SECRETS opens a session whose cookie the old one signed; one
    without it does not."""
    old, new = "the-old-site-secret-" + "x" * 24, "the-new-site-secret-" + "y" * 24
    first = start_launcher("--no-window", "--redis-url", redis_url, env={**environment_without_display(), COOKIE_SECRET_ENV: old})
    cookie = log_in_over_http(first, "ada")
    first.process.send_signal(signal.SIGINT)
    assert first.wait_for_exit(5)[0] == 0
    for olds, status in ((f"{old}", 200), ("", 401)):
        env = {**environment_without_display(), COOKIE_SECRET_ENV: new, OLD_COOKIE_SECRETS_ENV: olds}
        rotated = start_launcher("--no-window", "--redis-url", redis_url, env=env)
        request = rotated.open("api/session", headers={"Cookie": f"{cookie}; {rotated.cookie()}"})
        try:
            with urllib.request.urlopen(request) as response:
                answered = response.status
                assert json.loads(response.read())["username"] == "ada"
        except urllib.error.HTTPError as error:
            answered = error.code
        assert answered == status, rotated.log()


@pytest.mark.parametrize("secret, error", [
    (None, "launcher: error: --redis-url needs the site's cookie secret in $TORNADO_APP_COOKIE_SECRET"),
    ("s" * 32, "launcher: error: Redis at redis://127.0.0.1:1/0 does not answer"),
])
@pytest.mark.process
def test_redis_mode_that_cannot_work_is_a_one_line_error(secret: str | None, error: str) -> None:
    env = {name: value for name, value in environment_without_display().items() if name != COOKIE_SECRET_ENV}
    if secret is not None:
        env[COOKIE_SECRET_ENV] = secret
    result = subprocess.run([sys.executable, str(LAUNCHER), "--no-window", "--redis-url", "redis://127.0.0.1:1/0"],
                            check=False, capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(error), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("argv, said", [
    (["--port", "abc"], "argument --port: invalid port value: 'abc'"),
    (["--port", "65536"], "argument --port: must be between 0 and 65535"),
    (["--redis-url", "localhost:6391"], f"argument --redis-url: 'localhost:6391' has no scheme: write redis://localhost:6391 ({FORMS})"),
    (["--redis-url", "redis://:hunter2@localhost:6391/0?colour=blue"],
     "argument --redis-url: redis://***@localhost:6391/0?colour=blue: redis-py takes no option 'colour' in a Redis URL"),
])
def test_a_refused_flag_is_one_line_naming_the_flag(capsys, argv: list[str], said: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        launcher.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"launcher.py: error: {said}\n"


@pytest.mark.parametrize("case", ["short secret", "wrong password", "no database 99", "malformed"])
@pytest.mark.process
def test_joining_a_site_that_cannot_work_is_one_line_saying_what_happened(redis_url: str, case: str) -> None:
    """As the plain server says it (tests/test_cli.py): the launcher starts it its own way."""
    parts = urllib.parse.urlsplit(redis_url)
    password = parts.password
    assert password
    secret, url, said = "s" * 32, redis_url, ""
    if case == "short secret":
        secret = "a-short-secret-1"
        said = ("launcher: error: the cookie secret is 16 characters: with --redis-url it is the whole site's and needs 32 or more "
                "(one cookie it signed lets anyone try guesses at it offline, and whoever finds it signs cookies as this site); "
                f"make one: {MAKE_A_SECRET}")
    elif case == "wrong password":
        url = f"redis://:hunter2@{parts.hostname}:{parts.port}/0"
        said = f"launcher: error: Redis at redis://***@{parts.hostname}:{parts.port}/0 refused the password"
    elif case == "no database 99":
        url = f"redis://:{password}@{parts.hostname}:{parts.port}/99"
        said = (f"launcher: error: Redis at redis://***@{parts.hostname}:{parts.port}/99 has no database 99: a Redis has "
                "databases 0 to 15 unless its redis.conf's `databases` says more")
    else:
        url = f"{parts.hostname}:{parts.port}"
        said = (f"launcher.py: error: argument --redis-url: '{url}' has no scheme: write redis://{url} ({FORMS})")
    env = {**environment_without_display(), COOKIE_SECRET_ENV: secret, "TORNADO_APP_REDIS_URL": url}
    result = subprocess.run([sys.executable, str(LAUNCHER), "--no-window"], check=False, capture_output=True, text=True,
                            timeout=30, env=env)
    assert (result.returncode, result.stderr, result.stdout) == (2, said + "\n", "")
    assert password not in result.stderr and "hunter2" not in result.stderr and (secret not in result.stderr or secret == "s" * 32)


@pytest.mark.process  # `make desktop-entry` (skipped where .venv was not made by make)
def test_make_desktop_entry_writes_a_menu_entry_for_this_checkout(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / ".installed-desktop").exists():
        pytest.skip("needs the environment that `make run` or `make test` creates")
    entry = tmp_path / "session-sockets.desktop"
    subprocess.run(["make", "-s", "desktop-entry", f"DESKTOP_FILE={entry}"], cwd=ROOT, check=True, capture_output=True, timeout=120)
    fields = dict(line.split("=", 1) for line in entry.read_text().splitlines()[1:])
    assert entry.read_text().startswith("[Desktop Entry]\n")
    assert fields["Name"] == launcher.WINDOW_TITLE
    command = re.fullmatch(r'"([^"]+)" "([^"]+)"', fields["Exec"])
    assert command is not None, fields["Exec"]
    python, script = command.groups()
    assert Path(script) == LAUNCHER and os.access(python, os.X_OK)
    assert Path(fields["Icon"]) == launcher.ICON and launcher.ICON.exists()
    assert fields["StartupWMClass"] == desktop_entry_wm_class()


# ---- a real window under Xvfb ----------------------------------------------------------------


@pytest.fixture(scope="module")
def x_display() -> Iterator[str]:
    """A fresh Xvfb screen, and the tools to drive and photograph a window on it."""
    missing = [tool for tool in WINDOW_TOOLS if shutil.which(tool) is None]
    if missing:
        e2e_unavailable(f"{', '.join(missing)} not installed (make system-deps)")
    reason = qt_backend_missing()
    if reason:
        e2e_unavailable(reason)
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1366x900x24", "-nolisten", "tcp"],
        pass_fds=[write_end], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end) as announced:
        display = f":{announced.readline().strip()}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield display
    xvfb.terminate()
    xvfb.wait(5)


def qt_backend_missing() -> str | None:
    try:
        import webview  # noqa: F401 (only whether it imports)
        from PyQt6 import QtWebEngineWidgets  # noqa: F401 (only whether it imports)
    except ImportError as error:
        return f"the desktop extra is not installed ({error}): pip install -e '.[desktop]'"
    try:
        import Xlib  # noqa: F401 (only whether it imports)
    except ImportError:
        return "python-xlib is not installed (pip install -e '.[test]')"
    return None


def xdotool(display: str, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, capture_output=True, text=True, timeout=30, check=True).stdout


def find_window(display: str, app: LauncherProcess, timeout: float = 30) -> str:
    """The launcher's visible window, once it is shown; fails with the launcher's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert app.process.poll() is None, f"the launcher exited ({app.process.returncode}):\n{app.log()}"
        found = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", f"^{launcher.WINDOW_TITLE}$"],
            env={**os.environ, "DISPLAY": display}, check=False, capture_output=True, text=True, timeout=30,
        ).stdout.split()
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no window titled {launcher.WINDOW_TITLE!r} within {timeout} s:\n{app.log()}")


def screenshot(display: str, window: str, name: str) -> Path:
    path = SHOTS / name
    subprocess.run(["import", "-window", window, str(path)], env={**os.environ, "DISPLAY": display}, check=True, timeout=30)
    return path


def image_stats(path: Path) -> tuple[int, float]:
    """(number of distinct colours, mean brightness from 0 to 1)."""
    out = subprocess.run(["convert", str(path), "-format", "%k %[fx:mean]", "info:"], capture_output=True, text=True, check=True).stdout
    colours, mean = out.split()
    return int(colours), float(mean)


def changed_fraction(first: Path, second: Path) -> float:
    result = subprocess.run(["compare", "-metric", "AE", "-fuzz", "5%", str(first), str(second), "null:"], check=False, capture_output=True, text=True)
    width, height = map(int, subprocess.run(["identify", "-format", "%w %h", str(first)], capture_output=True, text=True, check=True).stdout.split())
    return float(result.stderr.split()[0]) / (width * height)


def wait_until_painted(display: str, window: str, timeout: float = 30) -> None:
    """Until the window shows a rendered page (text has hundreds of colours), not a blank one."""
    deadline = time.monotonic() + timeout
    while True:
        colours, _ = image_stats(screenshot(display, window, "0-window-painted.png"))
        if colours > PAINTED_COLOURS:
            return
        assert time.monotonic() < deadline, f"the window still looks blank after {timeout} s ({colours} colours)"
        time.sleep(0.3)


def close_like_a_person(display: str, window: str) -> None:
    """What a window manager sends when the close button is clicked: WM_DELETE_WINDOW."""
    from Xlib import X, protocol
    from Xlib import display as xdisplay

    connection = xdisplay.Display(display)
    try:
        target = connection.create_resource_object("window", int(window))
        wm_protocols = connection.intern_atom("WM_PROTOCOLS")
        message = protocol.event.ClientMessage(
            window=target, client_type=wm_protocols,
            data=(32, [connection.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]),
        )
        target.send_event(message, event_mask=X.NoEventMask)
        connection.flush()
    finally:
        connection.close()


def window_shown(display: str, window: str) -> bool:
    """Whether `window` is still shown on `display`."""
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", f"^{launcher.WINDOW_TITLE}$"],
                           env={**os.environ, "DISPLAY": display}, check=False, capture_output=True, text=True, timeout=30)
    return window in found.stdout.split()


def window_class(display: str, window: str) -> str:
    from Xlib import display as xdisplay

    connection = xdisplay.Display(display)
    try:
        wm_class = connection.create_resource_object("window", int(window)).get_wm_class()
        assert wm_class is not None, "the window has no WM_CLASS"
        return wm_class[1]
    finally:
        connection.close()


def desktop_entry_wm_class() -> str:
    """The StartupWMClass that `make desktop-entry` writes."""
    return found(r"StartupWMClass=([^']+)'", (ROOT / "Makefile").read_text()).group(1)


def commands_naming_a_launch_secret() -> list[str]:
    """The command lines of this machine's processes that carry `launch=` (a secret's URL)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if "launch=" in command and "pytest" not in command:
            found.append(command)
    return found


def window_environment(display: str) -> dict[str, str]:
    env = environment_without_display()
    env["DISPLAY"] = display
    return env


@pytest.mark.e2e
def test_log_in_inside_the_window_then_close_it(x_display: str, start_launcher) -> None:
    app = start_launcher("--log-level", "debug", env=window_environment(x_display))
    assert app.lines == [f"Serving on {app.url} in a window.\n"]
    window = find_window(x_display, app)
    assert window_class(x_display, window) == desktop_entry_wm_class(), "the menu entry would not match this window"
    # The logged-out page opens a socket probe; its refusal means the page has loaded and run.
    app.wait_for_log(r"refused sockets without a session: not authenticated, the latest from 127\.0\.0\.1")
    time.sleep(0.5)
    logged_out = screenshot(x_display, window, "1-window-logged-out.png")
    # The window had the launch secret from the start (nothing of it was refused), and the
    # secret is on no process's command line, which every user can read (ps).
    assert "without the launcher's secret" not in app.log()
    assert not commands_naming_a_launch_secret()

    xdotool(x_display, "windowfocus", "--sync", window)
    xdotool(x_display, "type", "--delay", "40", "Ada Window")  # the page focuses the username field
    xdotool(x_display, "key", "Return")
    app.wait_for_log(r"login: 'Ada Window' from 127\.0\.0\.1")
    app.wait_for_log(r"socket \S+ of 'Ada Window' connected from 127\.0\.0\.1")
    time.sleep(1.0)  # let the page paint the connected state
    logged_in = screenshot(x_display, window, "2-window-logged-in.png")

    colours, brightness = image_stats(logged_in)
    assert colours > 200, "the window looks blank"
    assert 0.5 < brightness < 0.99, "the window is all white or all black"
    assert changed_fraction(logged_out, logged_in) > 0.05, "logging in changed nothing on screen"

    close_like_a_person(x_display, window)
    try:
        status, seconds = app.wait_for_exit(EXIT_DEADLINE_SECONDS)
    except AssertionError:
        # Under load, now and then nothing follows the first WM_DELETE_WINDOW after a login
        # (3 runs in 8 with a core kept busy, once in CI; nothing logged): a person clicks
        # again. Not explained yet: issue 24's closing note. Whether the window was still
        # shown says whether the close or the exit was lost.
        shown = window_shown(x_display, window)
        close_like_a_person(x_display, window)
        try:
            status, seconds = app.wait_for_exit(EXIT_DEADLINE_SECONDS)
        except AssertionError as error:
            raise AssertionError(f"no exit after two closes (the window shown after the first: {shown})\n{error}") from None
    assert status == 0
    assert seconds < EXIT_DEADLINE_SECONDS
    assert "Traceback" not in app.log()
    assert_port_free(app.port)


@pytest.mark.e2e
def test_ctrl_c_closes_the_window_and_stops_the_server(x_display: str, start_launcher) -> None:
    app = start_launcher(env=window_environment(x_display))
    # The page's socket probe is refused at DEBUG only: at this (the default) level, the sign
    # that the page has loaded is what the window shows.
    wait_until_painted(x_display, find_window(x_display, app))
    app.process.send_signal(signal.SIGINT)
    status, seconds = app.wait_for_exit(10)
    assert status == 0
    assert seconds < EXIT_DEADLINE_SECONDS
    assert "Traceback" not in app.log()
    assert_port_free(app.port)
    assert_a_quiet_terminal(app.log())


# What `make run` printed before: QtWebEngine's Vulkan, GPU and sandbox notes, Chromium's
# D-Bus error, the page's CSP refusing pywebview's inline style, Qt's warning at Ctrl-C,
# and a 400 for each long poll cut at shutdown.
NOISE = ("vulkan", "Vulkan", "GPU", "dbus", "Sandboxing", "Refused to apply inline style", "Release of profile",
         "WebEnginePage", "refused GET /socket.io/", "WARNING", "ERROR")


def assert_a_quiet_terminal(log: str) -> None:
    """Every line is one of ours (timestamp, INFO, logger), none is noise, none twice."""
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines, "the launcher logged nothing at all"
    for line in lines:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO [\w.]+: ", line), f"not a line of ours: {line!r}"
        assert not any(word in line for word in NOISE), f"noise: {line!r}"
    assert len(set(lines)) == len(lines), "a line was logged twice"


@pytest.mark.process
def test_sigint_stops_it_even_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A shell starts a background job (`launcher.py &` in a script) with SIGINT ignored, and
    Python keeps that: `kill -INT` must still stop the launcher, and the plain server."""
    for command in ([sys.executable, "launcher.py", "--no-window"], [sys.executable, "-m", "tornado_app", "--port", "0"]):
        process = subprocess.Popen(command, cwd=ROOT, env=environment_without_display(), stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # noqa: PLW1509 (as a shell starts a job)
        try:
            assert process.stdout is not None and "http://127.0.0.1:" in process.stdout.readline()
            process.send_signal(signal.SIGINT)
            assert process.wait(5) == 0, command
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()


# ---- another local user: without this launch's secret, nothing (issue 21, items 7 and 11) ----

def as_another_user(port: int, *args: str) -> dict:
    """tests/support/local_user.py as uid `nobody`; skipped (failed under REQUIRE_E2E=1) where that cannot be."""
    reason = other_user.unavailable()
    if reason:
        e2e_unavailable(reason)
    return other_user.as_another_user(port, *args)


class Person:
    """The person at the launcher, as their browser behaves: a cookie jar, the private URL
    opened first (the window does that), then pages, the login form and sockets."""

    def __init__(self, app: LauncherProcess) -> None:
        import aiohttp

        self.app = app
        self.base = app.url.rstrip("/")
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # unsafe: an IP address

    async def open_the_private_url(self) -> None:
        async with self.http.get(self.app.private_url, allow_redirects=False) as response:
            # The secret is exchanged for a cookie and taken out of the address.
            assert (response.status, response.headers["Location"]) == (303, "/")
        async with self.http.get(self.base + "/") as page:
            assert page.status == 200 and "Session Sockets" in await page.text()

    def cookie_header(self) -> str:
        return "; ".join(f"{morsel.key}={morsel.coded_value}" for morsel in self.http.cookie_jar)

    async def log_in(self, username: str) -> int:
        async with self.http.get(self.base + "/login") as page:
            html = await page.text()
        token = html.split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
        async with self.http.post(self.base + "/login", data={"_xsrf": token, "username": username},
                                  headers={"Origin": self.base}, allow_redirects=False) as response:
            return response.status

    async def whoami(self) -> str | None:
        async with self.http.get(self.base + "/api/session") as response:
            return (await response.json())["username"] if response.status == 200 else None


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_another_local_user_without_the_secret_gets_403_and_takes_nothing_from_the_person(start_launcher, store: str, request) -> None:
    """Another uid on the machine shares 127.0.0.1 with the window: it used up the launcher's
    per-address limits (the person's login 429, socket "slow down") and, with 10,050 logins
    from rotating 127/8 addresses, evicted the person's session. Without the secret every
    request of it is 403 now, and the person logs in, connects, chats and stays logged in."""
    from tests.support.socketio_client import SocketClient

    env = environment_without_display()
    store_args: list[str] = []
    if store == "redis":  # the launcher joining a site: rates and sessions in Redis
        env[COOKIE_SECRET_ENV] = "a-site-secret-" + "x" * 24
        store_args = ["--redis-url", request.getfixturevalue("redis_url")]
    app = start_launcher("--no-window", *store_args, env=env)

    async def scenario() -> None:
        person, other = Person(app), Person(app)
        try:
            await person.open_the_private_url()
            assert await person.log_in("ada") == 303
            listener = SocketClient(person.cookie_header())
            await listener.sio.connect(person.base, headers={"Origin": person.base}, transports=["websocket"], wait_timeout=30)
            assert (await listener.next("welcome", timeout=30))["username"] == "ada"

            seen = await asyncio.to_thread(as_another_user, app.port, "hammer", "10050")
            assert {kind: dict(statuses) for kind, statuses in seen.items()} == {
                "rotating logins": {"403": 10050}, "logins from 127.0.0.1": {"403": 40}, "polling handshakes": {"403": 150},
                "pages": {"403": 5}, "websocket upgrades": {"403": 20},
            }

            assert await person.whoami() == "ada", "the person's session was evicted"
            # A second browser at the private address (logging in again in the same one would
            # end ada's session): its login and connect from 127.0.0.1 are within the limits.
            await other.open_the_private_url()
            assert await other.log_in("bob") == 303, "the logins of 127.0.0.1 were used up by another user"
            talker = SocketClient(other.cookie_header())
            await talker.sio.connect(other.base, headers={"Origin": other.base}, transports=["polling", "websocket"], wait_timeout=30)
            await talker.sio.emit("chat", {"text": "still here"})
            assert (await listener.next("chat", timeout=30))["text"] == "still here"
            await talker.close()
            await listener.close()
            assert await person.whoami() == "ada"
        finally:
            await person.http.close()
            await other.http.close()

    asyncio.run(scenario())
    log = app.log()
    assert "refused requests without the launcher's secret" in log
    assert len([line for line in log.splitlines() if "without the launcher's secret" in line]) <= 3, "one line per 10 s"
    assert "login: " in log and "squatter" not in log and "local0" not in log


def test_the_browser_is_given_a_private_file_not_the_secret_on_its_command_line(start_launcher, tmp_path: Path) -> None:
    """--browser: a command line is readable by every user (ps), so the browser gets the name
    of a file only this user can read, which forwards to the private URL."""
    seen = tmp_path / "browser-argv"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}\n')
    browser.chmod(0o755)
    app = start_launcher("--browser", env={**environment_without_display(), "BROWSER": f"{browser} %s"})
    deadline = time.monotonic() + 15
    while not seen.exists() or not seen.read_text():
        assert time.monotonic() < deadline, "the browser was not started"
        time.sleep(0.1)
    argv = seen.read_text().split()
    assert len(argv) == 1 and argv[0].startswith("file://") and "launch=" not in argv[0]
    forward = Path(urllib.parse.urlsplit(argv[0]).path)
    assert forward.stat().st_mode & 0o777 == 0o600 and forward.parent.stat().st_mode & 0o777 == 0o700
    assert f'content="0; url={app.private_url}"' in forward.read_text()
    app.process.send_signal(signal.SIGINT)
    assert app.wait_for_exit(5)[0] == 0
    assert not forward.parent.exists(), "the forwarding file outlived the launch"


def test_connections_another_local_user_keeps_open_do_not_shut_the_window_out(start_launcher) -> None:
    """The cap on connections per address counted every local user as 127.0.0.1: another user
    holding 200 idle connections made the server close each new one of the window at once.
    Now a connection counts against its address once it has shown the secret; until then it
    waits among at most 256, the oldest closed to make room. While another uid opens idle
    connections as fast as it can, holding 400, every page load of the person succeeds and
    the server holds a bounded number of descriptors."""
    app = start_launcher("--no-window", env=environment_without_display())
    descriptors = Path(f"/proc/{app.process.pid}/fd")
    idle = len(list(descriptors.iterdir()))
    attack = concurrent.futures.ThreadPoolExecutor(1).submit(as_another_user, app.port, "hold", "8", "400")
    try:
        time.sleep(1.0)  # the attacker is at full speed
        loads, most_descriptors = 0, 0
        while not attack.done():
            with urllib.request.urlopen(app.open(), timeout=10) as response:  # a new connection each time
                assert response.status == 200
            loads += 1
            most_descriptors = max(most_descriptors, len(list(descriptors.iterdir())))
            time.sleep(0.05)
    finally:
        seen = attack.result()
    assert seen["opened"] > 1000 and loads > 20, (seen, loads)
    assert most_descriptors < idle + 256 + 20, (idle, most_descriptors)
    assert "closed connections that showed no launch secret, to make room" in app.log()


def test_another_local_user_cannot_take_localhost_on_the_launchers_port(start_launcher) -> None:
    """A browser tries `localhost` on ::1 first: with only 127.0.0.1 held, another user bound
    [::1]:PORT and received the person's http://localhost:PORT requests, cookies included.
    The launcher holds both loopbacks on its port."""
    app = start_launcher("--no-window", env=environment_without_display())
    assert as_another_user(app.port, "bind-ipv6") == {"errno": errno.EADDRINUSE}
    for host in (f"localhost:{app.port}", f"[::1]:{app.port}"):
        with urllib.request.urlopen(app.open(headers={"Host": host})) as response:
            assert response.status == 200, host
    with urllib.request.urlopen(urllib.request.Request(f"http://[::1]:{app.port}/", headers={"Cookie": app.cookie()})) as response:
        assert response.status == 200 and b"Session Sockets" in response.read()


def test_without_the_secret_an_oversized_polling_post_on_the_persons_sid_ends_nothing(start_launcher) -> None:
    """The body caps answer an oversized polling POST from its headers and end the Engine.IO
    session its `sid` names; without the secret the request is refused before them."""
    import aiohttp

    from tests.support.socketio_client import SocketClient

    app = start_launcher("--no-window", env=environment_without_display())

    async def scenario() -> None:
        person = Person(app)
        try:
            await person.open_the_private_url()
            assert await person.log_in("ada") == 303
            listener = SocketClient(person.cookie_header())
            await listener.sio.connect(person.base, headers={"Origin": person.base}, transports=["polling"], wait_timeout=30)
            sid = listener.sio.eio.sid
            url = f"{person.base}/socket.io/?EIO=4&transport=polling&sid={sid}"
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as stranger, \
                    stranger.post(url, data=b"4" + b"x" * 99_999, headers={"Cookie": person.cookie_header().replace(app.token, "x")}) as post:
                assert post.status == 403
            await asyncio.sleep(1.0)
            assert listener.sio.connected, "the person's socket was ended"
            assert (await listener.sio.call("whoami", timeout=30))["username"] == "ada"
            await listener.close()
        finally:
            await person.http.close()

    asyncio.run(scenario())
