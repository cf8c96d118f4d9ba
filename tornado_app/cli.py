"""`python -m tornado_app` / `tornado-app`: the plain server, configured by flags."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import NoReturn, TypeVar
from urllib.parse import urlsplit

from . import collector, logs, loop
from .admission import raise_open_files_limit
from .app import make_app
from .backend import Backend, RedisNotInstalled
from .cookie_secrets import (
    MAKE_A_SECRET,
    MIN_SECRET_CHARS,
    CookieSecrets,
    SecretsCollide,
    split_secrets,
)
from .drain import StopSignals
from .errors import BackendUnreachable
from .history import history_frame_bytes, largest_message_bytes
from .metrics import Metrics, MetricsServer
from .origins import LOOPBACK_NAMES, HostPolicy, parse_allowed_host
from .ratelimit import parse_rate
from .redis.urls import FORMS, BadRedisURL, check_redis_url, redacted
from .server import MAX_BODY_BYTES, BoundSockets, CannotBind, bind, bind_unix, serve
from .settings import PRODUCTION, Settings

log = logging.getLogger("tornado_app")

COOKIE_SECRET_ENV = "TORNADO_APP_COOKIE_SECRET"
OLD_COOKIE_SECRETS_ENV = "TORNADO_APP_OLD_COOKIE_SECRETS"  # separated by commas or whitespace
REDIS_URL_ENV = "TORNADO_APP_REDIS_URL"
DRAIN_SECONDS_ENV = "TORNADO_APP_DRAIN_SECONDS"
EXIT_USAGE = 2

T = TypeVar("T")


def _called(name: str) -> Callable[[Callable[[str], T]], Callable[[str], T]]:
    """Name an argparse type for its message: argparse says "argument --port: invalid NAME
    value: 'abc'" when a type raises ValueError, NAME being the function's __name__ (which
    read "_port" before: the code's name, not the reader's word)."""

    def named(check: Callable[[str], T]) -> Callable[[str], T]:
        check.__name__ = name
        return check

    return named


@_called("int")
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


@_called("int")
def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


@_called("float")
def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


@_called("float")
def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


@_called("int")
def _body_budget(text: str) -> int:
    value = int(text)
    if value < MAX_BODY_BYTES // 1024:
        raise argparse.ArgumentTypeError(f"must be at least {MAX_BODY_BYTES // 1024} (one packet)")
    return value


@_called("port")
def tcp_port(text: str) -> int:
    """A --port: 0 to 65535 (0 picks a free one)."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 and 65535")
    return value


@_called("origin")
def _origin(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an origin like https://example.com:8443")
    return f"{parts.scheme}://{parts.netloc}"


def _checked_by(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type: the text itself, once `check` has parsed it; its ValueError is the
    message argparse prints."""

    def checked(text: str) -> str:
        try:
            check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    return checked


def _redis_url(text: str) -> str:
    """A --redis-url, checked as far as it can be without Redis (redis/urls.py), its scheme
    in lower case; the message is one line without the password."""
    try:
        return check_redis_url(text)
    except BadRedisURL as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    except ValueError:  # not ours: argparse would print the URL as it is, password and all
        raise argparse.ArgumentTypeError(f"{redacted(text)} is not a Redis URL: write {FORMS}") from None


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a refused flag is one line, "PROG: error: argument --port: ...", as
    every other refusal at start is: the usage argparse prints first (17 lines here) buried
    the one line that says what is wrong. --help shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parse_listen_address(text: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 address in brackets: [::1]:9100) as (host, port); ValueError says why."""
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT, e.g. 127.0.0.1:9100")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9100")
    return host, int(port)


_rate = _checked_by(parse_rate)
_host = _checked_by(parse_allowed_host)
_listen_address = _checked_by(parse_listen_address)
_process_label = _checked_by(logs.check_process_label)


def add_redis_url(parser: argparse.ArgumentParser, needs: str) -> None:
    """--redis-url, as the server and the desktop launcher both take it; `needs` ends its help
    with what else it needs there (the site's cookie secret, which each takes its own way)."""
    parser.add_argument(
        "--redis-url",
        type=_redis_url,
        default=os.environ.get(REDIS_URL_ENV) or None,
        metavar="URL",
        help=f"share sessions, chat and presence with other processes through this Redis, e.g. redis://127.0.0.1:6379/0 "
        f"(rediss:// for TLS; redis+sentinel://:PASSWORD@HOST:PORT,HOST:PORT,.../DB/SERVICE for a primary found through its Sentinels; default: ${REDIS_URL_ENV}, else none: everything in this process). {needs}",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="tornado-app",
        description="Serve the session-authenticated Socket.IO demo: log in on the page, "
        "and the socket is authenticated from the same server-side session.",
    )
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0 for every interface)")
    parser.add_argument("--port", type=tcp_port, default=8888, help="port to listen on; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--unix-socket", metavar="PATH", help="listen on this Unix socket instead of --address and --port, for a proxy on this machine (needs --behind-proxy and --allowed-host); the socket is mode 0660, so put it in a directory that only you and the proxy's user can enter")
    parser.add_argument(
        "--cookie-secret",
        default=os.environ.get(COOKIE_SECRET_ENV),
        help=f"secret that signs the session cookie (default: ${COOKIE_SECRET_ENV}, else a random one per start)",
    )
    parser.add_argument(
        "--old-cookie-secret",
        action="append",
        metavar="SECRET",
        help="a secret that verifies cookies but does not sign them: a former --cookie-secret, so that rotating the secret "
        f"logs nobody out (repeatable; default: ${OLD_COOKIE_SECRETS_ENV}, separated by commas or whitespace). Needs --cookie-secret",
    )
    add_redis_url(parser, "Needs --cookie-secret")
    parser.add_argument("--session-ttl", type=_positive_int, default=PRODUCTION.session_ttl, metavar="SECONDS", help="idle seconds before a session expires and its sockets are closed (default: %(default)s)")
    parser.add_argument("--max-sessions", type=_positive_int, default=PRODUCTION.max_sessions, metavar="N", help="sessions kept at most; past this the least recently used is evicted (default: %(default)s)")
    parser.add_argument("--history", type=_non_negative_int, default=PRODUCTION.history, metavar="N", help="recent chat messages kept and shown to whoever arrives (default: %(default)s; 0 keeps none)")
    parser.add_argument("--connect-timeout", type=_positive_float, default=PRODUCTION.connect_timeout, metavar="SECONDS", help="close a connection that has not connected to Socket.IO this long after opening (default: %(default)s)")
    parser.add_argument("--ping-interval", type=_positive_int, default=PRODUCTION.ping_interval, metavar="SECONDS", help="seconds (whole: Engine.IO tells the page the interval in whole seconds) between the pings that tell a live link from a dead one; a page shows 'reconnecting' after --ping-interval + --ping-timeout without one (default: %(default)s)")
    parser.add_argument("--ping-timeout", type=_positive_int, default=PRODUCTION.ping_timeout, metavar="SECONDS", help="seconds a client may take to answer a ping before its socket is closed as gone (default: %(default)s)")
    parser.add_argument("--max-unsent-kib", type=_positive_int, default=PRODUCTION.max_unsent_kib, metavar="KIB", help="drop a WebSocket whose client leaves more than this unread (default: %(default)s)")
    parser.add_argument("--max-connections-per-ip", type=_positive_int, default=PRODUCTION.max_connections_per_ip, metavar="N", help="open connections one client address may hold (an IPv6 /64 counts as one address; behind --behind-proxy, the address in the proxy's headers); more are closed at once, or answered 429 behind a proxy (default: %(default)s, room for an office behind one NAT address)")
    parser.add_argument("--max-sockets-per-ip", type=_positive_int, default=PRODUCTION.max_sockets_per_ip, metavar="N", help="open Socket.IO connections (Engine.IO sessions, polling ones included) one client address may hold; more are refused (default: %(default)s)")
    parser.add_argument("--max-body-kib-in-flight", type=_body_budget, default=PRODUCTION.max_body_kib_in_flight, metavar="KIB", help=f"request bodies being received at once, server-wide (at least {MAX_BODY_BYTES // 1024}, one packet); one client address may hold a sixteenth of it; past it a new body is refused from its headers, 503 or 429 (default: %(default)s)")
    parser.add_argument("--first-poll-timeout", type=_positive_float, default=PRODUCTION.first_poll_timeout, metavar="SECONDS", help="end a long-polling connection that has not polled this long after its handshake; a page polls at once (default: %(default)s)")
    parser.add_argument("--allowed-origin", type=_origin, action="append", default=[], metavar="ORIGIN", help="another origin allowed to open sockets and send the login and logout forms, e.g. http://localhost:3000 (repeatable; the server's own origin is always allowed)")
    parser.add_argument("--allowed-host", type=_host, action="append", default=[], metavar="HOST", help="a name this server is reached by, e.g. chat.example.com (any port) or chat.example.com:8443 (repeatable); requests for other names get 421. The address it listens on, and on the server's port the names of the loopback addresses it holds (127.0.0.1, [::1], and localhost when it holds both), are always allowed")
    parser.add_argument("--certfile", help="serve HTTPS with this PEM certificate (chain); needs --keyfile")
    parser.add_argument("--keyfile", help="the certificate's PEM private key")
    parser.add_argument("--behind-proxy", action="store_true", help="trust X-Forwarded-For/X-Real-Ip and X-Forwarded-Proto from a reverse proxy (the client's address and scheme); only when the proxy is the only way in")
    parser.add_argument("--login-rate", type=_rate, default=PRODUCTION.login_rate, metavar="RATE", help="logins per client address at most, e.g. 30/minute, or off; past it 429 (default: %(default)s)")
    parser.add_argument("--connect-rate", type=_rate, default=PRODUCTION.connect_rate, metavar="RATE", help="socket connects per client address at most; past it refused with 'slow down' (default: %(default)s)")
    parser.add_argument("--chat-rate", type=_rate, default=PRODUCTION.chat_rate, metavar="RATE", help="chat messages per session at most; past it the sender is told 'slow down' and the message is not sent (default: %(default)s)")
    parser.add_argument("--drain-seconds", type=_non_negative_float, default=os.environ.get(DRAIN_SECONDS_ENV, PRODUCTION.drain_seconds),
                        metavar="SECONDS", help="on SIGTERM, end the sockets in small batches spread over this long, so that their pages "
                        "reconnect to the other processes at a steady rate, not all in one second; /readyz says 'draining' and new pages, "
                        "logins and connections are refused meanwhile. 0 ends them all at once. Ctrl-C (SIGINT), or a second signal "
                        f"during a drain, stops at once (default: ${DRAIN_SECONDS_ENV}, else %(default)s)")
    parser.add_argument("--metrics-address", type=_listen_address, metavar="HOST:PORT", help="serve Prometheus metrics at http://HOST:PORT/metrics, on a listener of their own with no Host check and no login, e.g. 127.0.0.1:9100: keep it where only the scraper reaches (default: off)")
    parser.add_argument("--no-fast-path", action="store_true", help="send every packet through engineio's own per-socket queue and writer task instead of writing to open WebSockets directly (for comparison)")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's own event loop even where uvloop is installed")
    parser.add_argument("--process-label", type=_process_label, metavar="LABEL", help="what this process is called in the "
                        "'welcome' each socket gets (the page shows it: 'Served by process app2') and in JSON logs' process field: "
                        "1 to 32 letters, digits, '.', '-' or '_'; public, so nothing secret (default: the pid)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="how much to log (default: %(default)s)")
    parser.add_argument("--log-format", default="text", choices=logs.FORMATS, help="text lines, or one JSON object per line with "
                        "time, level, logger, message, process and, where known, reason, client and tag (default: %(default)s)")
    return parser


def configure_logging(level: str, log_format: str = "text", process_label: str | None = None) -> None:
    logs.configure(level, log_format, process_label)
    # Tornado logs every request at INFO; keep the log about logins, logouts and refusals.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)


def old_cookie_secrets(old: Sequence[str] | None) -> Sequence[str]:
    """--old-cookie-secret, else $TORNADO_APP_OLD_COOKIE_SECRETS."""
    return old if old is not None else split_secrets(os.environ.get(OLD_COOKIE_SECRETS_ENV))


def cookie_secrets(given: str | None, old: Sequence[str] | None) -> CookieSecrets:
    """The secret that signs and the old ones that still verify (--old-cookie-secret, else
    $TORNADO_APP_OLD_COOKIE_SECRETS), or a random one."""
    older = old_cookie_secrets(old)
    if older and not given:
        raise Misconfigured(f"--old-cookie-secret needs --cookie-secret (or ${COOKIE_SECRET_ENV}): "
                            "the newest secret signs, the old ones only verify")
    try:
        secrets = CookieSecrets(resolve_cookie_secret(given), older)
    except SecretsCollide as error:
        raise Misconfigured(str(error)) from None
    if len(secrets.secrets) > 1:
        # The key version is in every cookie, so it may be logged: it shows which secret signs.
        log.info("signing cookies with key version %d; %d old secret(s) still verify", secrets.signing_version, len(secrets.secrets) - 1)
    return secrets


def check_secret_lengths(newest: str, older: Sequence[str], shared: bool) -> None:
    """A cookie secret shorter than MIN_SECRET_CHARS can be found by trying guesses offline
    against any one cookie it signed, and whoever finds it signs cookies as the site. The one
    that signs is refused where it is the whole site's (`shared`: several processes, through
    Redis), else warned about. An old one only verifies: it is warned about in both, as
    refusing it would log out at once everyone it signed for, which is what a rotation away
    from it is for. One line each, without the secret."""
    if len(newest) < MIN_SECRET_CHARS:
        found = "one cookie it signed lets anyone try guesses at it offline, and whoever finds it signs cookies as this site"
        if shared:
            raise Misconfigured(f"the cookie secret is {_characters(len(newest))}: with --redis-url it is the whole site's and "
                                f"needs {MIN_SECRET_CHARS} or more ({found}); make one: {MAKE_A_SECRET}")
        log.warning("the cookie secret is %s, under %d: %s; make one: %s", _characters(len(newest)), MIN_SECRET_CHARS, found, MAKE_A_SECRET)
    for number, secret in enumerate(older, 1):
        if len(secret) < MIN_SECRET_CHARS:
            log.warning("old cookie secret %d of %d is %s, under %d: while it is listed, whoever guesses it "
                        "(trying guesses offline against one cookie it signed) signs cookies as this site; remove it once "
                        "the people it signed for have been back", number, len(older), _characters(len(secret)), MIN_SECRET_CHARS)


def _characters(count: int) -> str:
    return f"{count} character" if count == 1 else f"{count} characters"


def resolve_cookie_secret(given: str | None) -> str:
    """The configured secret, or a random one (sessions are in memory: a restart ends them anyway)."""
    if given:
        return given
    log.info("no cookie secret given: using a random one, so a restart logs everyone out "
             "(sessions live in memory and would be lost anyway)")
    return secrets.token_urlsafe(32)


class BadTLSFiles(Exception):
    """The certificate or key cannot be loaded; the message says which and why."""


def tls_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """A server-side TLS context from the PEM files, or None for plain HTTP."""
    if not certfile and not keyfile:
        return None
    if not (certfile and keyfile):
        raise BadTLSFiles("--certfile and --keyfile go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as error:
        raise BadTLSFiles(f"cannot load the certificate {certfile} with the key {keyfile}: {error.strerror or error}") from None
    return context


def host_policy(address: str, port: int, allowed_hosts: Sequence[str], loopback_names: Sequence[str] = LOOPBACK_NAMES) -> HostPolicy:
    """The loopback names held (server.bind) and the listening address on our port, and the
    --allowed-host names."""
    own = [] if address in ("0.0.0.0", "::", "") else [f"[{address}]:{port}" if ":" in address else f"{address}:{port}"]
    if not own and not allowed_hosts:
        log.warning("listening on every interface, but answering only to %s: pass --allowed-host "
                    "with each name or address that clients use", ", ".join(loopback_names))
    return HostPolicy.local(port, [*own, *allowed_hosts], names=loopback_names)


class Misconfigured(Exception):
    """The flags cannot work together; the message says why, in one line."""


def check_history_fits(history: int, max_unsent_kib: int) -> None:
    """Every newcomer gets the kept messages in one frame: at their largest, that frame must
    fit in what a socket may leave unsent, or a newcomer could be dropped as a slow reader."""
    frame = history_frame_bytes(history)
    if frame > max_unsent_kib * 1024:
        fitting = (max_unsent_kib * 1024 - history_frame_bytes(0)) // largest_message_bytes()
        raise Misconfigured(f"--history {history} makes a history frame of up to {-(-frame // 1024)} KiB, above "
                            f"--max-unsent-kib {max_unsent_kib}: keep at most {fitting} messages, or raise --max-unsent-kib")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings the flags give: each field of Settings is the flag of the same name
    (--max-sockets-per-ip is max_sockets_per_ip); a field with no flag keeps its default."""
    return Settings(**{field.name: getattr(args, field.name) for field in fields(Settings) if hasattr(args, field.name)})


def build_backend(redis_url: str | None, settings: Settings) -> Backend:
    """Redis with --redis-url (several processes, one site), else this process's memory."""
    if redis_url is None:
        return Backend.in_memory(settings)
    try:
        return Backend.redis(redis_url, settings)
    except RedisNotInstalled:
        raise Misconfigured("--redis-url needs redis-py: pip install -e '.[redis]'") from None
    except BadRedisURL as error:
        raise Misconfigured(f"--redis-url: {error}") from None


def listen(args: argparse.Namespace, scheme: str) -> tuple[BoundSockets, HostPolicy]:
    """Bind the TCP port, or the Unix socket of --unix-socket, and the names to answer to.

    A Unix socket has no client address and no name of its own: the proxy in front says who
    the client is (--behind-proxy) and which name it asked for (--allowed-host)."""
    if args.unix_socket is None:
        bound = bind(args.address, args.port, scheme)
        return bound, host_policy(args.address, bound.port, args.allowed_host, bound.loopback_names)
    if not args.behind_proxy:
        raise Misconfigured("--unix-socket is for a proxy in front: add --behind-proxy (a Unix socket has no client address)")
    if not args.allowed_host:
        raise Misconfigured("--unix-socket needs --allowed-host with each name clients use (a Unix socket has no name of its own)")
    return bind_unix(args.unix_socket, scheme), HostPolicy.of(args.allowed_host)


async def run_until_signalled(args: argparse.Namespace, ssl_context: ssl.SSLContext | None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly: at once, or after a drain
    (SIGTERM with --drain-seconds: drain.StopSignals)."""
    if args.redis_url and not args.cookie_secret:
        raise Misconfigured(f"--redis-url needs --cookie-secret (or ${COOKIE_SECRET_ENV}): every process must verify the others' cookies")
    if args.cookie_secret:  # before anything starts: a short one is refused with --redis-url
        check_secret_lengths(args.cookie_secret, old_cookie_secrets(args.old_cookie_secret), shared=args.redis_url is not None)
    settings = settings_from_args(args)
    check_history_fits(settings.history, settings.max_unsent_kib)
    backend = build_backend(args.redis_url, settings)
    bound, allowed_hosts = listen(args, "https" if ssl_context else "http")
    secrets = cookie_secrets(args.cookie_secret, args.old_cookie_secret)
    metrics = Metrics(backend) if args.metrics_address else None
    try:
        exporter = metrics_server(metrics, args.metrics_address) if metrics is not None else None
    except CannotBind:
        bound.close()
        raise
    app = make_app(
        secrets,
        settings=settings,
        backend=backend,
        allowed_origins=args.allowed_origin,
        allowed_hosts=allowed_hosts,
        fast_path=not args.no_fast_path,
        metrics=metrics,
        process_label=args.process_label,
    )
    if args.no_fast_path:
        log.info("fast path off: every packet goes through engineio's own queue and writer task")
    signals = StopSignals(settings.drain_seconds)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, signals.terminate)  # a drain (drain.py)
    loop.add_signal_handler(signal.SIGINT, signals.interrupt)  # at once: a person at a terminal
    if exporter is not None:
        await exporter.start()
    try:
        await serve(app, bound, signals.stop, drain=signals, ssl_context=ssl_context, behind_proxy=args.behind_proxy,
                    on_ready=lambda: print(f"Serving on {bound.url}  (Ctrl-C to stop)", flush=True))
    finally:
        if exporter is not None:
            await exporter.stop()


def metrics_server(metrics: Metrics, address: str) -> MetricsServer:
    """The --metrics-address listener, bound now; CannotBind says why not in one line."""
    host, port = parse_listen_address(address)
    try:
        return MetricsServer(metrics, host, port)
    except OSError as error:
        raise CannotBind(error.errno, f"cannot serve metrics on {address}: {error.strerror or error}") from error


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, args.log_format, args.process_label)
    before, after = raise_open_files_limit()  # systemd starts services at 1024: a few hundred clients
    log.debug("open-files limit: %d, raised from %d", after, before)
    if after < 4 * args.max_connections_per_ip:
        log.warning("the open-files limit is %d (hard limit): a few clients at --max-connections-per-ip %d "
                    "can use every file descriptor; raise it (ulimit -Hn, systemd LimitNOFILE=)", after, args.max_connections_per_ip)
    try:
        ssl_context = tls_context(args.certfile, args.keyfile)
    except BadTLSFiles as error:
        print(f"tornado-app: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    collector.tune_for_serving()
    try:
        loop.run(run_until_signalled(args, ssl_context), use_uvloop=not args.no_uvloop)
    except CannotBind as error:
        print(f"tornado-app: error: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except (Misconfigured, BackendUnreachable) as error:
        print(f"tornado-app: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        pass
    return 0
