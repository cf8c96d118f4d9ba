"""Shared fixtures: a fresh event loop per test, an app with a fake clock, clients that
behave like a browser (a cookie jar, the XSRF token) and like a Socket.IO page, server
processes, a real Redis and app processes sharing it. The clients themselves are in
tests/support/, which the benchmarks share."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, overload

import pytest
import socketio
import tornado.httpclient
from tornado.ioloop import IOLoop

# Failed asserts in the support modules explain themselves as in a test (before they are imported).
pytest.register_assert_rewrite("tests.support")

from tests.support.cluster import Cluster, MakeCluster
from tests.support.processes import ServerProcess
from tests.support.socketio_client import SocketClient
from tests.support.web_user import WebUser
from tornado_app.app import TornadoApp, make_app
from tornado_app.backend import Backend

TEST_SECRET = "test-cookie-secret-not-for-production"
ALLOWED_ORIGIN = "http://allowed.example"
SESSION_TTL = 60
MAX_SESSIONS = 5

ROOT = Path(__file__).resolve().parent.parent

# Every `python -m tornado_app` a test starts stops at once on SIGTERM, as the tests written
# before the drain expect (a socket open at the stop is ended within a second); the drain's
# tests (test_drain.py) give --drain-seconds themselves, which wins over this.
os.environ["TORNADO_APP_DRAIN_SECONDS"] = "0"
OUTPUT_DIR = ROOT / "test-output"


def app_env(request: pytest.FixtureRequest, store: str) -> dict[str, str]:
    """The environment of `python -m tornado_app` (deploy.services.AppProcess) for a store:
    "memory", or the test Redis for any other name; every process shares the cookie secret."""
    env = {"TORNADO_APP_COOKIE_SECRET": "a-secret-shared-by-every-process"}
    if store != "memory":
        env["TORNADO_APP_REDIS_URL"] = request.getfixturevalue("redis_url")
    return env


def e2e_unavailable(reason: str) -> None:
    """Skip a browser or window test whose tools are missing; fail instead under REQUIRE_E2E=1."""
    if os.environ.get("REQUIRE_E2E") == "1":
        pytest.fail(f"REQUIRE_E2E=1 but {reason}", pytrace=False)
    pytest.skip(reason)


# The transports a client may use: WebSocket straight away, or long-polling then upgrade.
TRANSPORTS = {"websocket": ["websocket"], "polling-upgrade": ["polling", "websocket"]}


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


class FakeClock:
    """A clock that moves only when told to, so expiry is tested without sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> TornadoApp:
    return make_app(
        TEST_SECRET,
        backend=Backend.in_memory(session_ttl=SESSION_TTL, max_sessions=MAX_SESSIONS, clock=clock),
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
    stopped after it (test_cluster.py, test_redis_values.py)."""
    started = Cluster(redis_url, tmp_path)
    yield started
    started.stop()


ClusterType = TypeVar("ClusterType", bound=MakeCluster)


@overload
def started_make_cluster(*args: str, env: dict[str, str] | None = None) -> MakeCluster: ...
@overload
def started_make_cluster(*args: str, env: dict[str, str] | None = None, kind: type[ClusterType]) -> ClusterType: ...


def started_make_cluster(*args: str, env: dict[str, str] | None = None,
                         kind: type[MakeCluster] = MakeCluster) -> MakeCluster:
    """deploy/cluster.py with two processes on a free port (and `args`), serving; skipped
    where redis-server or nginx is missing (failed instead under REQUIRE_E2E=1)."""
    made = kind("--processes", "2", "--port", "0", *args, env=env)
    if not made.serving:
        made.close()
        if "not installed" in made.stderr():
            e2e_unavailable(made.stderr().strip())
        pytest.fail(f"make cluster did not start: {made.first_line!r} {made.stderr()}")
    return made


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
