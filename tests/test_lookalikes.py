"""Look-alike names and hostile chat text, attacked on real server processes (issue 21, item
10): one process in memory mode, or two sharing Redis with the look-alike on the other one.

Before: "аlice" (Cyrillic а), "Αlice" (Greek Alpha) and fullwidth "ａｌｉｃｅ" reached every
page with nothing saying they look like "alice", so none got a tag beside a real alice;
"alice #k3Jd" and "alice (you)" logged in; and a chat text with a U+202E, 300 line breaks or
50 combining marks was passed to everyone as it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from deploy.services import AppProcess
from tests.support.app_env import app_env
from tests.support.forms import http_session, log_in
from tests.support.wire import WireSocket

pytestmark = pytest.mark.process  # every test here starts an app, redis-server or nginx

LOOK_ALIKES = ["\u0430lice", "\u0391lice", "\uff41\uff4c\uff49\uff43\uff45"]  # Cyrillic а, Greek Α, fullwidth


@pytest.fixture
def apps(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[AppProcess]]:
    """One process in memory mode, or two sharing Redis."""
    env = app_env(request, request.param)
    started = [AppProcess(tmp_path / f"app{n}.log", "--log-level", "info", env=env)
               for n in range(1 if request.param == "memory" else 2)]
    yield started
    for app in started:
        app.stop()


both_stores = pytest.mark.parametrize("apps", ["memory", "redis"], indirect=True)


async def connected(http: aiohttp.ClientSession, app: AppProcess, name: str) -> WireSocket:
    return await WireSocket.connect(http, app.url, await log_in(http, app.url, name), origin=app.url)


async def chats(socket: WireSocket, count: int) -> list[dict[str, Any]]:
    return [await socket.next("chat") for _ in range(count)]


@both_stores
def test_look_alike_names_reach_every_page_with_alices_skeleton(apps: list[AppProcess]) -> None:
    """Every person online and every message carries its name's skeleton, the same for
    "alice" and each look-alike, so the page counts them as one shared name and shows their
    tags; a newcomer's history carries them too (read back from Redis in the Redis mode)."""
    everyone = ["alice", *LOOK_ALIKES]

    async def scenario() -> None:
        async with http_session() as http:
            alice = await connected(http, apps[0], "alice")
            others = [await connected(http, apps[-1], name) for name in LOOK_ALIKES]
            await alice.sees_online(everyone)
            state = await alice.call("presence_state")
            assert {person["name"]: person["skeleton"] for person in state["people"]} == dict.fromkeys(everyone, "alice")
            for socket, name in zip([alice, *others], everyone, strict=True):
                await socket.emit("chat", {"text": f"I am {name}"})
            heard = await chats(alice, len(everyone))
            assert {message["username"]: message["skeleton"] for message in heard} == dict.fromkeys(everyone, "alice")
            newcomer = await connected(http, apps[-1], "bob")
            history = (await newcomer.next("history"))["messages"]
            assert sorted((message["username"], message["skeleton"]) for message in history) == sorted(
                (name, "alice") for name in everyone)
            for socket in (alice, *others, newcomer):
                await socket.close()

    asyncio.run(scenario())


HOSTILE = [
    ("evil \u202etxt.exe", "bidirectional overrides"),
    ("\u2066unclosed isolate", "bidirectional overrides"),
    ("hi" + "\n" * 300, "at most 20 lines"),
    ("x" + "\u0301" * 50, "at most 6 accents"),
    ("bell \x07 and escape \x1b[2J", "control characters"),
]


@both_stores
def test_chat_text_that_reorders_hides_or_spills_is_refused_with_a_reason_and_reaches_nobody(apps: list[AppProcess]) -> None:
    async def scenario() -> None:
        async with http_session() as http:
            mallory = await connected(http, apps[0], "mallory")
            reader = await connected(http, apps[-1], "reader")
            await mallory.sees_online(["mallory", "reader"])
            for text, reason in HOSTILE:
                refusal = await mallory.call("chat", {"text": text})
                assert refusal["ok"] is False and reason in refusal["message"], text
            await mallory.emit("chat", {"text": "and now a plain one"})
            heard = await reader.next("chat")  # the first chat anyone hears is the plain one
            assert heard["text"] == "and now a plain one" and reader.pending("chat") == 0
            newcomer = await connected(http, apps[-1], "newcomer")
            assert [message["text"] for message in (await newcomer.next("history"))["messages"]] == ["and now a plain one"]
            for socket in (mallory, reader, newcomer):
                await socket.close()

    asyncio.run(scenario())
    for app in apps:
        assert "Traceback" not in app.log()


@pytest.mark.parametrize("apps", ["memory"], indirect=True)
def test_names_that_imitate_the_pages_markers_are_refused_at_login(apps: list[AppProcess]) -> None:
    """400 and the form again, saying why; no session."""
    base = apps[0].url

    async def status(http: aiohttp.ClientSession, name: str) -> tuple[int, str, bool]:
        async with http.get(base + "/login") as page:
            token = (await page.text()).split('name="_xsrf" value="', 1)[1].split('"', 1)[0]
            xsrf = page.cookies["_xsrf"].value
        async with http.post(base + "/login", data={"_xsrf": token, "username": name}, allow_redirects=False,
                             headers={"Cookie": f"_xsrf={xsrf}", "Origin": base}) as answer:
            return answer.status, await answer.text(), "session" in answer.cookies

    async def scenario() -> None:
        async with http_session() as http:
            for name, said in [("alice #k3Jd", "followed by a letter or digit"), ("alice ＃k3Jd", "followed by a letter or digit"),
                               ("alice (you)", "(you)"), ("\u0430lice (y\u043eu)", "(you)")]:
                code, html, has_session = await status(http, name)
                assert code == 400 and said in html and not has_session, (name, code)
            assert (await status(http, "alice"))[0] == 303

    asyncio.run(scenario())
