"""A page that was away catches up exactly, attacked on real server processes: one process in
memory mode, or two sharing Redis (issue 22, item 3).

A page names, in its connect's `auth`, the last chat position it holds (and the presence
version); the server checks the session first, every time, then sends exactly the messages
after that position, in order, once each, or says it could not ("could_not") and sends the
latest. Before: every reconnect got the latest 50 and nothing said whether any were missed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from deploy.services import AppProcess
from tests.support.app_env import app_env
from tests.support.forms import http_session, log_in, log_out
from tests.support.protocol import websocket_url
from tests.support.wire import Refused, WireSocket

pytestmark = pytest.mark.process  # every test here starts an app, redis-server or nginx

AWAY_SECONDS = 10  # as long as the page was away: longer than a ping timeout
MISSED = 20


@pytest.fixture
def apps(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[AppProcess]]:
    """One process in memory mode, or two sharing Redis; chat unlimited (20 in 10 s is the
    default rate: the writer sends more)."""
    env = app_env(request, request.param)
    started = [AppProcess(tmp_path / f"app{n}.log", "--log-level", "info", "--chat-rate", "off", env=env)
               for n in range(1 if request.param == "memory" else 2)]
    yield started
    for app in started:
        app.stop()
        assert "Traceback" not in app.log(), app.log()[-3000:]


both_stores = pytest.mark.parametrize("apps", ["memory", "redis"], indirect=True)


async def connect(http: aiohttp.ClientSession, app: AppProcess, cookie: str, **auth: Any) -> WireSocket:
    return await WireSocket.connect(http, app.url, cookie, origin=app.url, auth=auth or None)


async def say(socket: WireSocket, text: str) -> dict[str, Any]:
    answer = await socket.call("chat", {"text": text})
    assert answer["ok"] is True, answer
    return answer["message"]


def number(position: str) -> int:
    return int(position.partition(":")[2])


@pytest.mark.parametrize(("apps", "back_on"), [("memory", "the same process"), ("redis", "the other process"),
                                               ("redis", "every process restarted")], indirect=["apps"])
def test_a_page_away_while_20_messages_are_sent_gets_exactly_those_20(apps: list[AppProcess], back_on: str) -> None:
    async def scenario() -> None:
        async with http_session() as http:
            reader_cookie = await log_in(http, apps[0].url, "reader")
            reader = await connect(http, apps[0], reader_cookie)
            writer = await connect(http, apps[0], await log_in(http, apps[0].url, "writer"))
            assert (await reader.next("history"))["resume"] == "none"
            before = [await say(writer, f"before {n}") for n in range(3)]
            heard = [await reader.next("chat") for _ in before]
            assert heard == before
            held = heard[-1]["position"]
            reader.abort()  # gone without a word, as a dead link or a closed laptop
            sent = []
            for n in range(MISSED):
                sent.append(await say(writer, f"while away {n}"))
                await asyncio.sleep(AWAY_SECONDS / MISSED)
            if back_on == "every process restarted":
                await writer.close()
                for app in apps:
                    app.stop()
                for app in apps:
                    app.start()
            back = await connect(http, apps[-1], reader_cookie, history=held)
            history = await back.next("history")
            assert history["resume"] == "caught_up", history
            assert history["messages"] == sent  # exactly those, in order, each once, as first sent
            assert [number(message["position"]) for message in history["messages"]] == list(
                range(number(held) + 1, number(held) + MISSED + 1))
            assert history["position"] == sent[-1]["position"]
            # And it goes on live from there, with nothing repeated.
            speaker = await connect(http, apps[-1], await log_in(http, apps[-1].url, "speaker"))
            after = await say(speaker, "after")
            assert (await back.next("chat")) == after and number(after["position"]) == number(held) + MISSED + 1
            await asyncio.sleep(0.2)
            assert back.pending("chat") == 0 and back.pending("history") == 0
            for socket in (back, speaker, writer):
                await socket.close()

    asyncio.run(scenario())


@both_stores
def test_a_session_logged_out_during_the_gap_is_refused_on_resume(apps: list[AppProcess]) -> None:
    """Socket.IO's own recovery (with skipMiddlewares) lets a session that ended meanwhile back
    in; here the session is checked first, every time."""

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, apps[0].url, "leaver")
            socket = await connect(http, apps[0], cookie)
            history = await socket.next("history")
            socket.abort()
            assert await log_out(http, apps[-1].url, cookie) in (200, 302, 303)
            with pytest.raises(Refused, match="not authenticated"):
                await connect(http, apps[-1], cookie, history=history["position"])

    asyncio.run(scenario())


BAD_POSITIONS = ["", "garbage", "x" * 41, "abc:", ":5", "abc:-1", "abc:01", "abc:1.5", "ab c:1", "é:1", "a:99999999999999999",
                 12, None, ["a:1"], {"a": 1}, True]


@both_stores
def test_positions_that_cannot_be_caught_up_get_the_latest_and_say_so(apps: list[AppProcess]) -> None:
    """Another epoch (a restart), the future and garbage: a clean "could_not" with the latest
    messages, never an error; the socket is accepted and works."""

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, apps[0].url, "ada")
            first = await connect(http, apps[0], cookie)
            said = [await say(first, f"kept {n}") for n in range(3)]
            tail = (await first.next("history"))["position"]
            epoch = tail.partition(":")[0]
            future = f"{epoch}:{number(said[-1]['position']) + 1}"
            other_epoch = ("b" if epoch[0] != "b" else "c") + epoch[1:] + ":1"
            for held in [future, other_epoch, *BAD_POSITIONS]:
                socket = await connect(http, apps[-1], cookie, history=held, presence=held)
                history = await socket.next("history")
                expected = "none" if held is None else "could_not"
                assert (history["resume"], history["messages"]) == (expected, said), held
                assert history["position"] == said[-1]["position"], held
                assert "people" in await socket.next("presence_state")  # the whole state, for a presence it cannot tell
                assert (await socket.call("whoami"))["username"] == "ada"
                await socket.close()
            for auth in ["not an object", ["history"], 7]:  # the auth itself not an object
                raw = await http.ws_connect(websocket_url(apps[0].url), headers={"Cookie": cookie, "Origin": apps[0].url})
                await raw.receive_str()
                await raw.send_str("40" + json.dumps(auth))
                answers = [await raw.receive_str() for _ in range(4)]  # welcome, history, presence, then 40
                assert answers[-1].startswith("40"), answers  # accepted as a page without a position: never a crash
                assert json.loads(answers[1][2:])[1]["resume"] == "none", answers
                await raw.close()
            await first.close()

    asyncio.run(scenario())


@both_stores
def test_a_position_at_the_newest_message_catches_up_on_nothing(apps: list[AppProcess]) -> None:
    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, apps[0].url, "ada")
            socket = await connect(http, apps[0], cookie)
            empty = await socket.next("history")  # nothing said yet: "<epoch>:0", before the first
            assert empty["messages"] == [] and number(empty["position"]) == 0
            back = await connect(http, apps[-1], cookie, history=empty["position"])
            assert await back.next("history") == {"messages": [], "position": empty["position"], "resume": "caught_up"}
            message = await say(back, "first")
            again = await connect(http, apps[-1], cookie, history=empty["position"])
            assert await again.next("history") == {"messages": [message], "position": message["position"], "resume": "caught_up"}
            for each in (socket, back, again):
                await each.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("apps", ["memory"], indirect=True)
def test_presence_comes_back_as_what_changed_since_the_version_held(apps: list[AppProcess]) -> None:
    """Back on the process that told it the version, a page gets the net change since (one
    diff, applied on top of its version), not everyone again."""

    async def scenario() -> None:
        async with http_session() as http:
            cookie = await log_in(http, apps[0].url, "reader")
            reader = await connect(http, apps[0], cookie)
            stayer = await connect(http, apps[0], await log_in(http, apps[0].url, "stayer"))
            await reader.sees_online(["reader", "stayer"])
            epoch, held = (await reader.next("presence_state"))["epoch"], reader.presence.version
            reader.abort()
            newcomer = await connect(http, apps[0], await log_in(http, apps[0].url, "newcomer"))
            await stayer.sees_online(["stayer", "newcomer"])  # the reader's leave and the join, announced
            back = await connect(http, apps[0], cookie, presence=f"{epoch}:{held}")
            diff = await back.next("presence_diff")
            assert diff["since"] == held and diff["version"] > held
            assert [person["name"] for person in diff["joins"]] == ["newcomer"]
            assert [person["name"] for person in diff["leaves"]] == ["reader"]  # it left; its return is the next change
            assert back.pending("presence_state") == 0
            # On top of the list the page held, it makes the list of now; then the reader's return.
            page = reader.presence
            page.event("presence_diff", diff)
            assert page.names() == ["newcomer", "stayer"] and page.version == diff["version"]
            page.event("presence_diff", await back.next("presence_diff"))
            assert page.names() == ["newcomer", "reader", "stayer"]
            for socket in (back, stayer, newcomer):
                await socket.close()

    asyncio.run(scenario())


@both_stores
def test_a_connected_page_that_saw_a_gap_asks_to_catch_up_within_a_fair_share(apps: list[AppProcess]) -> None:
    """A message can be lost between processes while Redis fails over (its pub/sub keeps
    nothing); the page sees the gap in positions and asks for what came after the last one it
    holds, without reconnecting; asking in a loop gets "slow down", not the history again."""

    async def scenario() -> None:
        async with http_session() as http:
            reader = await connect(http, apps[-1], await log_in(http, apps[-1].url, "reader"))
            writer = await connect(http, apps[0], await log_in(http, apps[0].url, "writer"))
            said = [await say(writer, f"message {n}") for n in range(5)]
            answer = await reader.call("catch_up", {"after": said[1]["position"]})
            assert answer == {"messages": said[2:], "position": said[-1]["position"], "resume": "caught_up"}
            again = await reader.call("catch_up", {"after": said[1]["position"]})
            assert again["refused"] == "slow down: the messages you missed were sent a moment ago" and 0 < again["retry_after"] <= 1.1
            await asyncio.sleep(again["retry_after"])
            garbage = await reader.call("catch_up", {"after": "garbage"})
            assert garbage["resume"] == "could_not" and garbage["messages"] == said  # the latest, and it says so
            for socket in (reader, writer):
                await socket.close()

    asyncio.run(scenario())
