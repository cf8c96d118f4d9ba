#!/usr/bin/env python3
"""Double-click launcher: the demo in a native window, served from a free local port.

It binds 127.0.0.1 (and ::1) on the main thread (so the port is known and taken), serves the
app from a background thread (with a fresh cookie secret, or with --redis-url the site's), and
opens a pywebview window on it. Closing the window stops the server. Where no window can be
opened, it says why in one line and keeps serving, printing the private URL. The web app knows
nothing of the window.

Every other program on the computer shares 127.0.0.1 with the window, so the server answers
only to requests that carry this launch's secret (tornado_app/launch_token.py): the window
opens `/?launch=SECRET` and keeps the cookie it is given for it. The secret never appears on a
command line (`ps` shows every user's): the window gets it in-process, and a web browser
(--browser) gets the name of a private file that forwards to it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # runnable from any working directory, installed or not

from tornado_app import loop
from tornado_app.admission import raise_open_files_limit
from tornado_app.app import TornadoApp, make_app
from tornado_app.backend import Backend, RedisNotInstalled
from tornado_app.cli import (
    COOKIE_SECRET_ENV,
    OLD_COOKIE_SECRETS_ENV,
    Misconfigured,
    OneLineParser,
    add_redis_url,
    check_secret_lengths,
    configure_logging,
    tcp_port,
)
from tornado_app.cookie_secrets import CookieSecrets, SecretsCollide, split_secrets
from tornado_app.errors import BackendUnreachable
from tornado_app.launch_token import LaunchToken
from tornado_app.logs import FORMATS
from tornado_app.origins import HostPolicy
from tornado_app.redis.urls import BadRedisURL
from tornado_app.server import BoundSockets, CannotBind, bind, serve
from tornado_app.settings import PRODUCTION

log = logging.getLogger("launcher")

WINDOW_TITLE = "Session Sockets"
WINDOW_SIZE = (1120, 780)
WINDOW_MIN_SIZE = (720, 540)
ICON = ROOT / "web" / "static" / "icon.png"
STOP_TIMEOUT_SECONDS = 1.5
PRIVATE_URL_NOTE = ("Keep that address private: its launch= part lets whoever has it use the app as you "
                    "until the launcher stops; without it this server answers 403.")
INSTALL_HINT = "install the desktop extra: pip install -e '.[desktop]' (on Debian also: make system-deps)"


class ServerThread:
    """The Tornado server on its own event loop in a background thread."""

    def __init__(self, app: TornadoApp, bound: BoundSockets) -> None:
        self._app = app
        self._bound = bound
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.failure: BaseException | None = None  # why it could not start (Redis did not answer)
        self._thread = threading.Thread(target=self._run, name="tornado-server", daemon=True)

    def start(self) -> None:
        """Start serving; raises what stopped it from starting (BackendUnreachable)."""
        self._thread.start()
        self._ready.wait()
        if self.failure is not None:
            raise self.failure

    def _run(self) -> None:
        try:
            loop.run(self._serve())
        except BackendUnreachable as error:
            self.failure = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await serve(self._app, self._bound, self._stop, on_ready=self._ready.set)

    def stop(self) -> bool:
        """Close every socket and connection, free the port; True if it stopped in time."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_TIMEOUT_SECONDS)
        return not self._thread.is_alive()


def x_display_reachable(display: str) -> bool:
    """Whether an X server answers on DISPLAY (Qt aborts the process when it does not)."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    try:
        if host in ("", "unix"):
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(1)
                probe.connect(f"/tmp/.X11-unix/X{number}")
        else:
            socket.create_connection((host, 6000 + int(number)), timeout=1).close()
    except OSError:
        return False
    return True


def window_unavailable_reason() -> str | None:
    """Why no native window can be opened here, or None when one can."""
    if sys.platform.startswith("linux"):
        display, wayland = os.environ.get("DISPLAY"), os.environ.get("WAYLAND_DISPLAY")
        if not display and not wayland:
            return "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
        if display and not wayland and not x_display_reachable(display):
            return f"the X display {display} does not answer"
    try:
        import webview  # noqa: F401
    except ImportError:
        return f"pywebview is not installed; {INSTALL_HINT}"
    if sys.platform.startswith("linux"):
        try:
            from PyQt6 import QtWebEngineWidgets  # noqa: F401
        except ImportError as error:
            return f"the Qt backend cannot load ({error}); {INSTALL_HINT}"
    return None


def open_window(url: str) -> None:
    """Show the app in a native window; returns when the person closes it."""
    import webview

    if sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0:
        # QtWebEngine refuses to start as root with its sandbox on.
        os.environ["QTWEBENGINE_DISABLE_SANDBOX"] = "1"
        log.info("running as root: QtWebEngine's sandbox is turned off (QTWEBENGINE_DISABLE_SANDBOX=1)")
    if sys.platform.startswith("linux"):
        quiet_qt()
    window = webview.create_window(
        WINDOW_TITLE, url, width=WINDOW_SIZE[0], height=WINDOW_SIZE[1], min_size=WINDOW_MIN_SIZE,
        # Selectable text, as in a browser; with text_select=False pywebview injects an inline
        # <style> to forbid it, which the page's Content-Security-Policy rightly refuses.
        text_select=True,
    )
    # pywebview handles Ctrl-C itself; make SIGTERM close the window the same way.
    assert window is not None  # None only when an `initialized` handler cancels it: none does
    signal.signal(signal.SIGTERM, lambda *_: window.destroy())
    gui: Literal["qt"] | None = "qt" if sys.platform.startswith("linux") else None
    webview.start(gui=gui, icon=str(ICON), private_mode=True)


def quiet_qt() -> None:
    """Keep Qt's and Chromium's diagnostics out of the person's terminal.

    QtWebEngine reports at start what it probes and does without (no Vulkan library, a GPU
    vendor it cannot name, the sandbox turned off as root: we say that once ourselves),
    Chromium logs at ERROR that it cannot reach the system D-Bus, and at exit Qt warns that
    pywebview releases the web profile before the page. None is a problem for this window;
    they go to this process's log at DEBUG (`--log-level debug` shows them), and a critical
    Qt message stays an ERROR.
    """
    from PyQt6 import QtCore

    qt_log = logging.getLogger("launcher.qt")

    def handle(kind: QtCore.QtMsgType, context: QtCore.QMessageLogContext, message: str | None) -> None:
        serious = kind in (QtCore.QtMsgType.QtCriticalMsg, QtCore.QtMsgType.QtFatalMsg)
        qt_log.log(logging.ERROR if serious else logging.DEBUG, "%s", message)

    QtCore.qInstallMessageHandler(handle)
    # Chromium's own logging (the D-Bus error among it): fatal errors only.
    flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
    if "--log-level" not in flags:
        os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = (flags + " --log-level=3").strip()


def open_in_browser(url: str, private_dir: Path) -> None:
    """Open `url` in the default web browser without putting it on a command line: the browser
    is given a file, readable by this user only, that forwards to it."""
    forward = private_dir / "open-session-sockets.html"
    fd = os.open(forward, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as page:
        page.write(f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url={url}">'
                   f'<title>{WINDOW_TITLE}</title><a href="{url}">{WINDOW_TITLE}</a>\n')
    webbrowser.open(forward.as_uri())


def serve_until_interrupted() -> None:
    """Block until Ctrl-C or SIGTERM (both raise KeyboardInterrupt, see main)."""
    while True:
        time.sleep(1)


class MissingSecret(Exception):
    """Redis mode without the site's cookie secret."""


def choose_backend(redis_url: str | None) -> tuple[Backend, CookieSecrets]:
    """This process's memory and a fresh secret per launch (sessions end with the window
    anyway), or the site's Redis and its cookie secrets, old ones included (every process
    verifies the others' cookies, and those signed before the site's last rotation). Either
    with the production settings, as the plain server's defaults."""
    if redis_url is None:
        return Backend.in_memory(PRODUCTION), CookieSecrets(secrets.token_urlsafe(32))
    secret = os.environ.get(COOKIE_SECRET_ENV)
    if not secret:
        raise MissingSecret(f"--redis-url needs the site's cookie secret in ${COOKIE_SECRET_ENV}")
    older = split_secrets(os.environ.get(OLD_COOKIE_SECRETS_ENV))
    check_secret_lengths(secret, older, shared=True)  # the site's: a short one is refused (Misconfigured)
    return Backend.redis(redis_url, PRODUCTION), CookieSecrets(secret, older)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="launcher.py",
        description="Open the Session Sockets demo in a native window, served from this computer only.",
    )
    parser.add_argument("--port", type=tcp_port, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--no-window", action="store_true", help="do not open a window; just serve and print the private URL "
                        "(with its ?launch= secret: only a browser that opened it is served)")
    parser.add_argument("--browser", action="store_true", help="open the private URL in the default web browser instead of a window "
                        "(through a file only you can read, so the secret is on no command line)")
    add_redis_url(parser, f"Needs the site's cookie secret in ${COOKIE_SECRET_ENV} (and its old ones, if any, in ${OLD_COOKIE_SECRETS_ENV})")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="how much to log (default: %(default)s)")
    parser.add_argument("--log-format", default="text", choices=FORMATS, help="text lines, or one JSON object per line (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM stops us the way Ctrl-C does, from the very start: no window of time in which
    # it would kill the process with the server half-open.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # And Ctrl-C (SIGINT) always: a shell starts a background job with SIGINT ignored, and
    # Python then leaves it ignored, so `kill -INT` would not stop a launcher started by a script.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    configure_logging(args.log_level, args.log_format)
    raise_open_files_limit()  # a desktop session often starts programs at 1024 open files
    try:
        bound = bind("127.0.0.1", args.port)
    except CannotBind as error:
        print(f"launcher: error: {error.strerror}", file=sys.stderr)
        return 2
    try:
        backend, cookie_secret = choose_backend(args.redis_url)
    except (RedisNotInstalled, MissingSecret, Misconfigured, SecretsCollide, BadRedisURL) as error:
        bound.close()
        print(f"launcher: error: {error}", file=sys.stderr)
        return 2
    # Only the loopback names on our port: a local server on a desktop is what DNS rebinding
    # targets (a web page whose name is made to resolve to 127.0.0.1). And only the window:
    # other programs on 127.0.0.1 do not have this launch's secret.
    token = LaunchToken.generate()
    app = make_app(cookie_secret, settings=PRODUCTION, backend=backend,
                   allowed_hosts=HostPolicy.local(bound.port, names=bound.loopback_names), launch_token=token)
    server = ServerThread(app, bound)
    try:
        server.start()
    except BackendUnreachable as error:
        print(f"launcher: error: {error}", file=sys.stderr)
        return 2

    url = token.url(bound.url)
    reason = None if args.no_window or args.browser else window_unavailable_reason()
    private_dir = tempfile.TemporaryDirectory(prefix="session-sockets-") if args.browser else None  # 0700
    try:
        if args.no_window or args.browser or reason:
            if reason:
                print(f"No window: {reason}. Serving in the background instead.", flush=True)
            print(f"Open {url} in a browser (Ctrl-C to stop).", flush=True)
            print(PRIVATE_URL_NOTE, flush=True)
            if private_dir is not None:
                open_in_browser(url, Path(private_dir.name))
            serve_until_interrupted()
        else:
            print(f"Serving on {bound.url} in a window.", flush=True)
            open_window(url)
    except KeyboardInterrupt:
        pass
    finally:
        stopped = server.stop()
        if private_dir is not None:
            private_dir.cleanup()
    if not stopped:
        log.warning("the server did not stop within %s s", STOP_TIMEOUT_SECONDS)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
