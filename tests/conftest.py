"""Shared fixtures and hooks, and nothing else: a fresh event loop per test, an app with a
fake clock, clients that behave like a browser (a cookie jar, the XSRF token) and like a
Socket.IO page, server processes, a real Redis and app processes sharing it; the hooks that
mark every test that starts a process `process` (and refuse a process to any other), and keep
the `heavy` tests out of a run unless its -m names them (docs/testing.md). Constants, the
fake clock, the e2e switch and the clients are in tests/support/, which the benchmarks share."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import socketio
import tornado.httpclient
from tornado.ioloop import IOLoop

# Failed asserts in the support modules explain themselves as in a test (before they are imported).
pytest.register_assert_rewrite("tests.support")

from tests.support.clock import FakeClock
from tests.support.cluster import Cluster
from tests.support.constants import (
    ALLOWED_ORIGIN,
    MAX_SESSIONS,
    SESSION_TTL,
    TEST_SECRET,
    TRANSPORTS,
)
from tests.support.e2e import e2e_unavailable
from tests.support.process_marker import (
    GUARD,
    MARKER,
    ProcessGuard,
    asks_for,
    refusal,
    starts_processes,
)
from tests.support.processes import ServerProcess
from tests.support.socketio_client import SocketClient
from tests.support.web_user import WebUser
from tornado_app.app import TornadoApp, make_app
from tornado_app.backend import Backend
from tornado_app.settings import Settings


def pytest_configure(config: pytest.Config) -> None:
    # Every `python -m tornado_app` a test starts stops at once on SIGTERM, as the tests written
    # before the drain expect (a socket open at the stop is ended within a second); the drain's
    # tests (test_drain.py) give --drain-seconds themselves, which wins over this.
    os.environ["TORNADO_APP_DRAIN_SECONDS"] = "0"
    config.stash[GUARD] = ProcessGuard()


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection, which must see `process`
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `process` every test that starts one through a known route (tests/support/
    process_marker.py); leave the `heavy` tests out unless the -m expression names them, so that
    `-m "not e2e"` does not run them (a -m given on the command line replaces setup.cfg's)."""
    for item in items:
        if item.get_closest_marker(MARKER) is None and starts_processes(item):
            item.add_marker(MARKER)
    if asks_for(config.getoption("markexpr") or "", "heavy"):
        return
    heavy = [item for item in items if item.get_closest_marker("heavy") is not None]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if item.get_closest_marker("heavy") is None]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Tell the process guard which test runs, unless it is marked `process`."""
    guard = item.config.stash[GUARD]
    guard.running = None if item.get_closest_marker(MARKER) is not None else item.nodeid
    try:
        return (yield)
    finally:
        guard.running = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Fail an unmarked test that tried to start a process and swallowed the guard's failure
    (in a thread, or an asyncio task nobody awaited)."""
    guard = item.config.stash[GUARD]
    guard.attempts.clear()
    result = yield
    if guard.attempts:
        pytest.fail(refusal(item.nodeid, ", ".join(guard.attempts)), pytrace=False)
    return result


@pytest.fixture(scope="session", autouse=True)
def process_guard(pytestconfig: pytest.Config) -> Iterator[ProcessGuard]:
    """Refuses a child process to every test not marked `process`, in every run."""
    guard = pytestconfig.stash[GUARD]
    guard.install()
    yield guard
    guard.uninstall()


@pytest.fixture
def io_loop() -> Iterator[IOLoop]:
    """pytest-tornado's loop without the deprecated make_current, and no task left behind."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    io_loop = IOLoop.current()
    yield io_loop
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    io_loop.close(all_fds=True)
    asyncio.set_event_loop(None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> TornadoApp:
    """An app whose tests log in and connect dozens of times from 127.0.0.1: the per-address
    caps and rates are lifted (each is attacked on its own: test_ratelimit.py, test_settings.py)."""
    settings = Settings.lifted(session_ttl=SESSION_TTL, max_sessions=MAX_SESSIONS)
    return make_app(
        TEST_SECRET,
        settings=settings,
        backend=Backend.in_memory(settings, clock=clock),
        allowed_origins=[ALLOWED_ORIGIN],
    )


@pytest.fixture
def web_user(http_client: tornado.httpclient.AsyncHTTPClient, base_url: str) -> Any:
    """A factory of independent browsers against the test server."""
    return lambda: WebUser(http_client, base_url)


@pytest.fixture
def socket_client(base_url: str, io_loop: IOLoop, http_server: Any) -> Iterator[Any]:
    """A factory: `await socket_client(cookie, transport)` connects and returns a SocketClient.

    It raises socketio.exceptions.ConnectionError when the server refuses; the client that
    was refused is reachable as the exception's `client` attribute.
    """
    clients: list[SocketClient] = []

    async def connect(cookie: str | None, transport: str = "websocket", origin: str | None = "same") -> SocketClient:
        client = SocketClient(cookie)
        clients.append(client)
        headers = {}
        if origin == "same":
            headers["Origin"] = base_url
        elif origin is not None:
            headers["Origin"] = origin
        try:
            await client.sio.connect(base_url, headers=headers, transports=TRANSPORTS[transport], wait_timeout=3)
        except socketio.exceptions.ConnectionError as error:
            error.client = client
            raise
        return client

    yield connect
    for client in clients:
        io_loop.run_sync(client.close)


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """A factory: `server_process(*args)` starts `python -m tornado_app *args`; all are
    killed after the test."""
    started: list[ServerProcess] = []

    def start(*args: str, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


# --- Real Redis (and nginx) for the multi-process tests: started on free ports with their
# files in temporary directories, skipped with the reason where they are not installed
# (failed instead under REQUIRE_E2E=1). -----------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from deploy.services import RedisServer, ServiceMissing

    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except ServiceMissing as missing:
        e2e_unavailable(str(missing))
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Any]:
    """A redis-server (with a password) for this test alone, which the test may hang, kill
    and start again: continued (if stopped) and stopped after it."""
    from deploy.services import RedisServer, ServiceMissing

    workdir = tmp_path / "redis"
    workdir.mkdir(mode=0o700)
    try:
        server = RedisServer(workdir)
    except ServiceMissing as missing:
        e2e_unavailable(str(missing))
    yield server
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


@pytest.fixture
def replicated_redis(tmp_path: Path) -> Iterator[Any]:
    """A primary, a replica and three Sentinels (deploy/services.py ReplicatedRedis, one
    password) for this test alone, once the Sentinels watch it; the test may kill any of them."""
    from deploy.services import ReplicatedRedis, ServiceMissing

    workdir = tmp_path / "redis-ha"
    workdir.mkdir(mode=0o700)
    try:
        replicated = ReplicatedRedis(workdir)
    except ServiceMissing as missing:
        e2e_unavailable(str(missing))
    try:
        replicated.wait_until_watched()
        yield replicated
    finally:
        replicated.stop()


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    """The test Redis, emptied for this test (and running, if a test stopped it)."""
    import redis

    if redis_server.process.poll() is not None:
        redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """App processes on the test Redis, each started by the test (`cluster.start()`), all
    stopped after it (test_cluster.py, redis/test_values.py, test_outages.py, ...)."""
    started = Cluster(redis_url, tmp_path)
    yield started
    started.stop()


@pytest.fixture
def nginx_workdir() -> Iterator[Path]:
    """A private directory for nginx's files and the apps' sockets, laid out as make cluster's:
    run as root, nginx's workers (a user of their own) may enter it, and no one else."""
    from deploy.services import ServiceMissing, open_to_nginx

    workdir = Path(tempfile.mkdtemp(prefix="tornado-app-test-nginx-"))
    try:
        open_to_nginx(workdir, 0o710)
        (workdir / "sockets").mkdir()
        open_to_nginx(workdir / "sockets", 0o2710)
    except ServiceMissing as missing:
        shutil.rmtree(workdir)
        e2e_unavailable(str(missing))
    yield workdir
    shutil.rmtree(workdir, ignore_errors=True)
