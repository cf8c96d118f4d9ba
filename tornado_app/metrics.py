"""Prometheus metrics (`--metrics-address`): what an operator watches, defined in one place.

Every label takes its values from a fixed set written here or in reasons.py (a refusal's
reason, a session end's reason, an event the server handles), never from a client: no
username, tag, address or event name a client made up becomes a label, so the number of
series stays the same however many people come.

Off by default: then the app holds `NoMetrics`, whose hooks return the handlers unwrapped
and do nothing, so the hot paths pay one empty call where they pay anything.

The counters count what happens in this process; the gauges say what this process holds.
In Redis mode every process hears of every session's end (its sockets may be anywhere), so
`tornado_app_session_ends_total` is the site's count in each process: read it from one
process, do not sum it over them. `tornado_app_sessions` is the store's count (the site's in
Redis mode), sampled every few seconds rather than read on a scrape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from socketio.exceptions import ConnectionRefusedError
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from .errors import BackendUnavailable
from .reasons import (
    END_REASONS,
    NOT_AUTHENTICATED,
    SESSION_ENDED,
    STORE_UNAVAILABLE,
    TOO_MANY_CONNECTS,
    ChatRefusal,
    EndReason,
)

if TYPE_CHECKING:
    from .backend import Backend
    from .sessions import Session
    from .sockets import ChatSocketServer

log = logging.getLogger(__name__)

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])

PREFIX = "tornado_app_"
# A refused Socket.IO connect's words (reasons.py), as the `reason` label says them.
CONNECT_REFUSALS = {
    NOT_AUTHENTICATED: "not_authenticated",
    SESSION_ENDED: "session_ended",
    STORE_UNAVAILABLE: "store_unavailable",
    TOO_MANY_CONNECTS: "rate",
}
CHAT_REFUSALS: tuple[str, ...] = get_args(ChatRefusal)
# The events the server handles (sockets.py), and "other" for any a client makes up.
EVENTS = ("connect", "disconnect", "whoami", "chat", "private", "active", "idle_left", "catch_up", "presence_state")
OTHER = "other"
# Handling an event takes well under a millisecond unless it waits for Redis.
EVENT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
PRESENCE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
LAG_INTERVAL_SECONDS = 0.5  # the loop-lag timer's period
SAMPLE_EVERY_TICKS = 10  # the session count and the Redis ping, every 5 s
SAMPLE_TIMEOUT_SECONDS = 2.0  # a sample that takes longer counts Redis as unreachable


class NoMetrics:
    """Metrics off: every hook is free or nearly (the handlers are returned as they are)."""

    def watch(self, sockets: ChatSocketServer) -> None:
        """Read the socket server's state at scrape time (nothing to read when off)."""

    def connects(self, handler: Handler) -> Handler:
        """The connect handler, timed, counting its refusals by reason."""
        return handler

    def timed(self, event: str, handler: Handler) -> Handler:
        """An event's handler, timed."""
        return handler

    def chats(self, handler: Handler) -> Handler:
        """The chat handler, counting what its answers accept and refuse."""
        return handler

    def connect_accepted(self) -> None:
        """A socket was accepted (sockets.py, once nothing can refuse it any more)."""

    def presence_batch(self, people: int) -> None:
        """A presence diff sent to this process's sockets, with this many joins and leaves."""

    async def start(self) -> None:
        """Begin the periodic samples."""

    async def stop(self) -> None:
        """End the periodic samples."""


class Metrics(NoMetrics):
    """The metrics of one app, in a registry of their own (with the process's: open files,
    memory, CPU), exported by MetricsServer."""

    def __init__(self, backend: Backend) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_open_fds, process_max_fds, RSS, CPU seconds
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._backend = backend
        metric: dict[str, Any] = {"registry": self.registry}
        self.sockets_open = Gauge(PREFIX + "sockets_open", "Socket.IO connections open in this process", **metric)
        self.people_online = Gauge(PREFIX + "people_online", "People with at least one socket open in this process", **metric)
        self.sessions = Gauge(PREFIX + "sessions", "Sessions in the store (the whole site's in Redis mode), sampled every few seconds", **metric)
        self.connects_accepted = Counter(PREFIX + "connects_accepted", "Socket.IO connects accepted", **metric)
        self.connects_refused = Counter(PREFIX + "connects_refused", "Socket.IO connects refused, by reason", ["reason"], **metric)
        self.session_ends = Counter(PREFIX + "session_ends", "Sessions ended, by reason (every process counts the whole site's in Redis mode)",
                                    ["reason"], **metric)
        self.chat_accepted = Counter(PREFIX + "chat_messages_accepted", "Chat messages accepted (stored and sent)", **metric)
        self.chat_refused = Counter(PREFIX + "chat_messages_refused", "Chat messages refused, by reason", ["reason"], **metric)
        self.events = Histogram(PREFIX + "event_handling_seconds", "Socket.IO events handled, by event, and how long each took",
                                ["event"], buckets=EVENT_BUCKETS, **metric)
        self.presence_batches = Histogram(PREFIX + "presence_batch_changes", "Joins and leaves per presence diff sent to this process's sockets",
                                          buckets=PRESENCE_BUCKETS, **metric)
        self.draining = Gauge(PREFIX + "draining", "1 while this process drains its sockets for a stop (SIGTERM), else 0", **metric)
        self.loop_lag = Gauge(PREFIX + "event_loop_lag_seconds", "How late the event loop ran a timer, at the latest measure", **metric)
        self.redis_up: Gauge | None = None
        self.redis_ping: Histogram | None = None
        if backend.remote:
            self.redis_up = Gauge(PREFIX + "redis_up", "Whether Redis answered the latest PING in time (1) or not (0)", **metric)
            self.redis_ping = Histogram(PREFIX + "redis_ping_seconds", "Round trip of a PING to Redis", buckets=PING_BUCKETS, **metric)
        # Every series that can exist exists from the start, at 0: a rate() needs a first point.
        for reason in (*CONNECT_REFUSALS.values(), OTHER):
            self.connects_refused.labels(reason)
        for end in END_REASONS:
            self.session_ends.labels(end)
        for refusal in (*CHAT_REFUSALS, OTHER):
            self.chat_refused.labels(refusal)
        for event in (*EVENTS, OTHER):
            self.events.labels(event)
        self._sampler: asyncio.Task[None] | None = None

    def watch(self, sockets: ChatSocketServer) -> None:
        self.sockets_open.set_function(lambda: len(sockets.registry))
        self.people_online.set_function(lambda: len(sockets.presence.here()))
        self.draining.set_function(lambda: float(sockets.draining))
        sockets.backend.store.add_end_listener(self._session_ended)
        other = self.events.labels(OTHER)
        sockets.sio.count_unknown_events(lambda: other.observe(0.0))  # by "other": never a client's name for it

    def connects(self, handler: Handler) -> Handler:
        timing, refused = self.events.labels("connect"), self.connects_refused

        async def counted(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                result = await handler(*args)
            except ConnectionRefusedError as refusal:
                message = refusal.error_args.get("message") if isinstance(refusal.error_args, dict) else None
                refused.labels(CONNECT_REFUSALS.get(message, OTHER)).inc()  # type: ignore[arg-type]  # any message: only ours are found
                raise
            except Exception:
                refused.labels(OTHER).inc()
                raise
            finally:
                timing.observe(time.perf_counter() - started)
            return result

        return counted  # type: ignore[return-value]  # called as `handler` is

    def connect_accepted(self) -> None:
        self.connects_accepted.inc()

    def timed(self, event: str, handler: Handler) -> Handler:
        timing = self.events.labels(event if event in EVENTS else OTHER)

        async def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return await handler(*args)
            finally:
                timing.observe(time.perf_counter() - started)

        return timed  # type: ignore[return-value]  # called as `handler` is

    def chats(self, handler: Handler) -> Handler:
        accepted, refused = self.chat_accepted, self.chat_refused

        async def counted(*args: Any) -> Any:
            answer = await handler(*args)
            if isinstance(answer, dict):
                if answer.get("ok"):
                    accepted.inc()
                else:
                    reason = answer.get("reason")
                    refused.labels(reason if reason in CHAT_REFUSALS else OTHER).inc()
            return answer

        return counted  # type: ignore[return-value]  # called as `handler` is

    def presence_batch(self, people: int) -> None:
        self.presence_batches.observe(people)

    async def _session_ended(self, session: Session, reason: EndReason) -> None:
        self.session_ends.labels(reason if reason in END_REASONS else OTHER).inc()

    async def start(self) -> None:
        if self._sampler is None:
            self._sampler = asyncio.ensure_future(self._sample())

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None

    async def _sample(self) -> None:
        """Measure the loop's lag every LAG_INTERVAL_SECONDS (how late its own timer fires), and
        every few of those the store's session count and Redis's round trip, each bounded by a
        timeout: a scrape never waits for Redis."""
        loop = asyncio.get_running_loop()
        tick = 0
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_INTERVAL_SECONDS)
            self.loop_lag.set(max(0.0, loop.time() - asked - LAG_INTERVAL_SECONDS))
            if tick % SAMPLE_EVERY_TICKS == 0:
                await self._sample_store()
            tick += 1

    async def _sample_store(self) -> None:
        try:
            self.sessions.set(await asyncio.wait_for(self._backend.store.count(), SAMPLE_TIMEOUT_SECONDS))
        except (TimeoutError, BackendUnavailable):
            pass  # the last count stays; redis_up says why
        if self.redis_up is None or self.redis_ping is None:
            return
        started = time.perf_counter()
        # The same PING as readiness's (health.py): down, hung or refusing is "not reachable",
        # and the bus logs the outage once.
        if not await self._backend.answers(SAMPLE_TIMEOUT_SECONDS):
            self.redis_up.set(0)
            return
        self.redis_ping.observe(time.perf_counter() - started)
        self.redis_up.set(1)


class MetricsHandler(RequestHandler):
    """GET /metrics: the registry in Prometheus's text format. On its own listener, so no Host
    check, no session, no cookie: whoever reaches the address reads the numbers (nothing in them
    names a person), so keep it on loopback or a network only the scraper reaches."""

    def initialize(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.write(generate_latest(self.registry))


class MetricsServer:
    """The --metrics-address listener and the samples behind it, started and stopped with the
    server (cli.py)."""

    def __init__(self, metrics: Metrics, address: str, port: int) -> None:
        self.metrics = metrics
        self._sockets = bind_sockets(port, address)  # raises OSError: the caller says why
        self.port = self._sockets[0].getsockname()[1]
        host = f"[{address}]" if ":" in address else address
        self.url = f"http://{host}:{self.port}/metrics"
        app = Application([(r"/metrics", MetricsHandler, {"registry": metrics.registry})], log_function=_quiet)
        self._server = HTTPServer(app)

    async def start(self) -> None:
        self._server.add_sockets(self._sockets)
        await self.metrics.start()
        log.info("metrics on %s", self.url)

    async def stop(self) -> None:
        self._server.stop()
        await self.metrics.stop()
        await self._server.close_all_connections()


def _quiet(handler: RequestHandler) -> None:
    """Scrapes come every few seconds: not a line each."""
