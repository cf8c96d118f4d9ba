"""Redis is not trusted blindly: bad values put straight into a real Redis (history entries,
online entries, session hashes, `ended` messages) are skipped with one log line each, never a
hang, a traceback or a value shown to anyone; a full Redis is a 503 like an outage; and
`make cluster`'s Redis refuses a client without its password, which no command line holds.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import redis

from deploy.services import NGINX_USER
from tests.support.cluster import Cluster
from tests.support.constants import ROOT
from tests.support.e2e import e2e_unavailable
from tests.support.forms import can_log_in, http_session, log_in
from tests.support.matching import found
from tests.support.waiting import eventually
from tests.support.wire import Refused, WireSocket
from tornado_app.redis.bus import redacted

IGNORED = "ignored a bad value in Redis"
GOOD_TAG = "AAAAAAAAAAA"


def good_message(text: str) -> dict[str, Any]:
    return {"id": "0123456789ab", "username": "ada", "tag": GOOD_TAG, "text": text, "time": 1_700_000_000}


async def timed_connect(http: Any, url: str, cookie: str) -> tuple[WireSocket, float, list[dict[str, Any]]]:
    """A connect, and the seconds until its history arrived (the last thing a connect sends)."""
    started = time.perf_counter()
    socket = await WireSocket.connect(http, url, cookie, origin=url, timeout=5)
    history = (await socket.next("history", timeout=5))["messages"]
    return socket, time.perf_counter() - started, history


def test_a_poisoned_history_is_skipped_connects_stay_prompt_on_every_process_and_each_entry_is_one_line(
        cluster: Cluster, redis_url: str) -> None:
    a, b = cluster.start(), cluster.start()
    bad = [
        b"{not json",
        json.dumps({**good_message("wrong types"), "time": "yesterday", "id": 7}).encode(),
        json.dumps(good_message("x" * 501)).encode(),  # over the chat limit
        json.dumps({**good_message("bad name"), "username": "\u202eevil"}).encode(),  # bidi override
        # Chat text the server now refuses, written by an earlier version (issue 21, item 10):
        json.dumps(good_message("evil \u202etxt.exe")).encode(),  # reverses what follows it
        json.dumps(good_message("hi" + "\n" * 300)).encode(),  # pushes the chat out of view
        json.dumps(good_message("x" + "\u0301" * 50)).encode(),  # draws over the lines around
        json.dumps({**good_message("unknown field"), "skeleton": "ada", "admin": True}).encode(),
        json.dumps({**good_message("bad tag"), "tag": "<b>"}).encode(),
        json.dumps(["a list"]).encode(),
        b"\xff\xfe",
    ]
    with redis.Redis.from_url(redis_url) as client:
        # The chat as the app keeps it (redis/history.py): a stream whose ids count the
        # messages, with the count and its epoch beside it; the bad entries among the good.
        entries = [json.dumps(good_message("kept")).encode(),
                   json.dumps({**good_message("kept, with a skeleton made again"), "skeleton": "forged"}).encode(), *bad]
        client.set("tornado_app:chat:epoch", "poisoned1")
        client.set("tornado_app:chat:count", len(entries))
        for n, entry in enumerate(entries, start=1):
            client.xadd("tornado_app:chat", {"m": entry}, id=f"{n}-0")
        client.xadd("tornado_app:chat", {"other": "field"}, id=f"{len(entries) + 1}-0")  # no `m`
        client.set("tornado_app:chat:count", len(entries) + 1)

    async def scenario() -> list[float]:
        seconds = []
        async with http_session() as http:
            for app in (a, b) * 5:
                socket, took, history = await timed_connect(http, app.url, await log_in(http, app.url, "reader"))
                assert [message["text"] for message in history] == ["kept", "kept, with a skeleton made again"]
                assert [message["skeleton"] for message in history] == ["ada", "ada"]
                seconds.append(took)
                await socket.close()
        return seconds

    seconds = asyncio.run(scenario())
    print(f"connect with a poisoned history: max {1000 * max(seconds):.0f} ms over {len(seconds)}")
    assert max(seconds) < 3  # prompt (tens of ms when healthy); before: no history ever came
    for app in (a, b):
        app.stop()
        log = app.log()
        assert "Traceback" not in log and "refused socket" not in log, log[-3000:]
        assert log.count(f"{IGNORED} (chat)") == len(bad) + 1, log[-3000:]  # once per value, not per connect


def test_fake_online_entries_with_bad_names_or_tags_are_not_shown_and_each_is_one_line(cluster: Cluster, redis_url: str) -> None:
    a = cluster.start()
    with redis.Redis.from_url(redis_url) as client:
        # The set before the process that holds it, as a process writes them: a heartbeat that
        # found the process between the two writes would take it for one with nobody online,
        # and not read it again for 30 s (seen once in a full run).
        client.sadd("tornado_app:online:f00df00df00df00d", f"{GOOD_TAG} \u202eevil", "short-tag mallory",
                    f"{GOOD_TAG} " + "n" * 40, f"{GOOD_TAG} \u3164", b"\xff\xfe garbage", f"{GOOD_TAG} mallory")
        client.expire("tornado_app:online:f00df00df00df00d", 600)
        client.zadd("tornado_app:processes", {"f00df00df00df00d": time.time() + 600, "../not-a-process": time.time() + 600})

    async def scenario() -> None:
        async with http_session() as http:
            socket = await WireSocket.connect(http, a.url, await log_in(http, a.url, "ada"), origin=a.url, timeout=5)
            # mallory passes every check: whoever holds the Redis password is trusted.
            await socket.sees_online(["ada", "mallory"])
            await asyncio.sleep(4)  # a heartbeat reads the others again: still one line each
            await socket.close()

    asyncio.run(scenario())
    a.stop()
    log = a.log()
    assert "Traceback" not in log, log[-3000:]
    assert log.count(f"{IGNORED} (online)") == 5, log[-3000:]
    assert log.count(f"{IGNORED} (processes)") == 1, log[-3000:]


# ("g", None): a hash without its tag, the shape from before sessions had tags: refused too.
@pytest.mark.parametrize("field, value", [("u", "\u202eevil"), ("u", "x" * 33), ("t", "nan"), ("g", "<script>"), ("g", None)])
def test_a_session_hash_with_a_bad_field_is_no_session_and_others_are_served(cluster: Cluster, redis_url: str, field: str,
                                                                             value: str | None) -> None:
    a, b = cluster.start(), cluster.start()

    async def scenario() -> None:
        async with http_session() as http:
            tampered = await log_in(http, a.url, "victim")
            with redis.Redis.from_url(redis_url) as client:
                [key] = client.keys("tornado_app:session:*")
                if value is None:
                    client.hdel(key, field)
                else:
                    client.hset(key, field, value)
            for _ in range(3):  # B never saw it live: it reads the hash
                async with http.get(b.url + "/api/session", headers={"Cookie": tampered}) as api:
                    assert api.status == 401  # no session: not a 500, not the bad name
                with pytest.raises(Refused, match="not authenticated"):
                    await WireSocket.connect(http, b.url, tampered, origin=b.url, timeout=5)
                socket, took, _ = await timed_connect(http, b.url, await log_in(http, b.url, "bystander"))
                assert took < 3
                await socket.close()

    asyncio.run(scenario())
    b.stop()
    log = b.log()
    assert "Traceback" not in log, log[-3000:]
    assert log.count(IGNORED) == 1, log[-3000:]


def test_forged_ended_messages_with_garbage_disconnect_nobody_and_each_is_one_line(cluster: Cluster, redis_url: str) -> None:
    a, b = cluster.start(), cluster.start()

    async def scenario() -> None:
        async with http_session() as http:
            ada = await WireSocket.connect(http, a.url, await log_in(http, a.url, "ada"), origin=a.url, timeout=5)
            with redis.Redis.from_url(redis_url) as client:
                [key] = client.keys("tornado_app:session:*")
                session_id = key.decode().rsplit(":", 1)[1]
                forged = [
                    b"not json at all",
                    json.dumps(["someone", "not a list"]),
                    json.dumps(["someone", [session_id]]),
                    json.dumps(["someone", [session_id, "\u202eevil", 1, 1, "logout", GOOD_TAG]]),
                    json.dumps(["someone", [session_id, "ada", "nan", 1, "logout", GOOD_TAG]]),
                    json.dumps(["someone", [session_id, "ada", 1, 1, "<img src=x>", GOOD_TAG]]),
                    json.dumps(["someone", [session_id, "ada", 1, 1, "logout", "not a tag"]]),
                    json.dumps(["someone", [123, "ada", 1, 1, "logout", GOOD_TAG]]),
                    json.dumps(["someone", [session_id, "ada", 1, 1, {"not": "a reason"}, GOOD_TAG]]),
                    # The shapes from before sessions had tags: no tag, or Lua's false for it.
                    json.dumps(["someone", [session_id, "ada", 1, 1, "logout"]]),
                    json.dumps(["someone", [session_id, "ada", 1, 1, "logout", False]]),
                ]
                for _ in range(3):  # the same garbage again and again: still one line each
                    for message in forged:
                        client.publish("tornado_app:ended", message)
            # A chat round trip after the garbage: every message before it was handled.
            await ada.emit("chat", {"text": "still here"})
            assert (await ada.next("chat", timeout=5))["text"] == "still here"
            assert (await ada.call("whoami", timeout=5))["username"] == "ada"
            assert not ada.closed.is_set() and ada.pending("ended") == 0
            socket, took, _ = await timed_connect(http, b.url, await log_in(http, b.url, "grace"))
            assert took < 3
            await socket.close()
            await ada.close()

    asyncio.run(scenario())
    for app in (a, b):
        app.stop()
        log = app.log()
        assert "Traceback" not in log, log[-3000:]
        assert log.count(f"{IGNORED} (a message on tornado_app:ended)") == 11, log[-3000:]


def test_a_full_redis_is_a_503_like_an_outage_with_one_line_and_sockets_refused_cleanly(cluster: Cluster, redis_url: str) -> None:
    a, b = cluster.start(), cluster.start()

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, a.url, "ada")
            with redis.Redis.from_url(redis_url) as client:
                client.config_set("maxmemory-policy", "noeviction")
                client.config_set("maxmemory", "1mb")
                try:
                    for number in range(10_000):
                        client.set(f"filler:{number}", "x" * 10_000)
                except redis.exceptions.OutOfMemoryError:
                    pass
                else:
                    pytest.fail("Redis never filled up")
                try:
                    for _ in range(5):  # B never saw the session: it must write to refresh it
                        async with http.get(b.url + "/", headers={"Cookie": cookie}) as page:
                            assert page.status == 503 and page.headers["Retry-After"]
                            assert "session store is unavailable" in await page.text()
                        with pytest.raises(RuntimeError, match="answered 503"):
                            await log_in(http, b.url, "grace")
                        with pytest.raises(Refused, match="session store unavailable"):
                            await WireSocket.connect(http, b.url, cookie, origin=b.url, timeout=5)
                finally:
                    client.config_set("maxmemory", "0")
                    for key in client.scan_iter("filler:*"):
                        client.delete(key)
            await eventually(lambda: can_log_in(http, b.url, "grace"), 10, "a login works again once Redis has room")
            await asyncio.sleep(4)  # a heartbeat writes: the process says it is back

    asyncio.run(scenario())
    for app in (a, b):
        status = app.stop()
        log = app.log()
        assert status == 0 and "Traceback" not in log, log[-3000:]
    log = b.log()
    assert log.count("out of memory") == 1, log[-3000:]
    assert log.count("accepts writes again") == 1, log[-3000:]


@pytest.mark.parametrize("url, shown", [
    ("redis://:hunter2@h:6379/0", "redis://***@h:6379/0"),
    ("redis://default:hunter2@h:6379/0", "redis://default:***@h:6379/0"),
    ("redis://hunter2@h:6379/0", "redis://***@h:6379/0"),
    ("rediss://u:hun@ter/2?#@h:6380/1", "rediss://u:***@h:6380/1"),
    ("redis://h:6379/0?password=hunter2&db=1", "redis://h:6379/0?password=***&db=1"),
    ("redis://u:hunter2@h/0?username=u&Password=hunter2", "redis://u:***@h/0?username=u&Password=***"),
    ("unix:///run/redis.sock?db=0&password=hunter2", "unix:///run/redis.sock?db=0&password=***"),
    ("unix://u:hunter2@/run/redis.sock", "unix://u:***@/run/redis.sock"),
    ("unix:///run/a@b.sock?db=0", "unix:///run/a@b.sock?db=0"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
])
def test_redacted_hides_every_form_of_password(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert "hunter2" not in redacted(url) and "ter/2" not in redacted(url)


@pytest.mark.heavy  # over 10 s: it waits out a timeout or a process; run by make test-heavy and CI
@pytest.mark.process
def test_make_cluster_redis_wants_its_password_which_no_command_line_holds() -> None:
    secret = "cookie-secret-that-must-not-show-in-ps"
    process = subprocess.Popen([sys.executable, str(ROOT / "deploy" / "cluster.py"), "--processes", "2", "--port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TORNADO_APP_COOKIE_SECRET": secret})
    assert process.stdout is not None and process.stderr is not None  # pipes
    try:
        line = process.stdout.readline()
        if "not installed" in line or process.poll() is not None:
            e2e_unavailable(process.stderr.read().strip() or line)
        workdir = found(r"logs in (\S+);", line).group(1)
        with open(os.path.join(workdir, "redis.conf")) as config_file:
            config = config_file.read()
        password = found(r'requirepass "([^"]+)"', config).group(1)
        port = int(found(r"^port (\d+)", config, re.MULTILINE).group(1))
        assert password not in line and len(password) >= 32
        assert oct(os.stat(os.path.join(workdir, "redis.conf")).st_mode & 0o777) == "0o600"
        # Its owner's; run as root, nginx's workers' group may also enter it (not list it).
        status = os.stat(workdir)
        if os.geteuid() == 0:
            assert oct(status.st_mode & 0o777) == "0o710" and grp.getgrgid(status.st_gid).gr_name == NGINX_USER
        else:
            assert oct(status.st_mode & 0o777) == "0o700"
        with redis.Redis(port=port) as anonymous, pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.get("tornado_app:lru")
        with redis.Redis(port=port, password="a guess") as guesser, pytest.raises(redis.exceptions.AuthenticationError):
            guesser.ping()
        with redis.Redis(port=port, password=password) as client:
            assert client.ping()
        # Every process of ours, and what any local user can read of its command line.
        children = subprocess.run(["pgrep", "-P", str(process.pid)], check=False, capture_output=True, text=True).stdout.split()
        assert len(children) >= 4  # redis-server, two app processes, nginx
        for pid in children:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                shown = cmdline.read().decode(errors="replace")
            assert password not in shown and secret not in shown, shown
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
