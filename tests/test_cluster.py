"""Several real app processes sharing one real Redis (and nginx in front where the polling
transport or `make cluster` is tested): chat, logout, expiry and presence across processes,
a restart, a process killed without a word, Redis stopped and started again, one session
bound for all processes together, and `make cluster` itself: it starts again whatever part
ends, and a page in Chromium reconnects through its nginx.

They skip with the reason where redis-server or nginx is missing, and fail instead under
REQUIRE_E2E=1.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import os
import pwd
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import socketio

from deploy.cluster import Backoff, how_it_ended
from deploy.services import (
    NGINX_USER,
    ROOT,
    AppProcess,
    Nginx,
    ServiceMissing,
    free_port,
    has_ipv6_loopback,
    probe,
)
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browser_missing
from tests.support.cluster import Cluster, MakeCluster, as_nobody, connections_to
from tests.support.e2e import e2e_unavailable
from tests.support.forms import can_log_in, http_session, log_in
from tests.support.make_cluster import started_make_cluster
from tests.support.matching import found
from tests.support.measure import bounded
from tests.support.processes import socket_inodes_of
from tests.support.protocol import SOCKETIO_POLLING, opening_sid
from tests.support.waiting import eventually
from tests.support.wire import Refused, WireSocket


def test_a_ready_process_already_hears_the_others_before_its_first_socket(cluster: Cluster) -> None:
    """Ready (/readyz 200, as AppProcess waits for) means subscribed: to the Socket.IO channel
    (python-socketio subscribed only at the first connection, and in the background) and to the
    bus's channels (a logout's `ended`, presence), so that nothing another process publishes
    once this one accepts its first socket goes unheard. Redis counts each process once."""
    import redis

    cluster.start()
    cluster.start()
    channels = [f"tornado_app:{name}" for name in ("socketio", "ended", "presence")]
    client = redis.Redis.from_url(cluster.redis_url)
    try:
        counts = dict(client.pubsub_numsub(*channels))
    finally:
        client.close()
    assert counts == {channel.encode(): 2 for channel in channels}


def test_a_chat_on_one_process_reaches_sockets_on_every_process(cluster: Cluster) -> None:
    a, b = cluster.start(), cluster.start()

    async def scenario() -> None:
        async with http_session() as http:
            ada = await WireSocket.connect(http, a.url, await log_in(http, a.url, "ada"), origin=a.url)
            grace = await WireSocket.connect(http, b.url, await log_in(http, b.url, "grace"), origin=b.url)
            await ada.emit("chat", {"text": "from A"})
            await grace.emit("chat", {"text": "from B"})
            for socket in (ada, grace):
                texts = {(await socket.next("chat"))["text"] for _ in range(2)}
                assert texts == {"from A", "from B"}
            # Presence is the union: each sees both, wherever they are connected.
            for socket in (ada, grace):
                await socket.sees_online(["ada", "grace"])
            # The recent conversation is shared too: a late joiner on either process has both.
            late = await WireSocket.connect(http, b.url, await log_in(http, b.url, "late"), origin=b.url)
            history = (await late.next("history"))["messages"]
            assert sorted(message["text"] for message in history) == ["from A", "from B"]
            for socket in (ada, grace, late):
                await socket.close()

    asyncio.run(scenario())


def test_logout_on_one_process_disconnects_the_sockets_on_another_within_milliseconds(cluster: Cluster) -> None:
    a, b = cluster.start(), cluster.start()

    async def scenario() -> list[float]:
        times = []
        async with http_session() as http:
            bystander = await WireSocket.connect(http, b.url, await log_in(http, b.url, "bystander"), origin=b.url)
            for trial in range(15):
                cookie = await log_in(http, a.url, f"ada{trial}")
                on_b = await WireSocket.connect(http, b.url, cookie, origin=b.url)
                async with http.get(a.url + "/logout", headers={"Cookie": cookie}) as page:
                    token = found(r'name="_xsrf" value="([^"]+)"', await page.text()).group(1)
                started = time.perf_counter()
                async with http.post(a.url + "/logout", data={"_xsrf": token}, headers={"Cookie": cookie}, allow_redirects=False) as out:
                    assert out.status == 303
                await asyncio.wait_for(on_b.closed.wait(), 10)
                times.append(1000 * (time.perf_counter() - started))
                assert on_b.close_reason == "io server disconnect"
                with pytest.raises(Refused, match="not authenticated"):
                    await WireSocket.connect(http, b.url, cookie, origin=b.url)
            assert not bystander.closed.is_set()  # only that session's sockets
            await bystander.close()
        return times

    times = asyncio.run(scenario())
    print(f"logout on A -> socket on B gone: p50 {statistics.median(times):.2f} ms, max {max(times):.2f} ms")
    assert statistics.median(times) < 50  # measured by make bench, not here: this only catches a path that waits


def test_expiry_found_by_one_process_disconnects_the_socket_on_another(cluster: Cluster) -> None:
    a, b = cluster.start("--session-ttl", "1"), cluster.start("--session-ttl", "1")

    async def scenario() -> None:
        async with http_session() as http:
            socket = await WireSocket.connect(http, b.url, await log_in(http, a.url, "idle"), origin=b.url)
            await asyncio.wait_for(socket.closed.wait(), 5)  # a sweep (on A or B) ended it
            assert socket.close_reason == "io server disconnect"

    asyncio.run(scenario())


def test_with_a_short_ttl_a_page_in_use_stays_while_an_idle_one_expires(cluster: Cluster) -> None:
    """Issue 17: with `--session-ttl 3`, a page that says `active` every 0.5 s is still
    connected, and answered, after 10 s, while an idle session on the same processes is told
    `ended` with `expired`. Each process answers a session it saw recently from memory; its
    uses must still reach Redis before any process's sweep looks (both sweep here)."""
    a, b = cluster.start("--session-ttl", "3"), cluster.start("--session-ttl", "3")

    async def scenario() -> None:
        async with http_session() as http:
            in_use = await WireSocket.connect(http, a.url, await log_in(http, a.url, "in use"), origin=a.url)
            idle = await WireSocket.connect(http, b.url, await log_in(http, b.url, "idle"), origin=b.url)
            started = time.monotonic()

            async def report_activity() -> None:
                while time.monotonic() - started < 10:
                    if in_use.closed.is_set():
                        why = await in_use.next("ended") if in_use.pending("ended") else in_use.close_reason
                        raise AssertionError(f"the session in use ended after {time.monotonic() - started:.1f} s: {why}")
                    await in_use.emit("active")
                    await asyncio.sleep(0.5)

            reporter = asyncio.ensure_future(report_activity())
            assert await idle.next("ended", timeout=15) == {"reason": "expired"}
            await eventually(idle.closed.is_set, what="the idle session's socket closed")
            await reporter
            assert (await in_use.call("whoami"))["username"] == "in use"
            assert not in_use.closed.is_set()
            await in_use.close()

    asyncio.run(scenario())
    assert "socket of 'idle' from 127.0.0.1 closed: session expired" in b.log()
    for app in (a, b):
        assert "Traceback" not in app.log()


def test_sessions_survive_a_restart_of_the_process(cluster: Cluster) -> None:
    a = cluster.start()

    async def scenario() -> str:
        async with http_session() as http:
            return await log_in(http, a.url, "ada")

    cookie = asyncio.run(scenario())
    a.stop()
    a.start()  # the same port, a new process

    async def after_restart() -> None:
        async with http_session() as http:
            async with http.get(a.url + "/api/session", headers={"Cookie": cookie}) as api:
                assert api.status == 200 and (await api.json())["username"] == "ada"
            socket = await WireSocket.connect(http, a.url, cookie, origin=a.url)
            assert (await socket.call("whoami"))["username"] == "ada"
            await socket.close()

    asyncio.run(after_restart())
    assert "Traceback" not in a.log()


@pytest.mark.heavy  # over 10 s: it waits out a timeout or a process; run by make test-heavy and CI
def test_a_process_killed_without_a_word_leaves_the_others_presence_within_30_s(cluster: Cluster) -> None:
    a, b = cluster.start(), cluster.start()

    async def scenario() -> float:
        async with http_session() as http:
            await WireSocket.connect(http, a.url, await log_in(http, a.url, "doomed"), origin=a.url)
            watcher = await WireSocket.connect(http, b.url, await log_in(http, b.url, "watcher"), origin=b.url)
            await watcher.sees_online(["doomed", "watcher"])
            a.kill()
            started = time.monotonic()
            await watcher.sees_online(["watcher"], timeout=30)
            seconds = time.monotonic() - started
            await watcher.close()
            return seconds

    seconds = asyncio.run(scenario())
    print(f"a SIGKILLed process's users left the presence after {seconds:.1f} s")
    assert "Traceback" not in cluster.apps[1].log()


def test_redis_lost_and_back_503_then_recovery_with_one_log_line_each_way(cluster: Cluster, redis_server: Any) -> None:
    a, b = cluster.start(), cluster.start()

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, a.url, "ada")
            redis_server.stop()

            async def answers_503() -> bool:
                async with http.get(a.url + "/", headers={"Cookie": cookie}) as page:
                    return page.status == 503

            # A, which has just seen Ada, answers from its trusted cache until its pub/sub link
            # notices that Redis is gone (redis/sessions.py: nothing is trusted while it is down).
            await eventually(answers_503, what="A noticed that Redis is gone")
            for _ in range(5):  # pages that need a session, logins and sockets, several times
                async with http.get(a.url + "/", headers={"Cookie": cookie}) as page:
                    assert page.status == 503
                    assert "session store is unavailable" in await page.text()
                with pytest.raises(RuntimeError, match="answered 503"):
                    await log_in(http, a.url, "grace")  # the form shows; the login cannot happen
                with pytest.raises(Refused, match="session store unavailable"):
                    await WireSocket.connect(http, b.url, cookie, origin=b.url)
            redis_server.start()  # the same port, empty: the sessions died with it (no persistence here)
            await eventually(lambda: can_log_in(http, a.url, "ada again"), 10, "a login works again after Redis is back")
            ada = await WireSocket.connect(http, a.url, await log_in(http, a.url, "ada"), origin=a.url)
            grace = await WireSocket.connect(http, b.url, await log_in(http, b.url, "grace"), origin=b.url)

            async def chat_crosses() -> bool:
                await ada.emit("chat", {"text": "are you there?"})
                try:
                    while (await grace.next("chat", timeout=0.5))["text"] != "are you there?":
                        pass
                except TimeoutError:
                    return False
                return True

            # python-socketio's Redis manager resubscribes with a backoff of 1, 2, 4... s.
            print(f"chat crossed processes again {await eventually(chat_crosses, 20, 'chat crosses processes again'):.1f} s after")
            # Our own subscription is back too: a logout on A still reaches a socket on B.
            leaver_cookie = await log_in(http, a.url, "leaver")
            leaver_on_b = await WireSocket.connect(http, b.url, leaver_cookie, origin=b.url)
            async with http.get(a.url + "/logout", headers={"Cookie": leaver_cookie}) as page:
                token = found(r'name="_xsrf" value="([^"]+)"', await page.text()).group(1)
            async with http.post(a.url + "/logout", data={"_xsrf": token}, headers={"Cookie": leaver_cookie}, allow_redirects=False):
                pass
            await asyncio.wait_for(leaver_on_b.closed.wait(), 10)
            await ada.close()
            await grace.close()

    asyncio.run(scenario())
    for app in (a, b):
        status = app.stop()
        log = app.log()
        assert status == 0 and "Traceback" not in log
        assert log.count("session store unavailable: Redis at") == 1, log[-3000:]
        assert log.count("session store is back") == 1, log[-3000:]


def test_one_session_bound_for_all_processes_under_concurrent_logins(cluster: Cluster, redis_url: str) -> None:
    bound = 50
    apps = [cluster.start("--max-sessions", str(bound)), cluster.start("--max-sessions", str(bound))]

    async def scenario() -> list[str]:
        async with http_session() as http:
            return await bounded(400, 40, lambda i: log_in(http, apps[i % 2].url, f"user{i}"))

    cookies = asyncio.run(scenario())
    with redis.Redis.from_url(redis_url) as client:
        assert client.zcard("tornado_app:lru") == bound
        assert len(client.keys("tornado_app:session:*")) == bound

    async def live() -> int:
        async with http_session() as http:
            async def works(cookie: str) -> bool:
                async with http.get(apps[0].url + "/api/session", headers={"Cookie": cookie}) as api:
                    return api.status == 200
            return sum(await bounded(len(cookies), 40, lambda i: works(cookies[i])))

    assert asyncio.run(live()) == bound


@pytest.fixture
def nginx_in_front(cluster: Cluster, nginx_workdir: Path) -> Iterator[Nginx]:
    """Two app processes on Unix sockets, nginx in front on a free port (make cluster's layout)."""
    port = free_port()
    for number in (1, 2):
        cluster.start("--behind-proxy", "--allowed-host", f"127.0.0.1:{port}", unix_socket=nginx_workdir / "sockets" / f"app{number}.sock")
    try:
        proxy = Nginx(nginx_workdir, [app.where for app in cluster.apps], port=port)
    except ServiceMissing as missing:
        e2e_unavailable(str(missing))
    yield proxy
    proxy.stop()


def test_through_nginx_the_scheme_is_nginxs_whatever_the_client_claims(cluster: Cluster, nginx_in_front: Nginx) -> None:
    """Tornado reads X-Scheme before X-Forwarded-Proto: a client's own `X-Scheme: http` would
    make an HTTPS site's cookies lose `Secure`. nginx.conf sets both from its own $scheme, so
    here (plain HTTP) a client claiming https gets no Secure cookie, and claiming http on an
    HTTPS site would get one."""
    base = nginx_in_front.url

    async def scenario() -> None:
        async with http_session() as http:
            claims = {"X-Scheme": "https", "X-Forwarded-Proto": "https"}
            async with http.get(base + "/login", headers=claims) as page:
                assert page.status == 200
                assert "Secure" not in page.headers["Set-Cookie"]

    asyncio.run(scenario())


def test_through_nginx_a_static_file_comes_gzipped_to_a_browser_that_takes_it_and_plain_to_one_that_does_not(
    cluster: Cluster, nginx_in_front: Nginx,
) -> None:
    """nginx passes Accept-Encoding to the app, and its Content-Encoding, Content-Length and
    Vary back, unchanged (nginx.conf compresses nothing itself)."""
    script = (ROOT / "web" / "static" / "socket.io.min.js").read_bytes()
    for accept in ("gzip, deflate, br", None):
        request = urllib.request.Request(nginx_in_front.url + "/static/socket.io.min.js", headers={"Accept-Encoding": accept} if accept else {})
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
            assert answer.headers["Vary"] == "Accept-Encoding"
            assert answer.headers["Content-Length"] == str(len(body))
            if accept:
                assert answer.headers["Content-Encoding"] == "gzip"
                assert gzip.decompress(body) == script
            else:
                assert answer.headers["Content-Encoding"] is None
                assert body == script


def test_probes_answer_through_nginx_and_on_each_apps_socket_whatever_the_host_and_unlogged(
    cluster: Cluster, nginx_in_front: Nginx, nginx_workdir: Path,
) -> None:
    """A balancer probing by address: through nginx (the app it hashes the prober to) and on
    each app's own socket (as make cluster waits for each: deploy/app_process.py `probe`), 200
    with any Host; 503 "store unavailable" from every app while Redis is hung, 200 after.
    nginx's access log keeps no probe (a probe every few seconds is no news), nor the apps'."""
    import http.client

    def through_nginx(path: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", nginx_in_front.port, timeout=10)
        try:
            connection.request("GET", path, headers={"Host": "10.0.0.5"})
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    assert through_nginx("/healthz") == (200, "ok\n")
    assert through_nginx("/readyz") == (200, "ready\n")
    assert through_nginx("/login")[0] == 421  # nothing else answers to a foreign name
    for app in cluster.apps:
        assert probe(app.where, "/healthz") == (200, "ok")
        assert app.ready() == (200, "ready")
    with redis.Redis.from_url(cluster.redis_url) as client:
        redis_pid = client.info("server")["process_id"]
    os.kill(redis_pid, signal.SIGSTOP)
    try:
        for app in cluster.apps:
            assert app.ready() == (503, "store unavailable")
        assert through_nginx("/readyz") == (503, "store unavailable\n")
    finally:
        os.kill(redis_pid, signal.SIGCONT)

    async def all_ready() -> bool:
        return all(app.ready() == (200, "ready") for app in cluster.apps)

    asyncio.run(eventually(all_ready))
    access_log = (nginx_workdir / "logs" / "access.log").read_text()
    assert "/login" in access_log and "/healthz" not in access_log and "/readyz" not in access_log, access_log
    for app in cluster.apps:
        assert not [line for line in app.log().splitlines() if "/readyz" in line or "/healthz" in line], app.log()


@pytest.mark.parametrize("transports", [["polling"], ["polling", "websocket"], ["websocket"]], ids=["polling", "upgrade", "websocket"])
def test_through_nginx_every_transport_stays_on_one_process(cluster: Cluster, nginx_in_front: Nginx, transports: list[str]) -> None:
    base = nginx_in_front.url

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, base, "ada")
        # The cookie on every request, as a browser sends it (engineio's client would send
        # its `headers` with the handshake only, and the server binds a sid to its session).
        browser = aiohttp.ClientSession(headers={"Cookie": cookie})
        client = socketio.AsyncClient(reconnection=False, http_session=browser)
        chats: asyncio.Queue[Any] = asyncio.Queue()
        client.on("chat", chats.put_nowait)
        await client.connect(base, headers={"Origin": base}, transports=transports, wait_timeout=5)
        for number in range(5):  # several polling round trips: each must reach the same process
            assert (await client.call("whoami", timeout=5))["username"] == "ada"
            await client.emit("chat", {"text": f"hello {number}"})
            assert (await asyncio.wait_for(chats.get(), 5))["text"] == f"hello {number}"
        # (a polling client's graceful disconnect waits for its long poll, up to 25 s)
        await client.eio.disconnect(abort=True)
        await browser.close()

    asyncio.run(scenario())
    assert "Traceback" not in "".join(app.log() for app in cluster.apps)





def listening(where: int | str) -> bool:
    """Whether something accepts connections on this loopback port or Unix socket path."""
    if isinstance(where, str):
        with socket.socket(socket.AF_UNIX) as probe:
            return probe.connect_ex(where) == 0
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", where)) == 0


def test_make_cluster_serves_through_nginx_and_stops_on_ctrl_c(redis_server: Any) -> None:
    cluster = started_make_cluster()
    try:
        url = cluster.url

        async def scenario() -> None:
            async with http_session() as http:
                ada = await WireSocket.connect(http, url, await log_in(http, url, "ada"), origin=url)
                assert (await ada.call("whoami", timeout=5))["username"] == "ada"
                await ada.close()

        asyncio.run(scenario())
        assert cluster.interrupt() == 0, cluster.stderr()
        assert cluster.lines == [f"logs kept in {cluster.kept_logs}", "stopped"] and "Traceback" not in cluster.stderr()
        assert not os.path.exists(cluster.workdir)  # every temporary file went with it, but the logs:
        assert sorted(os.listdir(cluster.kept_logs)) == ["app1.log", "app2.log", "redis.log"]
    finally:
        cluster.close()


def test_the_back_off_doubles_while_a_process_keeps_ending_and_starts_over_after_a_steady_run() -> None:
    backoff = Backoff(first=0.5, cap=4, steady=30)
    assert [backoff.after_run(1) for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    assert backoff.after_run(30) == 0.5  # up long enough: a fresh start
    assert backoff.after_run(0) == 1


def test_how_a_process_ended_is_said_in_words() -> None:
    assert how_it_ended(0) == "exited (status 0)"
    assert how_it_ended(2) == "exited (status 2)"
    assert how_it_ended(-signal.SIGKILL) == "killed by SIGKILL"
    assert how_it_ended(-signal.SIGSEGV) == "killed by SIGSEGV"


def test_make_cluster_starts_again_a_killed_nginx_and_redis_and_serves_on(redis_server: Any) -> None:
    """nginx and Redis are restarted like the app processes: nginx on its port (the worker a
    SIGKILLed master leaves behind is ended), Redis from its append-only file (issue 23 item
    5: it was started empty, and everyone logged in again): a person logged in before Redis
    was killed is still logged in after, by the same cookie, page and socket. Redis's files
    are its own (0600, in a 0700 directory): they hold every session id."""
    cluster = started_make_cluster()
    try:
        url, workdir = cluster.url, cluster.workdir
        nginx_pid = int(Path(workdir, "nginx.pid").read_text())
        redis_port = int(found(r"^port (\d+)", Path(workdir, "redis.conf").read_text(), re.MULTILINE).group(1))
        redis_pid = next(pid for pid in subprocess.run(["pgrep", "-P", str(cluster.process.pid), "redis-server"],
                                                     check=False, capture_output=True, text=True).stdout.split())
        append_only = Path(workdir, "appendonlydir")

        def written(name: str) -> bool:
            """Redis has written `name`'s login to its append-only file (a SIGKILL loses what it
            has not; everysec's fsync matters only to a machine that stops)."""
            return any(name.encode() in part.read_bytes() for part in append_only.glob("*.aof"))

        async def scenario() -> None:
            async with http_session() as http:
                cookie = await log_in(http, url, "ada")
                os.kill(nginx_pid, signal.SIGKILL)
                await cluster.next_line(rf"nginx \(pid {nginx_pid}\) killed by SIGKILL; restarting in 0\.5 s", 30)
                await cluster.next_line(r"nginx back \(pid \d+\)", 30)
                ada = await WireSocket.connect(http, url, cookie, origin=url)  # the session is still there
                assert (await ada.call("whoami", timeout=5))["username"] == "ada"
                await ada.close()
                await eventually(lambda: written("ada"), 30, "Redis wrote the login to its append-only file")
                os.kill(int(redis_pid), signal.SIGKILL)
                await cluster.next_line(rf"redis-server \(pid {redis_pid}\) killed by SIGKILL; restarting in 0\.5 s "
                                        r"\(its data comes back from its append-only file: people stay logged in\)", 30)
                await cluster.next_line(r"redis-server back \(pid \d+\)", 30)

                async def session_opens() -> bool:  # 503 until the app's Redis client is back
                    async with http.get(url + "/api/session", headers={"Cookie": cookie}) as answer:
                        assert answer.status in (200, 503), answer.status  # never 401: logged out
                        return answer.status == 200 and (await answer.json())["username"] == "ada"

                await eventually(session_opens, 30, "ada's cookie opens her session after Redis's restart")
                ada = await WireSocket.connect(http, url, cookie, origin=url)
                assert (await ada.call("whoami", timeout=5))["username"] == "ada"
                await ada.close()
                assert await can_log_in(http, url, "grace")

        asyncio.run(scenario())
        assert Path(workdir, "appendonlydir").stat().st_mode & 0o777 == 0o700
        assert all(part.stat().st_mode & 0o777 == 0o600 for part in append_only.iterdir()), \
            {part.name: oct(part.stat().st_mode) for part in append_only.iterdir()}
        assert cluster.process.poll() is None
        assert cluster.interrupt() == 0, cluster.stderr()
        assert cluster.lines[-1] == "stopped" and "Traceback" not in cluster.stderr()
        nginx_port = int(url.rsplit(":", 1)[1])
        assert not listening(nginx_port) and not listening(redis_port)  # no nginx worker left serving
    finally:
        cluster.close()


async def the_pages_process(cluster: MakeCluster) -> int:
    """The app process (its number) that serves the page: the only one with connections once
    nginx has let go of its idle ones. nginx keeps idle connections to the apps (its upstream
    `keepalive`), also to the app its login page went to by the client's address before the
    page had a cookie; a reload (SIGHUP) closes them, while its old worker keeps the page's
    WebSocket and the new one reaches only the page's process (by its cookie)."""
    os.kill(int(Path(cluster.workdir, "nginx.pid").read_text()), signal.SIGHUP)  # noqa: ASYNC240 (a few bytes, once)
    counts: dict[int, int] = {}

    def one_has_connections() -> bool:
        counts.update({number: connections_to(path) for number, (_, path) in cluster.apps.items()})
        return sum(1 for count in counts.values() if count) == 1

    await eventually(one_has_connections, 30, f"only the page's process has connections from nginx: {counts}")
    return next(number for number, count in counts.items() if count)


async def reconnected_times(page: Any) -> int:
    """How many times the page's socket has opened (its handshake log says each)."""
    return await page.locator("#handshake-log li", has_text="connect: Socket.IO session open").count()


async def chat_arrives(page: Any, text: str) -> None:
    """Type a message and wait until the page shows it, back from a server (any process)."""
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")
    await page.wait_for_selector(f"#chat-messages li:has-text('{text}')")


async def end_the_pages_process(cluster: MakeCluster, page: Any, signum: signal.Signals, ended: str) -> int:
    """Send `signum` to the app process that serves the page, wait for make cluster's two
    lines (it ended; it is back, on the same socket), then for the page to open its socket again
    and for a chat sent after the restart to arrive. Returns the process's number."""
    number = await the_pages_process(cluster)
    pid, path = cluster.apps[number]
    opened = await reconnected_times(page)
    killed = time.monotonic()
    os.kill(pid, signum)
    await cluster.next_line(rf"app {number} \(pid {pid}\) {re.escape(ended)}; restarting in \d+(\.\d+)? s", 30)
    back = await cluster.next_line(rf"app {number} back \(pid (\d+)\)", 30)
    cluster.apps[number] = (int(back.group(1)), path)
    assert listening(path) and cluster.apps[number][0] != pid
    back_after = time.monotonic() - killed

    async def page_reconnected() -> bool:
        return await reconnected_times(page) > opened and await page.get_attribute("#socket-state", "data-state") == "connected"

    await eventually(page_reconnected, 30, "the page reconnected through nginx")
    reconnected_after = time.monotonic() - killed
    await chat_arrives(page, f"said after the {signum.name} of app {number}")
    print(f"{signum.name} to app {number}: back after {back_after:.1f} s; the page connected again (through nginx, "
          f"to either process) after {reconnected_after:.1f} s and chatted after {time.monotonic() - killed:.1f} s")
    return number


@pytest.mark.e2e
@pytest.mark.heavy  # about 30 s (a cluster, a browser, two restarts); run by make test-heavy and CI
def test_make_cluster_restarts_the_pages_process_when_it_ends_and_the_page_reconnects_and_chats(redis_server: Any) -> None:
    """Issue 17: one app process ending (SIGTERM, then SIGKILL) used to stop the whole cluster.
    Now it is started again on its socket while the other serves; a page in Chromium, through
    nginx, reconnects still logged in and chats, and only Ctrl-C stops everything. (SIGTERM
    drains the process first: over 2 s here.)"""
    missing = browser_missing()
    if missing:
        e2e_unavailable(missing)
    from playwright.async_api import async_playwright

    cluster = started_make_cluster("--drain-seconds", "2")
    try:
        url = cluster.url
        ports: list[int | str] = [path for _, path in cluster.apps.values()] + [int(url.rsplit(":", 1)[1])]

        async def scenario() -> None:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
                context = await browser.new_context()
                context.set_default_timeout(30_000)
                page = await context.new_page()
                await page.goto(url + "/login")
                await page.fill("#username", "ada")
                await page.click("#login-form button[type=submit]")
                await page.wait_for_selector("#socket-state[data-state=connected]")
                await chat_arrives(page, "said before any restart")
                first = await end_the_pages_process(cluster, page, signal.SIGTERM, "exited (status 0)")
                log = Path(cluster.workdir, f"app{first}.log").read_text()  # noqa: ASYNC240 (a test's own loop)
                assert "socket of 'ada' from 127.0.0.1 closed" in log  # it was the page's (its login went by address)
                await end_the_pages_process(cluster, page, signal.SIGKILL, "killed by SIGKILL")
                await page.wait_for_selector("#chat-messages li:has-text('said before any restart')")  # history kept
                assert await page.text_content("#current-user") == "ada"
                await browser.close()

        asyncio.run(scenario())
        assert cluster.process.poll() is None  # the cluster never stopped
        assert cluster.interrupt() == 0, cluster.stderr()
        assert cluster.lines[-1] == "stopped" and "Traceback" not in cluster.stderr()
        assert not any(listening(port) for port in ports)
        assert not os.path.exists(cluster.workdir)
    finally:
        cluster.close()


def test_after_every_process_restarts_a_page_reconnects_through_nginx_and_is_accepted(cluster: Cluster, nginx_in_front: Nginx) -> None:
    """The socket.io client reconnects by itself (as the page does); its session is in Redis,
    so whichever process nginx picks accepts it again."""
    base = nginx_in_front.url

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, base, "ada")
        # A browser sends its cookie on every reconnect; python-socketio's client moves a Cookie
        # header into its HTTP session's jar, which it closes on a disconnect unless it is ours.
        browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1, http_session=browser)
        connects: asyncio.Queue[None] = asyncio.Queue()
        client.on("connect", lambda: connects.put_nowait(None))
        await client.connect(base, headers={"Cookie": cookie, "Origin": base}, transports=["websocket"], wait_timeout=5)
        await asyncio.wait_for(connects.get(), 5)
        for app in cluster.apps:
            app.stop()
        for app in cluster.apps:
            app.start()
        started = time.monotonic()
        await asyncio.wait_for(connects.get(), 30)  # reconnected, and accepted
        print(f"reconnected {time.monotonic() - started:.1f} s after the processes were back")
        assert (await client.call("whoami", timeout=5))["username"] == "ada"
        # (a polling client's graceful disconnect waits for its long poll, up to 25 s)
        await client.eio.disconnect(abort=True)
        await browser.close()

    asyncio.run(scenario())


def test_presence_changes_missed_while_redis_was_away_are_reconciled(cluster: Cluster, redis_server: Any) -> None:
    """Presence crosses processes as changes; a change published while Redis is away is lost,
    so each process reads the others' sets again after its subscription comes back (and
    writes its own whole): a page on B ends with the truth of A."""
    a, b = cluster.start(), cluster.start()

    async def scenario() -> None:
        async with http_session() as http:
            leaver = await WireSocket.connect(http, a.url, await log_in(http, a.url, "leaver"), origin=a.url)
            watcher = await WireSocket.connect(http, b.url, await log_in(http, b.url, "watcher"), origin=b.url)
            await watcher.sees_online(["leaver", "watcher"])
            redis_server.stop()
            await leaver.close()  # its leave cannot be published
            redis_server.start()  # empty: every set is gone too
            stayer: WireSocket | None = None
            deadline = time.monotonic() + 30
            while stayer is None:  # logins work again once A's store sees Redis back
                try:
                    stayer_cookie = await log_in(http, a.url, "stayer")
                    stayer = await WireSocket.connect(http, a.url, stayer_cookie, origin=a.url)
                except (RuntimeError, Refused):
                    assert time.monotonic() < deadline, "A never served again"
                    await asyncio.sleep(0.5)
            await watcher.sees_online(["stayer", "watcher"], timeout=30)
            await stayer.close()
            await watcher.close()

    asyncio.run(scenario())
    for app in (a, b):
        assert "Traceback" not in app.log()


def listening_tcp_inodes() -> set[str]:
    """The inodes of every listening TCP socket on this machine (IPv4 and IPv6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            inodes.update(row.split()[9] for row in rows if row.split()[3] == "0A")  # 0A: LISTEN
    return inodes


def needs_root_to_be_another_user() -> None:
    if os.geteuid() != 0:
        pytest.skip("becoming another local user (nobody) needs root; run as root to attack as another user")


# As `nobody`: try to read a process's memory, as a debugger would (its first readable
# mapping through /proc/PID/maps and /proc/PID/mem). Prints "read" or "refused <error>".
READ_MEMORY = """
import sys
pid = sys.argv[1]
try:
    with open(f"/proc/{pid}/maps") as maps:
        start = next(int(line.split("-")[0], 16) for line in maps if line.split()[1].startswith("r"))
    with open(f"/proc/{pid}/mem", "rb") as memory:
        memory.seek(start)
        memory.read(4096)
    print("read")
except OSError as error:
    print("refused", error.strerror)
"""

# As `nobody`: connect to a Unix socket. Prints "connected" or "refused <error>".
CONNECT = """
import socket, sys
try:
    socket.socket(socket.AF_UNIX).connect(sys.argv[1])
    print("connected")
except OSError as error:
    print("refused", error.strerror)
"""


def test_make_cluster_run_as_root_gives_nginx_workers_a_user_of_their_own_whose_memory_nobody_reads(redis_server: Any) -> None:
    """Issue 21 item 8: nginx started by root ran its workers as `nobody` (and nginx makes its
    workers ptrace-able by their user), so any other `nobody` process read a live session
    cookie out of a worker's memory and replayed it. Now the workers are NGINX_USER's, which
    nothing else runs as: a `nobody` process is refused their memory."""
    needs_root_to_be_another_user()
    cluster = started_make_cluster()
    try:
        url = cluster.url
        asyncio.run(logged_in_socket_call(url))  # a cookie has passed through the worker
        master = int(Path(cluster.workdir, "nginx.pid").read_text())
        workers = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(master)], check=False, capture_output=True, text=True).stdout.split()]
        assert workers
        for pid in workers:
            uid = int(found(r"^Uid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE).group(1))
            assert pwd.getpwuid(uid).pw_name == NGINX_USER
            attempt = as_nobody(READ_MEMORY, str(pid))
            assert attempt.stdout.startswith("refused"), (attempt.stdout, attempt.stderr)
        # The check itself can succeed: as nobody, a nobody process's memory is readable.
        nobody = pwd.getpwnam("nobody")
        victim = subprocess.Popen(["/usr/bin/python3", "-c", "import time; time.sleep(60)"], user=nobody.pw_uid,
                                  group=nobody.pw_gid, extra_groups=[], cwd="/")
        try:
            assert as_nobody(READ_MEMORY, str(victim.pid)).stdout == "read\n"
        finally:
            victim.kill()
            victim.wait()
    finally:
        cluster.close()


async def logged_in_socket_call(url: str) -> None:
    async with http_session() as http:
        ada = await WireSocket.connect(http, url, await log_in(http, url, "ada"), origin=url)
        assert (await ada.call("whoami", timeout=5))["username"] == "ada"
        await ada.close()


def test_make_cluster_serves_its_apps_on_unix_sockets_with_no_tcp_port_and_the_client_address_from_nginx(redis_server: Any) -> None:
    """Issue 21 item 12: the app processes listened on loopback ports with --behind-proxy, so
    any local user sent logins straight to one with a made-up X-Real-Ip. Now they listen on
    Unix sockets only (no TCP port at all), and the address they see is nginx's word."""
    cluster = started_make_cluster()
    try:
        asyncio.run(logged_in_socket_call(cluster.url))
        listening_now = listening_tcp_inodes()
        for number, (pid, path) in cluster.apps.items():
            assert listening(path)
            assert not socket_inodes_of(pid) & listening_now, f"app {number} listens on a TCP port"
        logs = "".join(Path(cluster.workdir, f"app{number}.log").read_text() for number in cluster.apps)
        assert "login: 'ada' from 127.0.0.1" in logs  # X-Real-Ip set by nginx, not the socket's 0.0.0.0
    finally:
        cluster.close()


def test_make_cluster_app_sockets_refuse_another_local_user(redis_server: Any) -> None:
    """Issue 21 item 12: as `nobody`, connecting to an app's socket is refused (its directory
    is for nginx's workers' group only), while nginx's port answers anyone."""
    needs_root_to_be_another_user()
    cluster = started_make_cluster()
    try:
        for _, path in cluster.apps.values():
            attempt = as_nobody(CONNECT, path)
            assert attempt.stdout.strip() == "refused Permission denied", (attempt.stdout, attempt.stderr)
        with socket.socket() as probe:  # nginx: the one way in
            assert probe.connect_ex(("127.0.0.1", int(cluster.url.rsplit(":", 1)[1]))) == 0
    finally:
        cluster.close()


def test_make_cluster_holds_localhost_on_both_loopbacks(redis_server: Any) -> None:
    """Issue 21 item 11, for make cluster: the apps answer to `localhost`, but nginx listened on
    127.0.0.1 only, so another local user could bind [::1] on its port and receive what a
    browser sent to http://localhost:PORT (cookies included). Now nginx holds both: binding
    [::1]:PORT fails, and a request to [::1] with Host localhost reaches the app."""
    if not has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1): nobody can take localhost there")
    cluster = started_make_cluster()
    try:
        port = int(cluster.url.rsplit(":", 1)[1])
        with socket.socket(socket.AF_INET6) as squatter:
            with pytest.raises(OSError) as refused:
                squatter.bind(("::1", port))
            assert refused.value.errno == errno.EADDRINUSE
        with socket.create_connection(("::1", port), timeout=10) as client:
            client.sendall(f"GET /login HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    finally:
        cluster.close()


def test_make_cluster_a_60_kib_polling_post_goes_through_nginx_and_no_sid_reaches_its_logs(redis_server: Any) -> None:
    """Issue 21 items 8 and 1: a polling POST over 16 KiB through make cluster's nginx (run as
    root) was a 500, its temporary file in a directory its workers could not write, and that
    error line carried the request's `sid=`; nginx's access log, when on, kept every query
    string. Now a 60 KiB POST is the app's answer, and after it, a 413 and a flood of 429s
    with sids, no sid is in any of nginx's logs (the access log records each request, with
    its path only)."""
    cluster = started_make_cluster()
    try:
        url = cluster.url
        invented = "AbCdEfGhIjKlMnOpQrSt"  # a sid-shaped value nobody was given

        async def scenario() -> str:
            async with http_session() as http:
                cookie = await log_in(http, url, "ada")
                headers = {"Cookie": cookie, "Origin": url}
                async with http.get(url + SOCKETIO_POLLING, headers=headers) as opening:
                    assert opening.status == 200
                    sid = opening_sid(await opening.text())
                polling = f"{url}{SOCKETIO_POLLING}&sid={sid}"
                async with http.post(polling, data="40", headers=headers) as connect:
                    assert connect.status == 200
                big = '42["no such event","' + "x" * (60 * 1024 - 40) + '"]'
                async with http.post(polling, data=big, headers=headers) as answer:
                    assert answer.status == 200, (answer.status, await answer.text())
                async with http.post(polling, data="x" * (70 * 1024), headers=headers) as too_large:
                    assert too_large.status == 413
                statuses = await bounded(300, 30, lambda _: status_of(http, f"{url}{SOCKETIO_POLLING}&sid={invented}"))
                assert 429 in statuses  # nginx's limit_req refused some (each used to be an error line)
                return sid

        sid = asyncio.run(scenario())
        logs = {path.name: path.read_text() for path in Path(cluster.workdir, "logs").iterdir()}
        assert set(logs) == {"access.log", "error.log", "nginx.log"}
        for name, text in logs.items():
            assert sid not in text and invented not in text and "sid=" not in text, f"{name}:\n{text[-2000:]}"
        access = logs["access.log"]
        assert '"POST /socket.io/ HTTP/1.1" 200 ' in access and '"POST /socket.io/ HTTP/1.1" 413 ' in access
        assert '"GET /socket.io/ HTTP/1.1" 429 ' in access
    finally:
        cluster.close()


async def status_of(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as answer:
        return answer.status


@pytest.fixture
def nginx_trusting_forwarded_for(cluster: Cluster, nginx_workdir: Path) -> Iterator[Nginx]:
    """deploy/nginx.conf in front of one app, except that nginx takes the client's address from
    X-Forwarded-For (realip, from 127.0.0.1 only): one test is then many clients, IPv6 ones
    included, which loopback alone cannot be."""
    port = free_port()
    cluster.start("--behind-proxy", "--allowed-host", f"127.0.0.1:{port}", unix_socket=nginx_workdir / "sockets" / "app1.sock")
    try:
        proxy = Nginx(nginx_workdir, [cluster.apps[0].where], port=port, forwarded_for_from_loopback=True)
    except ServiceMissing as missing:
        e2e_unavailable(str(missing))
    yield proxy
    proxy.stop()


@pytest.mark.parametrize(("clients", "refused"), [
    ([f"2001:db8:1:2:{n:x}::{n:x}" for n in range(1, 21)], True),  # one /64, twenty addresses
    ([f"2001:db8:1:{n:x}::1" for n in range(1, 21)], False),  # twenty /64s
    ([f"10.0.0.{n}" for n in range(1, 21)], False),  # twenty IPv4 addresses
    (["10.0.0.1"] * 20, True),
    ([f"::ffff:10.0.0.{n}" for n in range(1, 21)], False),  # IPv4-mapped: twenty IPv4 clients, not one ::/64
    (["::ffff:10.0.0.1"] * 20, True),
], ids=["one-ipv6-64", "ipv6-64s", "ipv4-addresses", "one-ipv4-address", "ipv4-mapped-addresses", "one-ipv4-mapped-address"])
def test_nginx_counts_an_ipv6_64_as_one_client_for_its_login_limit(nginx_trusting_forwarded_for: Nginx, clients: list[str], refused: bool) -> None:
    """Issue 21 item 4: nginx.conf keyed its limits by the whole IPv6 address, so one /64 (a
    host's usual share) had as many login allowances as addresses. Now twenty logins from one
    /64 meet nginx's 429 after its burst (30 a minute, burst 10), as from one IPv4 address;
    twenty /64s or twenty IPv4 addresses do not."""
    url = nginx_trusting_forwarded_for.url

    async def scenario() -> list[int]:
        async with http_session() as http:
            statuses = []
            for client in clients:
                async with http.post(url + "/login", data={"username": "x"}, headers={"X-Forwarded-For": client}) as answer:
                    statuses.append(answer.status)
                    body = await answer.text()
                    assert answer.status != 429 or "nginx" in body  # nginx's, not the app's (its rates are off here)
            return statuses

    statuses = asyncio.run(scenario())
    assert (429 in statuses) == refused, statuses
    if refused:
        assert statuses.count(429) >= 20 - 12, statuses  # 1 + a burst of 10 (+1 if a refill came meanwhile)


@pytest.mark.process
def test_an_app_on_a_unix_socket_keeps_it_from_a_second_process_and_removes_it_when_stopped(tmp_path: Path) -> None:
    """--unix-socket (what make cluster's apps listen on): the socket is 0660; a second
    process on the same path is refused with one line rather than taking it over (Tornado
    alone would unlink a live socket); a clean stop removes it; without --behind-proxy and
    --allowed-host it is refused, since a Unix socket has neither a client address nor a name."""
    path = tmp_path / "app.sock"
    app = AppProcess(tmp_path / "app.log", "--behind-proxy", "--allowed-host", "chat.example.com", unix_socket=path)
    try:
        assert oct(path.stat().st_mode & 0o777) == "0o660"
        command = [sys.executable, "-m", "tornado_app", "--unix-socket", str(path)]
        for extra, message in [(["--behind-proxy", "--allowed-host", "x"], f"{path} is already in use"),
                               (["--allowed-host", "x"], "--unix-socket is for a proxy in front: add --behind-proxy"),
                               (["--behind-proxy"], "--unix-socket needs --allowed-host")]:
            second = subprocess.run(command + extra, cwd=ROOT, check=False, capture_output=True, text=True, timeout=30)
            assert second.returncode == 2 and message in second.stderr and "Traceback" not in second.stderr, second.stderr
        assert listening(str(path))  # still the first one's
    finally:
        assert app.stop() == 0
    assert not path.exists()
    assert "Traceback" not in app.log()
