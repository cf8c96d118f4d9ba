"""A replicated Redis behind Sentinel (issue 23 item 5): every Redis client of the app takes a
`redis+sentinel://` URL, and a failover costs seconds of 503 with Retry-After, no traceback,
no app restart, and no session written before it.

The URL tests need nothing; the others start a real primary, replica and three Sentinels
(tests/support/sentinel.py) and real app processes, and skip where redis-server is missing
(fail under REQUIRE_E2E=1).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from deploy.services import ROOT, SENTINEL_SERVICE, ReplicatedRedis, ask_redis, free_port, probe
from tests.support.cluster import SECRET, Cluster, MakeCluster
from tests.support.e2e import e2e_unavailable
from tests.support.forms import can_log_in, http_session, log_in, log_out
from tests.support.matching import found
from tests.support.sentinel import replica_of, replicated_now
from tests.support.waiting import eventually
from tests.support.wire import WireSocket
from tornado_app.redis.urls import BadRedisURL, SentinelURL, parse_sentinel_url, redacted

PASSWORD = "hunter2/with@odd%2Fchars"


@pytest.mark.parametrize("url, read", [
    ("redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/0/mymaster",
     SentinelURL(((("127.0.0.1", 26379)), ("127.0.0.1", 26380)), "mymaster", 0, None, "pw")),
    ("redis+sentinel://ada:p%40ss@sentinel-a:1,[::1]:2,sentinel-c:3/2/site",
     SentinelURL((("sentinel-a", 1), ("::1", 2), ("sentinel-c", 3)), "site", 2, "ada", "p@ss")),
    ("redis+sentinel://10.0.0.1:26379/0/mymaster", SentinelURL((("10.0.0.1", 26379),), "mymaster")),
    ("redis+sentinel://only-a-password@h:1/0/m", SentinelURL((("h", 1),), "m", 0, None, "only-a-password")),
])
def test_a_sentinel_url_is_read_with_its_password_decoded(url: str, read: SentinelURL) -> None:
    parsed = parse_sentinel_url(url)
    assert parsed == read and parsed is not None
    assert parsed.password is None or parsed.password not in repr(parsed)
    assert "@" not in parsed.without_secrets() and (parsed.password or "@") not in parsed.without_secrets()


@pytest.mark.parametrize("url", ["redis://:pw@127.0.0.1:6379/0", "rediss://h:1/0", "unix:///run/redis.sock"])
def test_a_single_servers_url_is_no_sentinel_url(url: str) -> None:
    assert parse_sentinel_url(url) is None


@pytest.mark.parametrize("url", [
    f"redis+sentinel://:{PASSWORD}@127.0.0.1:26379/0",  # no service name
    f"redis+sentinel://:{PASSWORD}@127.0.0.1:26379/mymaster",  # no DB
    f"redis+sentinel://:{PASSWORD}@127.0.0.1:26379",
    f"redis+sentinel://:{PASSWORD}@127.0.0.1/0/mymaster",  # no port
    f"redis+sentinel://:{PASSWORD}@127.0.0.1:port/0/mymaster",
    f"redis+sentinel://:{PASSWORD}@127.0.0.1:1,/0/mymaster",
    f"redis+sentinel://:{PASSWORD}@127.0.0.1:1/0/mymaster?ssl=true",
    f"memcached://:{PASSWORD}@127.0.0.1:11211",
])
def test_a_bad_redis_url_is_refused_in_one_line_without_its_password(url: str) -> None:
    with pytest.raises(BadRedisURL) as refused:
        parse_sentinel_url(url)
    message = str(refused.value)
    assert "\n" not in message and "hunter2" not in message and "odd" not in message, message


@pytest.mark.parametrize("url, shown", [
    ("redis+sentinel://:hunter2@127.0.0.1:1,127.0.0.1:2/0/m", "redis+sentinel://***@127.0.0.1:1,127.0.0.1:2/0/m"),
    ("redis+sentinel://ada:hunter2@h:1,h:2/0/m", "redis+sentinel://ada:***@h:1,h:2/0/m"),
    ("redis+sentinel://hunter2@h:1/0/m", "redis+sentinel://***@h:1/0/m"),
    ("redis+sentinel://:hun@ter2@h:1,h:2/0/m", "redis+sentinel://***@h:1,h:2/0/m"),
])
def test_redacted_hides_a_sentinel_urls_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


@pytest.mark.parametrize("url", [
    f"redis+sentinel://:{PASSWORD}@127.0.0.1:26379/0",
    f"redis+sentinel://:{PASSWORD}@127.0.0.1:1/0/mymaster",  # well formed, but no Sentinel there
])
@pytest.mark.process
def test_the_command_line_says_in_one_line_what_is_wrong_with_a_sentinel_url(url: str) -> None:
    """Before: a traceback (redis-py's from_url does not know the scheme), or a screenful of
    the Sentinels' clients' repr."""
    done = subprocess.run([sys.executable, "-m", "tornado_app", "--port", "0"], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=60, env={"TORNADO_APP_COOKIE_SECRET": SECRET, "TORNADO_APP_REDIS_URL": url, "PATH": ""})
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tornado-app: error:"), done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr + done.stdout
    assert len(lines[0]) < 400, lines[0]


@pytest.mark.process
def test_the_launcher_says_in_one_line_what_is_wrong_with_a_sentinel_url() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "launcher.py"), "--no-window", "--redis-url", "redis+sentinel://h:1/0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
                          env={"TORNADO_APP_COOKIE_SECRET": SECRET, "PATH": ""})
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        ("launcher.py: error: argument --redis-url: a redis+sentinel:// URL ends with /DB/SERVICE (the Sentinels' name for the primary), "
         "e.g. redis+sentinel://:PASSWORD@127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/0/mymaster")], done.stderr


def test_two_processes_on_a_sentinel_url_log_in_connect_and_chat(replicated_redis: ReplicatedRedis, tmp_path: Path) -> None:
    cluster = Cluster(replicated_redis.url, tmp_path)
    a, b = cluster.start(), cluster.start()

    async def scenario() -> None:
        async with http_session() as http:
            ada = await WireSocket.connect(http, a.url, await log_in(http, a.url, "ada"), origin=a.url)
            grace = await WireSocket.connect(http, b.url, await log_in(http, b.url, "grace"), origin=b.url)
            await ada.sees_online(["ada", "grace"])
            answer = await ada.call("chat", {"text": "through the Sentinels", "id": "m1"})
            assert answer["ok"] is True, answer
            for reader in (ada, grace):
                assert (await reader.next("chat"))["text"] == "through the Sentinels"
            for socket in (ada, grace):
                await socket.close()

    try:
        asyncio.run(scenario())
        assert [probe(app.where) for app in (a, b)] == [(200, "ready")] * 2
    finally:
        cluster.stop()
    assert_clean(replicated_redis, a.log(), b.log())


def assert_clean(replicated: ReplicatedRedis, *logs: str) -> None:
    for log in logs:
        assert "Traceback" not in log, log[-3000:]
        assert replicated.password not in log


class ReadinessWatch:
    """An app's /readyz, asked every 0.1 s in a thread (as a balancer probes), kept in order;
    and its metrics' redis_up, if it has a `metrics_port`."""

    def __init__(self, where: str, metrics_port: int | None = None) -> None:
        self.where = where
        self.metrics_port = metrics_port
        self.seen: list[int] = []
        self.redis_up: list[str] = []
        self.pings: list[float] = []  # the metrics' count of PINGs answered
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.seen.append(probe(self.where, timeout=5)[0])
            except OSError:
                self.seen.append(0)
            if self.metrics_port is not None:
                try:
                    text = probe(f"127.0.0.1:{self.metrics_port}", "/metrics", timeout=5)[1]
                except OSError:
                    text = ""
                self.redis_up += re.findall(r"^tornado_app_redis_up (\S+)$", text, re.MULTILINE)
                self.pings += [float(count) for count in re.findall(r"^tornado_app_redis_ping_seconds_count (\S+)$", text, re.MULTILINE)]
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def page_answers(http: aiohttp.ClientSession, url: str, cookie: str, answers: list[tuple[int, str | None]],
                       stop: asyncio.Event) -> None:
    """A person reloading the page every 0.1 s: each status and its Retry-After."""
    while not stop.is_set():
        async with http.get(url + "/", headers={"Cookie": cookie}) as page:
            await page.read()
            answers.append((page.status, page.headers.get("Retry-After")))
        await asyncio.sleep(0.1)


def test_a_killed_primary_fails_over_with_503s_and_retry_after_and_everything_works_after_without_an_app_restart(
    replicated_redis: ReplicatedRedis, tmp_path: Path,
) -> None:
    """SIGKILL the primary while two processes serve people who chat: readiness drops to 503
    and comes back by itself; a page asked meanwhile gets 503 with Retry-After; the sessions
    made before (replicated: WAIT) still open after; logins, connects and chat work after on
    both processes, across them, with the same processes; no traceback, no password in a log.
    The old primary, started again, comes back as a replica of the new one."""
    cluster = Cluster(replicated_redis.url, tmp_path)
    metrics_port = free_port()
    a, b = cluster.start("--metrics-address", f"127.0.0.1:{metrics_port}"), cluster.start()
    watches = [ReadinessWatch(a.where, metrics_port), ReadinessWatch(b.where)]
    first_primary = replicated_redis.primary()
    pings_at_kill: list[float] = []

    async def scenario() -> None:
        async with http_session() as http:
            ada_cookie = await log_in(http, a.url, "ada")
            grace_cookie = await log_in(http, b.url, "grace")
            ada = await WireSocket.connect(http, a.url, ada_cookie, origin=a.url)
            grace = await WireSocket.connect(http, b.url, grace_cookie, origin=b.url)
            assert (await ada.call("chat", {"text": "before", "id": "m0"}))["ok"] is True
            for reader in (ada, grace):
                assert (await reader.next("chat"))["text"] == "before"
            replicated_now(replicated_redis)

            answers: list[tuple[int, str | None]] = []
            stop_reloading = asyncio.Event()
            reloading = asyncio.ensure_future(page_answers(http, b.url, grace_cookie, answers, stop_reloading))
            try:
                await failover_and_after(http, ada, grace, ada_cookie, grace_cookie, answers, stop_reloading)
            finally:
                stop_reloading.set()
                await reloading

    async def failover_and_after(http: aiohttp.ClientSession, ada: WireSocket, grace: WireSocket, ada_cookie: str,
                                 grace_cookie: str, answers: list[tuple[int, str | None]], stop_reloading: asyncio.Event) -> None:
        await eventually(lambda: watches[0].redis_up[-1:] == ["1.0"], within=30, what="the metrics' first PING (every 5 s)")
        pings_at_kill.append(watches[0].pings[-1])
        killed_at = time.monotonic()
        first_primary.kill()
        await eventually(lambda: any(503 in watch.seen for watch in watches), within=30,
                         what="a readiness probe says 503")
        await eventually(lambda: replicated_redis.primary_port() != first_primary.port, within=30,
                         what="the Sentinels promote the replica")
        await eventually(lambda: all(watch.seen[-1:] == [200] for watch in watches), within=30,
                         what="both processes ready again, by themselves")
        print(f"ready again {time.monotonic() - killed_at:.1f} s after the kill")

        # Chat across the processes again (python-socketio's listeners resubscribe after a
        # back-off: a broadcast before that reaches only its own process, so ask until one
        # reaches both).
        tries = iter(range(1000))

        async def chat_reaches(sender: WireSocket, reader: WireSocket) -> bool:
            answer = await sender.call("chat", {"text": "after", "id": f"after-{next(tries)}"}, timeout=15)
            if not answer.get("ok"):
                return False
            try:
                return (await reader.next("chat", timeout=2))["text"] == "after"
            except TimeoutError:
                return False

        await eventually(lambda: chat_reaches(ada, grace), within=45, what="a chat from A reaches B after the failover")
        await eventually(lambda: chat_reaches(grace, ada), within=45, what="a chat from B reaches A after the failover")
        print(f"chat across the processes again {time.monotonic() - killed_at:.1f} s after the kill")
        await asyncio.sleep(1)
        for socket in (ada, grace):
            while socket.pending("chat"):
                await socket.next("chat")  # the tries' own copies, and copies of earlier tries
        stop_reloading.set()
        refused = [answer for answer in answers if answer[0] != 200]
        print(f"page reloads: {len(answers)}, refused meanwhile: {refused[:3]}... ({len(refused)})")
        assert refused and all(answer == (503, "5") for answer in refused), refused

        # The sessions of before, on either process; a new login, a new socket, chat.
        for url, cookie, name in ((a.url, grace_cookie, "grace"), (b.url, ada_cookie, "ada")):
            again = await WireSocket.connect(http, url, cookie, origin=url)
            assert (await again.call("whoami"))["username"] == name
            await again.close()
        carol = await WireSocket.connect(http, b.url, await log_in(http, b.url, "carol"), origin=b.url)
        answer = await carol.call("chat", {"text": "carol after", "id": "c1"})
        assert answer["ok"] is True, answer
        for reader in (ada, grace, carol):
            assert (await reader.next("chat"))["text"] == "carol after"
        # Grace logs out on A: her socket on B is closed at once, told by the bus's channel,
        # subscribed again on the new primary (the sweep, every 30 s, would be too late).
        assert await log_out(http, a.url, grace_cookie) == 303
        await asyncio.wait_for(grace.closed.wait(), 5)
        for socket in (ada, carol):
            await socket.close()

    try:
        asyncio.run(scenario())
        # The old primary, started again, is turned into a replica of the new one.
        first_primary.start()
        new_port = replicated_redis.primary_port()

        asyncio.run(eventually(lambda: replica_of(first_primary.port, replicated_redis.password, new_port), within=40,
                               what="the old primary comes back as a replica"))
    finally:
        for watch in watches:
            watch.stop()
        cluster.stop()
    for watch in watches:
        assert 503 in watch.seen and watch.seen[-1] == 200, watch.seen
    # The metrics' PING (every 5 s: the outage may fall between two) goes through the Sentinels
    # too: answered before, and by the new primary after.
    assert watches[0].redis_up[-1] == "1.0", watches[0].redis_up
    assert watches[0].pings[-1] > pings_at_kill[0] > 0, (pings_at_kill, watches[0].pings[-1])
    assert a.process.returncode == 0 and b.process.returncode == 0  # the same processes throughout, stopped by us
    assert_clean(replicated_redis, a.log(), b.log())
    assert "session store unavailable" in a.log() + b.log() and "session store is back" in a.log() + b.log()


def test_a_primary_demoted_under_open_connections_costs_503s_and_no_500(replicated_redis: ReplicatedRedis, tmp_path: Path) -> None:
    """SENTINEL FAILOVER: the primary becomes a replica while the apps' connections to it stay
    open, and a write there is refused READONLY. Through Sentinel, redis-py drops such a
    connection and asks the Sentinels again; the logins made meanwhile get a 503 at worst,
    never a 500, and log in once the new primary answers."""
    cluster = Cluster(replicated_redis.url, tmp_path)
    a = cluster.start()
    first = replicated_redis.primary_port()

    async def scenario() -> None:
        async with http_session() as http:
            await log_in(http, a.url, "before")  # the pool holds connections to the primary
            assert ask_redis(replicated_redis.sentinels[0].port, replicated_redis.password, "SENTINEL", "FAILOVER",
                             SENTINEL_SERVICE) == "OK"
            statuses: list[int] = []

            async def logs_in() -> bool:
                async with http.get(a.url + "/login") as page:
                    html = await page.text()
                    xsrf = page.cookies["_xsrf"].value
                token = html.split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
                async with http.post(a.url + "/login", data={"_xsrf": token, "username": f"p{len(statuses)}"},
                                     headers={"Cookie": f"_xsrf={xsrf}"}, allow_redirects=False) as response:
                    statuses.append(response.status)
                    assert response.status in (303, 503), response.status
                    assert response.status == 303 or response.headers.get("Retry-After") == "5"
                return replicated_redis.primary_port() != first and response.status == 303

            await eventually(logs_in, within=30, what="a login after the Sentinels' failover")
            print("logins during the failover:", statuses)

    try:
        asyncio.run(scenario())
    finally:
        cluster.stop()
    assert_clean(replicated_redis, a.log())


def test_a_plain_url_to_a_replica_answers_503_not_500(replicated_redis: ReplicatedRedis, tmp_path: Path) -> None:
    """A redis:// URL whose server is (or became) a replica, without Sentinel to ask: READONLY
    on every write counts as the store being away (503 with Retry-After, said once in the
    log), not a 500 with a traceback per request."""
    primary = replicated_redis.primary_port()
    replica = next(server for server in replicated_redis.servers if server.port != primary)
    cluster = Cluster(f"redis://:{replicated_redis.password}@127.0.0.1:{replica.port}/0", tmp_path)
    a = cluster.start()

    async def scenario() -> None:
        async with http_session() as http:
            async with http.get(a.url + "/login") as page:
                html = await page.text()
                xsrf = page.cookies["_xsrf"].value
            token = html.split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
            for name in ("ada", "grace"):
                async with http.post(a.url + "/login", data={"_xsrf": token, "username": name},
                                     headers={"Cookie": f"_xsrf={xsrf}"}, allow_redirects=False) as response:
                    assert (response.status, response.headers.get("Retry-After")) == (503, "5")

    try:
        asyncio.run(scenario())
    finally:
        cluster.stop()
    assert_clean(replicated_redis, a.log())
    assert a.log().count("session store unavailable") == 1, a.log()


def pid_of_redis(port: int) -> int:
    """The pid of the redis-server on 127.0.0.1:`port` (make cluster's own child), by the
    title it gives itself: `redis-server 127.0.0.1:PORT`."""
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").split() if entry.name.isdigit() else []
        except OSError:
            continue
        if title[:2] and title[0].endswith(b"redis-server") and title[1:2] == [f"127.0.0.1:{port}".encode()]:
            return int(entry.name)
    raise AssertionError(f"no redis-server on port {port}")


@pytest.mark.process
def test_make_cluster_redis_ha_serves_and_fails_over_a_killed_primary() -> None:
    """`make cluster ARGS=--redis-ha`: the apps on a primary, a replica and three Sentinels; a
    login and a chat through nginx; the primary killed: the Sentinels promote the replica, a
    login works again with the same app processes, and the old primary is started again
    (after its wait) as a replica of the new one. Its password is in no line it prints."""
    cluster = MakeCluster("--processes", "2", "--port", "0", "--redis-ha")
    try:
        if not cluster.serving:
            if "not installed" in cluster.stderr():
                e2e_unavailable(cluster.stderr().strip())
            pytest.fail(f"make cluster did not start: {cluster.first_line!r} {cluster.stderr()}")
        assert "Redis at redis+sentinel://***@127.0.0.1:" in cluster.first_line, cluster.first_line
        url = cluster.url
        replicated = Path(cluster.workdir) / "redis-ha"
        password = found(r'^requirepass "(.*)"$', (replicated / "sentinel-1" / "sentinel.conf").read_text(), re.MULTILINE).group(1)
        sentinel_port = int(found(r"^port (\d+)$", (replicated / "sentinel-1" / "sentinel.conf").read_text(), re.MULTILINE).group(1))

        def primary_port() -> int:
            return int(ask_redis(sentinel_port, password, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE)[1])

        for entry in Path("/proc").iterdir():  # no command line holds the password
            try:
                assert password.encode() not in (entry / "cmdline").read_bytes(), entry
            except OSError:
                continue
        first = primary_port()
        number = next(n for n in (1, 2) if f"port {first}\n" in (replicated / f"redis-{n}" / "redis.conf").read_text())
        app_pids = dict(cluster.apps)

        async def scenario() -> None:
            async with http_session() as http:
                ada = await WireSocket.connect(http, url, await log_in(http, url, "ada"), origin=url)
                assert (await ada.call("chat", {"text": "before", "id": "m0"}))["ok"] is True
                await ada.close()
                os.kill(pid_of_redis(first), signal.SIGKILL)
                await cluster.next_line(rf"redis {number} \(pid \d+\) killed by SIGKILL; restarting in 5 s.*")
                await eventually(lambda: primary_port() != first, within=30, what="the Sentinels promote the replica")

                await eventually(lambda: can_log_in(http, url, "grace"), within=30, what="a login through nginx after the failover")
                grace = await WireSocket.connect(http, url, await log_in(http, url, "grace"), origin=url)
                assert (await grace.call("chat", {"text": "after", "id": "g1"}))["ok"] is True
                await grace.close()
                await cluster.next_line(rf"redis {number} back \(pid \d+\)")

                await eventually(lambda: replica_of(first, password, primary_port()), within=40,
                                 what="the old primary comes back as a replica")
            # The config files (with the password) the Sentinels had rewritten are still 0600.
            modes = {str(path.relative_to(replicated)): path.stat().st_mode & 0o777 for path in replicated.rglob("*.conf")}
            assert len(modes) == 5 and set(modes.values()) == {0o600}, modes

        asyncio.run(scenario())
        # No app ended or restarted (its own warnings, "app 1: ...", are printed too).
        assert not any(re.match(r"app \d+ (\(pid \d+\)|back)", line) for line in cluster.lines), cluster.lines
        for pid, _ in app_pids.values():
            os.kill(pid, 0)  # the same app processes throughout
        logs = [path.read_text() for path in Path(cluster.workdir).rglob("app*.log")]
        assert logs and not any("Traceback" in log or password in log for log in logs)
        assert cluster.interrupt() == 0
        output = cluster.first_line + "\n".join(cluster.lines) + cluster.stderr()
        assert password not in output and "Traceback" not in output, output
    finally:
        cluster.close()
