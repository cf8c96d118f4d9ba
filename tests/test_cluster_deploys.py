"""nginx in front of several app processes, as make cluster runs it, while processes come and
go (issue 23): a client kept on one process by its session cookie, so that the people behind
one address spread over the processes; a process that is draining, restarting or marked
`down` gets no new client, and nobody waits for nginx's `fail_timeout`; and make cluster's
rolling restart (`kill -USR1`), which logs nobody out and never leaves the site without a
process.

They skip with the reason where redis-server or nginx is missing, and fail instead under
REQUIRE_E2E=1.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Collection, Iterator
from pathlib import Path

import aiohttp
import pytest
import socketio

import deploy.cluster as cluster_module
from deploy import rolling_restart
from deploy.cluster import Supervised
from deploy.rolling_restart import RestartRequests, RollingRestart
from deploy.services import (
    NGINX_TEMPLATE,
    Nginx,
    ServiceMissing,
    free_port,
    nginx_site,
)
from tests.support.cluster import Cluster
from tests.support.e2e import e2e_unavailable
from tests.support.forms import http_session, log_in
from tests.support.make_cluster import started_make_cluster
from tests.support.waiting import eventually
from tests.support.wire import WireSocket

PEOPLE = 20  # sessions over two processes: all on one by chance has a probability of 2 in a million


def start_behind_nginx(cluster: Cluster, workdir: Path, *args: str) -> Nginx:
    """Two app processes on Unix sockets (with `args`), nginx in front with deploy/nginx.conf's
    settings, except that it takes a client's address from X-Forwarded-For (from loopback
    only): the people log in from addresses of their own, under nginx's per-address login
    limit (30 a minute), and then open their sockets from one address, 127.0.0.1."""
    port = free_port()
    for number in (1, 2):
        cluster.start("--behind-proxy", "--allowed-host", f"127.0.0.1:{port}", *args,
                      unix_socket=workdir / "sockets" / f"app{number}.sock")
    try:
        return Nginx(workdir, [app.where for app in cluster.apps], port=port, forwarded_for_from_loopback=True)
    except ServiceMissing as missing:
        e2e_unavailable(str(missing))
        raise


@pytest.fixture
def behind_nginx(cluster: Cluster, nginx_workdir: Path) -> Iterator[Nginx]:
    proxy = start_behind_nginx(cluster, nginx_workdir)
    yield proxy
    proxy.stop()


async def log_in_people(http: aiohttp.ClientSession, url: str, count: int = PEOPLE) -> dict[str, str]:
    """`count` people logged in through nginx, each from an address of their own: name -> cookie."""
    return {f"p{n:02d}": await _log_in_from(http, url, f"p{n:02d}", f"10.0.7.{n + 1}") for n in range(count)}


async def _log_in_from(http: aiohttp.ClientSession, url: str, name: str, address: str) -> str:
    """log_in, with every request of it coming from `address` (X-Forwarded-For)."""
    headers = {"X-Forwarded-For": address}
    async with http.get(url + "/login", headers=headers) as page:
        html = await page.text()
        xsrf = page.cookies["_xsrf"].value
    token = html.split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
    async with http.post(url + "/login", data={"_xsrf": token, "username": name}, allow_redirects=False,
                         headers={**headers, "Cookie": f"_xsrf={xsrf}"}) as response:
        assert response.status == 303, f"login as {name} answered {response.status}"
        return f'_xsrf={xsrf}; session="{response.cookies["session"].value}"'


def closed_sockets_per_process(cluster: Cluster) -> dict[str, list[int]]:
    """Whose sockets each process closed (its log says `socket of 'NAME' from ... closed`):
    name -> the process numbers (1, 2), one per socket."""
    where: dict[str, list[int]] = defaultdict(list)
    for number, app in enumerate(cluster.apps, 1):
        for name in re.findall(r"socket of '(p\d\d)' from \S+ closed", app.log()):
            where[name].append(number)
    return where


def test_nginx_site_is_the_documented_file_with_its_servers_listen_and_logs() -> None:
    """What make cluster and the tests run is deploy/nginx.conf (documented for production)
    with only its `listen`, its upstream's servers (the documented servers' parameters kept,
    `down` where asked) and its log paths changed."""
    template = NGINX_TEMPLATE.read_text()
    site = nginx_site(template, ["unix:/w/a.sock", "unix:/w/b.sock", "unix:/w/c.sock"], "listen 127.0.0.1:9;", Path("/w/logs"),
                      down={"unix:/w/b.sock"})
    documented = re.findall(r"^ *server unix:\S+ ([^;]*);$", template, flags=re.MULTILINE)
    assert documented and len(set(documented)) == 1 and "max_fails=0" in documented[0]
    assert re.findall(r"^ *server (\S+)(.*);$", site, flags=re.MULTILINE) == [
        ("unix:/w/a.sock", f" {documented[0]}"), ("unix:/w/b.sock", f" {documented[0]} down"), ("unix:/w/c.sock", f" {documented[0]}")]

    def without_what_changes(text: str) -> list[str]:
        return [line for line in text.splitlines()
                if not re.match(r" *(server (unix:|127\.)|listen |access_log |error_log )", line)]

    assert without_what_changes(site) == without_what_changes(template)
    assert "hash $tornado_app_sticky consistent;" in site
    assert "proxy_next_upstream error timeout http_503;" in site


def test_through_nginx_the_sessions_of_one_address_spread_over_the_processes_and_each_stays_on_one(
    cluster: Cluster, behind_nginx: Nginx,
) -> None:
    """Issue 23 item 6: nginx hashed the client address, so every browser of one machine (or
    one office behind a NAT) landed on one process. Now it hashes the session cookie: twenty
    people's sockets, all from 127.0.0.1, land on both processes, and each person's three
    sockets (one after another) on one."""
    url = behind_nginx.url

    async def scenario() -> None:
        async with http_session() as http:
            people = await log_in_people(http, url)
            for _ in range(3):
                for name, cookie in people.items():
                    socket = await WireSocket.connect(http, url, cookie, origin=url)
                    assert (await socket.call("whoami", timeout=10))["username"] == name
                    await socket.close()

        def all_logged() -> bool:
            return sum(len(numbers) for numbers in closed_sockets_per_process(cluster).values()) == 3 * PEOPLE

        await eventually(all_logged, 30, "each process logged the closing of the sockets it held")

    asyncio.run(scenario())
    where = closed_sockets_per_process(cluster)
    assert all(len(set(numbers)) == 1 for numbers in where.values()), dict(where)  # one process per session
    on = {number: sorted(name for name, numbers in where.items() if numbers[0] == number) for number in (1, 2)}
    print(f"sessions per process: app 1 {len(on[1])}, app 2 {len(on[2])}")
    assert on[1] and on[2], on  # both processes serve some


def test_a_draining_process_refusals_of_new_pages_and_handshakes_go_on_to_the_other(cluster: Cluster, nginx_workdir: Path) -> None:
    """A process that drains (SIGTERM) answers new pages, logins and Engine.IO handshakes with
    503 "draining"; nginx's `proxy_next_upstream ... http_503` passes such a request on to the
    other process, so no person whose session hashes to the draining process sees it: every
    page opens (200) and every socket connects, still logged in, while it drains."""
    proxy = start_behind_nginx(cluster, nginx_workdir, "--drain-seconds", "60")
    url = proxy.url
    try:
        async def scenario() -> None:
            async with http_session() as http:
                people = await log_in_people(http, url)
                sockets = {name: await WireSocket.connect(http, url, cookie, origin=url) for name, cookie in people.items()}
                os.kill(cluster.apps[0].process.pid, signal.SIGTERM)  # its sockets keep it draining for 60 s

                def draining() -> bool:
                    return "draining" in cluster.apps[0].log()

                await eventually(draining, 15, "app 1 began its drain")
                for name, cookie in people.items():
                    async with http.get(url + "/", headers={"Cookie": cookie}) as page:
                        assert page.status == 200, (name, page.status, await page.text())
                    socket = await WireSocket.connect(http, url, cookie, origin=url)
                    assert (await socket.call("whoami", timeout=10))["username"] == name
                    await socket.close()
                assert cluster.apps[0].process.poll() is None  # it was draining throughout
                for socket in sockets.values():
                    socket.abort()

        asyncio.run(scenario())
    finally:
        proxy.stop()


def test_a_process_back_serves_at_once_although_every_process_was_refusing(cluster: Cluster, behind_nginx: Nginx) -> None:
    """Issue 23: with nginx's default `max_fails=1 fail_timeout=10s`, a request that found both
    processes down set both aside for 10 s, so a process back after a restart got no one for
    up to 10 s more (seen: 11.6 s). With `max_fails=0` nginx tries each process every time (a
    refused connect on a Unix socket costs nothing and goes to the next at once): the first
    request after one process is back is answered by it."""
    url = behind_nginx.url

    async def get_login() -> int:
        async with http_session() as http, http.get(url + "/login") as page:
            return page.status

    for app in cluster.apps:
        app.kill()
    assert asyncio.run(get_login()) == 502  # nobody serves: nginx tried both
    cluster.apps[1].start()  # back once its /readyz says 200
    back = time.monotonic()
    assert asyncio.run(get_login()) == 200
    print(f"served {time.monotonic() - back:.3f} s after the process was back")


def test_a_process_marked_down_gets_no_new_client_and_the_reload_keeps_open_sockets(cluster: Cluster, behind_nginx: Nginx) -> None:
    """Nginx.set_down (make cluster's rolling restart): app 1 marked `down` and nginx reloaded;
    once `reloaded()` says so, no request goes to app 1, so that it can even be frozen
    (SIGSTOP: a request sent to it would wait 75 s) while every person's page opens at once;
    the sockets opened before the reload stay open and answer; marked up again, both serve."""
    url = behind_nginx.url
    frozen = cluster.apps[0].process

    async def scenario() -> None:
        async with http_session() as http:
            people = await log_in_people(http, url)
            sockets = {name: await WireSocket.connect(http, url, cookie, origin=url) for name, cookie in people.items()}
            behind_nginx.set_down({cluster.apps[0].where})
            await eventually(behind_nginx.reloaded, 15, "nginx reloaded with app 1 down")
            for name, socket in sockets.items():  # kept by the old worker, on either process
                assert (await socket.call("whoami", timeout=10))["username"] == name
            frozen.send_signal(signal.SIGSTOP)
            try:
                for name, cookie in people.items():
                    async with http.get(url + "/", headers={"Cookie": cookie}, timeout=aiohttp.ClientTimeout(total=10)) as page:
                        assert page.status == 200, name
            finally:
                frozen.send_signal(signal.SIGCONT)
            behind_nginx.set_down(())
            await eventually(behind_nginx.reloaded, 15, "nginx reloaded with every app up")
            for socket in sockets.values():
                await socket.close()

    asyncio.run(scenario())
    assert "down;" not in behind_nginx.config_path.read_text()


ROLLING_LINES = [
    r"rolling restart \(SIGUSR1\): 2 apps, one at a time, each drained over 2 s",
    r"rolling restart: app 1 draining \(pid (?P<old1>\d+)\)",
    r"rolling restart: app 1 \(pid (?P=old1)\) exited \(status 0\) after [\d.]+ s",
    r"app 1 back \(pid (?P<new1>\d+)\)",
    r"rolling restart: app 2 draining \(pid (?P<old2>\d+)\)",
    r"rolling restart: app 2 \(pid (?P=old2)\) exited \(status 0\) after [\d.]+ s",
    r"app 2 back \(pid (?P<new2>\d+)\)",
    r"rolling restart done in [\d.]+ s",
]


def test_make_cluster_rolling_restart_drains_one_app_at_a_time_and_logs_nobody_out(redis_server: object) -> None:
    """Issue 23 item 4: `kill -USR1 <make cluster's pid>` restarts the apps one at a time, each
    taken out of nginx, drained (--drain-seconds 2), started again and put back before the
    next. Meanwhile a client polls pages through nginx every 50 ms and logs in now and then:
    every answer is 200 (303 for a login), never a 502 or 503, so the site always had a
    process. Each person's socket is ended with `shutdown` and connects again at once, as the
    same person; afterwards every app has a new pid and every cookie still opens its session.
    A second SIGUSR1 during the restart is said and ignored."""
    cluster = started_make_cluster("--drain-seconds", "2")
    try:
        url = cluster.url
        before = {number: pid for number, (pid, _) in cluster.apps.items()}
        assert f"kill -USR1 {cluster.process.pid} for a rolling restart" in cluster.first_line
        answers: list[tuple[str, int]] = []
        reconnects: dict[str, int] = defaultdict(int)
        ends: list[object] = []

        async def scenario() -> dict[str, str]:
            async with http_session() as http:
                # 4 logins of nginx's burst of 10 per address, then one every 2.5 s (its rate: 30 a minute)
                people = {name: await log_in(http, url, name) for name in ("ada", "grace", "alan", "edsger")}
                sockets = {name: await WireSocket.connect(http, url, cookie, origin=url) for name, cookie in people.items()}
                done = asyncio.Event()

                async def poll_pages() -> None:
                    for turn in itertools.count():
                        if done.is_set():
                            return
                        name = list(people)[turn % len(people)]
                        async with http.get(url + "/", headers={"Cookie": people[name]}) as page:
                            answers.append((f"GET / as {name}", page.status))
                        async with http.get(url + "/login") as page:
                            answers.append(("GET /login", page.status))
                        await asyncio.sleep(0.05)

                async def log_in_now_and_then() -> None:
                    for turn in itertools.count():
                        if await event_within(done, 2.5):
                            return
                        cookie = await log_in(http, url, f"newcomer{turn}")  # raises unless 303
                        answers.append(("POST /login", 303))
                        newcomer = await WireSocket.connect(http, url, cookie, origin=url)
                        assert (await newcomer.call("whoami", timeout=10))["username"] == f"newcomer{turn}"
                        await newcomer.close()

                async def stay_connected(name: str) -> None:
                    while True:
                        ended = asyncio.ensure_future(sockets[name].closed.wait())
                        await asyncio.wait([ended, asyncio.ensure_future(done.wait())], return_when=asyncio.FIRST_COMPLETED)
                        if not sockets[name].closed.is_set():
                            return
                        ends.append(await sockets[name].next("ended", timeout=1))
                        sockets[name] = await WireSocket.connect(http, url, people[name], origin=url)  # raises if refused
                        assert (await sockets[name].call("whoami", timeout=10))["username"] == name
                        reconnects[name] += 1

                tasks = [asyncio.ensure_future(task) for task in
                         (poll_pages(), log_in_now_and_then(), *(stay_connected(name) for name in people))]
                os.kill(cluster.process.pid, signal.SIGUSR1)
                await cluster.next_line(ROLLING_LINES[0], 30)
                os.kill(cluster.process.pid, signal.SIGUSR1)
                await cluster.next_line(r"rolling restart already under way \(app \d of 2: [a-z ]+\); this SIGUSR1 is ignored", 30)
                await cluster.next_line(r"rolling restart done in [\d.]+ s", 90)
                done.set()
                await asyncio.gather(*tasks)
                for name, cookie in people.items():  # still logged in, page and socket
                    async with http.get(url + "/api/session", headers={"Cookie": cookie}) as answer:
                        assert answer.status == 200 and (await answer.json())["username"] == name
                    assert (await sockets[name].call("whoami", timeout=10))["username"] == name
                    await sockets[name].close()
                return people

        asyncio.run(scenario())
        rolling = [line for line in cluster.lines if line.startswith("rolling restart") or re.fullmatch(r"app \d back .*", line)]
        ignored = [line for line in rolling if "already under way" in line]
        assert len(ignored) == 1, rolling
        rolling.remove(ignored[0])
        after = re.fullmatch("\n".join(ROLLING_LINES), "\n".join(rolling))
        assert after is not None, rolling  # in this order: one app at a time
        assert {int(after["old1"]), int(after["old2"])} == set(before.values())
        assert int(after["new1"]) not in before.values() and int(after["new2"]) not in before.values()
        assert not [line for line in cluster.lines if "; restarting in" in line]  # no end taken for a crash
        refused = [(what, status) for what, status in answers if status not in (200, 303)]
        print("\n".join(rolling))
        print(f"{len(answers)} answers through nginx during the restart, {len(refused)} refused; "
              f"reconnects per person: {dict(reconnects)}")
        assert answers and not refused, refused
        assert all(reconnects[name] >= 1 for name in ("ada", "grace", "alan", "edsger")), reconnects  # each app was drained
        assert all(isinstance(end, dict) and end.get("reason") == "shutdown" for end in ends), ends
        assert cluster.interrupt() == 0, cluster.stderr()
        assert "Traceback" not in cluster.stderr()
    finally:
        cluster.close()


async def event_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set within `seconds`."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


def test_ctrl_c_during_a_rolling_restart_stops_everything_at_once(redis_server: object) -> None:
    """Ctrl-C while an app drains (a socket keeps it draining for 60 s) stops the cluster at
    once, as at any other time: exit 0, `stopped`, nothing left listening, the directory gone."""
    cluster = started_make_cluster("--drain-seconds", "60")
    try:
        url = cluster.url
        paths = [path for _, path in cluster.apps.values()]

        async def scenario() -> None:
            async with http_session() as http:
                sockets = [await WireSocket.connect(http, url, await log_in(http, url, name), origin=url)
                           for name in ("ada", "grace", "alan", "edsger")]  # on app 1 too, most likely
                os.kill(cluster.process.pid, signal.SIGUSR1)
                await cluster.next_line(r"rolling restart: app 1 draining \(pid \d+\)", 30)
                for socket in sockets:
                    socket.abort()

        asyncio.run(scenario())
        asked = time.monotonic()
        assert cluster.interrupt(timeout=30) == 0, cluster.stderr()
        print(f"stopped {time.monotonic() - asked:.1f} s after Ctrl-C")
        assert time.monotonic() - asked < 20  # not the 60 s drain
        assert cluster.lines[-1] == "stopped" and "Traceback" not in cluster.stderr()
        assert not [line for line in cluster.lines if "; restarting in" in line or "back (pid" in line]
        assert not any(os.path.exists(path) for path in paths) and not os.path.exists(cluster.workdir)
    finally:
        cluster.close()


def test_a_long_polling_page_connects_while_a_process_drains_once_that_process_is_marked_down(
    cluster: Cluster, nginx_workdir: Path,
) -> None:
    """Why the rolling restart marks the draining process `down`: the draining process's 503
    alone sends a long-polling handshake to the other process, but the polls that follow,
    hashed by the same cookie, come back to the draining one, which does not know their
    Engine.IO session: such a page cannot connect until the drain is over (4 of 10 failed
    here without `down`). Marked `down` (and nginx reloaded), every person's long-polling
    client connects and is answered, while the sockets already open are drained."""
    proxy = start_behind_nginx(cluster, nginx_workdir, "--drain-seconds", "60")
    url = proxy.url
    try:
        async def scenario() -> None:
            async with http_session() as http:
                people = await log_in_people(http, url, 10)
                sockets = [await WireSocket.connect(http, url, cookie, origin=url) for cookie in people.values()]
                proxy.set_down({cluster.apps[0].where})
                await eventually(proxy.reloaded, 15, "nginx reloaded with app 1 down")
                os.kill(cluster.apps[0].process.pid, signal.SIGTERM)  # its sockets keep it draining for 60 s
                await eventually(lambda: "draining" in cluster.apps[0].log(), 15, "app 1 began its drain")
                for number, (name, cookie) in enumerate(people.items(), 1):
                    # The cookie on every poll, as a browser sends it; each person from an address
                    # of their own, under nginx's 20 Socket.IO requests a second per address.
                    browser = aiohttp.ClientSession(headers={"Cookie": cookie, "X-Forwarded-For": f"10.0.9.{number}"})
                    client = socketio.AsyncClient(reconnection=False, http_session=browser)
                    try:
                        await client.connect(url, headers={"Origin": url}, transports=["polling"], wait_timeout=10)
                        for _ in range(3):  # several polls, each to the same process
                            assert (await client.call("whoami", timeout=10))["username"] == name
                    finally:
                        await client.eio.disconnect(abort=True)
                        await browser.close()
                assert cluster.apps[0].process.poll() is None  # it was draining throughout
                for socket in sockets:
                    socket.abort()

        asyncio.run(scenario())
    finally:
        proxy.stop()


class SleeperApp:
    """An app process as the supervisor and the rolling restart see one: a real child process
    (a Python that sleeps), which ignores SIGTERM if `deaf`, as a process stuck in its drain."""

    def __init__(self, name: str, deaf: bool = False) -> None:
        self.where = f"unix:/nowhere/{name}.sock"
        self.deaf = deaf
        self.starts = 0
        self.start()

    def start(self) -> None:
        ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if self.deaf and not self.starts else ""
        self.process = subprocess.Popen([sys.executable, "-c", f"import signal, time; {ignore}print('up', flush=True); time.sleep(600)"],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        with self.process.stdout:
            assert self.process.stdout.readline() == "up\n"  # its SIGTERM is set as asked
        self.starts += 1

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        self.process.kill()
        return self.process.wait()


class FakeFront:
    """nginx as the rolling restart sees it: what it was told to mark down, reloaded at once."""

    def __init__(self) -> None:
        self.marked: list[set[str]] = []
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])

    def set_down(self, down: Collection[str]) -> None:
        self.marked.append(set(down))

    def reloaded(self) -> bool:
        return True

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        self.process.kill()
        return self.process.wait()


def run_supervisor(parts: list[Supervised], rolling: RollingRestart, lines: list[str], until: str, within: float = 30) -> None:
    """deploy/cluster.py `supervise`'s loop, until a line matching `until` is said."""
    deadline = time.monotonic() + within
    while not any(re.fullmatch(until, line) for line in lines):
        assert time.monotonic() < deadline, f"no line matching {until!r} within {within} s: {lines}"
        for part in parts:
            part.tend(time.monotonic())
        rolling.tick(time.monotonic())
        time.sleep(0.02)


@pytest.mark.process
def test_an_app_that_does_not_end_within_the_drain_and_margin_is_killed_and_the_restart_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rolling restart waits for a drained app's exit at most --drain-seconds and
    DRAIN_MARGIN, then SIGKILLs it, says so, starts it again and goes on; the supervisor never
    takes its end for a crash; nginx was told app 1 down, then none, then app 2, then none."""
    monkeypatch.setattr(rolling_restart, "DRAIN_MARGIN", 0.5)
    lines: list[str] = []
    monkeypatch.setattr(cluster_module, "say", lines.append)
    apps = [Supervised("app 1", SleeperApp("app1", deaf=True)), Supervised("app 2", SleeperApp("app2"))]  # type: ignore[arg-type]  # a stand-in app
    front = Supervised("nginx", FakeFront())  # type: ignore[arg-type]  # a stand-in front
    parts = [*apps, front]
    rolling = RollingRestart(apps, front, 0.5, lines.append, RestartRequests())
    try:
        first = apps[0].pid
        rolling.requests.pending = 1  # as a SIGUSR1 does
        run_supervisor(parts, rolling, lines, r"rolling restart done in [\d.]+ s")
        assert [line for line in lines if "app 1" in line][:3] == [
            f"rolling restart: app 1 draining (pid {first})",
            f"rolling restart: app 1 (pid {first}) still running 1 s after SIGTERM; killing it",
            f"rolling restart: app 1 (pid {first}) killed by SIGKILL after {lines[3].rsplit(' after ', 1)[1]}",
        ]
        assert f"app 1 back (pid {apps[0].pid})" in lines and apps[0].pid != first
        assert not [line for line in lines if "restarting in" in line], lines
        assert front.service.marked == [{"unix:/nowhere/app1.sock"}, set(), {"unix:/nowhere/app2.sock"}, set()]  # type: ignore[attr-defined]  # FakeFront's own
    finally:
        for part in parts:
            part.service.stop()


@pytest.mark.process
def test_the_rolling_restart_drains_no_app_while_another_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never two down at once: while app 2 is in its supervisor's back-off (it ended by
    itself), the rolling restart says it waits and drains nothing; once app 2 is back, it
    goes on. A second request meanwhile is said and ignored."""
    lines: list[str] = []
    monkeypatch.setattr(cluster_module, "say", lines.append)
    apps = [Supervised("app 1", SleeperApp("app1")), Supervised("app 2", SleeperApp("app2"))]  # type: ignore[arg-type]  # a stand-in app
    front = Supervised("nginx", FakeFront())  # type: ignore[arg-type]  # a stand-in front
    parts = [*apps, front]
    rolling = RollingRestart(apps, front, 0.5, lines.append, RestartRequests())
    try:
        apps[1].backoff.delay = 2.0  # its restart comes 2 s after its end
        apps[1].service.process.kill()
        run_supervisor(parts, rolling, lines, r"app 2 \(pid \d+\) killed by SIGKILL; restarting in 2 s")
        first = apps[0].pid
        rolling.requests.pending = 1
        run_supervisor(parts, rolling, lines, r"rolling restart: waiting for app 2 to be back before draining app 1")
        rolling.requests.pending = 1
        run_supervisor(parts, rolling, lines, r"rolling restart already under way \(app 1 of 2: waiting for every app to be up\); "
                       r"this SIGUSR1 is ignored")
        assert apps[0].pid == first and apps[0].service.process.poll() is None  # not drained while app 2 is away
        run_supervisor(parts, rolling, lines, r"rolling restart done in [\d.]+ s")
        said = [line for line in lines if re.match(r"(rolling restart: app \d draining|app \d back)", line)]
        assert [line.split(" (pid")[0] for line in said] == [
            "app 2 back", "rolling restart: app 1 draining", "app 1 back", "rolling restart: app 2 draining", "app 2 back"], lines
    finally:
        for part in parts:
            part.service.stop()
