"""The Socket.IO contract, on both transports: authentication from the session cookie,
welcome and presence, whoami, chat and its validation, and every way a session ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp
import pytest
import socketio

from tests.support.clock import FakeClock
from tests.support.constants import MAX_SESSIONS, SESSION_TTL, TRANSPORTS
from tests.support.forms import log_in, log_out
from tests.support.waiting import eventually
from tests.support.web_user import logged_in
from tests.support.wire import WireSocket
from tornado_app.app import TornadoApp
from tornado_app.cookies import SESSION_COOKIE
from tornado_app.reasons import NOT_AUTHENTICATED, STATE_SLOW_DOWN

transports = pytest.mark.parametrize("transport", list(TRANSPORTS))

BAD_CHAT_PAYLOADS = [
    ({"text": ""}, "cannot be empty"),
    ({"text": "x" * 501}, "at most 500"),
    ({"text": "\x01" * 400}, "control characters"),  # 400 characters, 2,400 bytes in a frame
    ({"text": "half \ud83d"}, "half of a character"),  # no UTF-8 writes a lone surrogate
    ({"text": 5}, "needs a text string"),
    ({"text": ["a"]}, "needs a text string"),
    ({"message": "hi"}, "needs a text string"),
    ("just a string", "must be an object"),
    (["a", "list"], "must be an object"),
    (42, "must be an object"),
    (None, "must be an object"),
]


async def assert_refused(socket_client, cookie: str | None, transport: str) -> None:
    started = time.monotonic()
    with pytest.raises(socketio.exceptions.ConnectionError) as refusal:
        await socket_client(cookie, transport)
    assert time.monotonic() - started < 2, "the refusal must be prompt"
    assert await refusal.value.client.next("connect_error") == {"message": NOT_AUTHENTICATED}


@transports
@pytest.mark.gen_test
async def test_a_logged_in_cookie_is_welcomed_by_name(web_user, socket_client, transport: str) -> None:
    ada = await logged_in(web_user, "ada")
    client = await socket_client(ada.cookie_header, transport)
    assert (await client.next("welcome"))["username"] == "ada"
    await client.sees_online(["ada"])
    if transport == "polling-upgrade":
        await eventually(lambda: client.sio.eio.current_transport == "websocket", what="the upgrade happened")


@transports
@pytest.mark.gen_test
async def test_no_cookie_is_refused(socket_client, transport: str) -> None:
    await assert_refused(socket_client, None, transport)


@transports
@pytest.mark.parametrize(
    "cookie",
    [
        "session=garbage",
        "session=2|1:0|10:1700000000|7:session|4:YWJj|0000000000000000000000000000000000000000000000000000000000000000",
        "session=",
        "other=1; session=%%%",
    ],
)
@pytest.mark.gen_test
async def test_forged_and_garbage_cookies_are_refused(socket_client, transport: str, cookie: str) -> None:
    await assert_refused(socket_client, cookie, transport)


@transports
@pytest.mark.gen_test
async def test_a_tampered_cookie_is_refused(web_user, socket_client, transport: str) -> None:
    ada = await logged_in(web_user, "ada")
    value = ada.cookies[SESSION_COOKIE]
    tampered = value[:-1] + ("0" if value[-1] != "0" else "1")
    await assert_refused(socket_client, f"{SESSION_COOKIE}={tampered}", transport)


@transports
@pytest.mark.gen_test
async def test_an_expired_session_is_refused(web_user, socket_client, clock: FakeClock, transport: str) -> None:
    ada = await logged_in(web_user, "ada")
    clock.advance(SESSION_TTL + 1)
    await assert_refused(socket_client, ada.cookie_header, transport)


@transports
@pytest.mark.gen_test
async def test_a_logged_out_cookie_is_refused(web_user, socket_client, transport: str) -> None:
    ada = await logged_in(web_user, "ada")
    old_cookie = ada.cookie_header
    await ada.logout()
    await assert_refused(socket_client, old_cookie, transport)


@transports
@pytest.mark.gen_test
async def test_whoami_answers_from_the_server_side_session(web_user, socket_client, transport: str) -> None:
    ada = await logged_in(web_user, "ada")
    client = await socket_client(ada.cookie_header, transport)
    answer = await client.sio.call("whoami")
    assert answer == {"username": "ada", "logged_in_at": 1_700_000_000}


@transports
@pytest.mark.gen_test
async def test_chat_is_broadcast_with_the_sessions_username(web_user, socket_client, clock: FakeClock, transport: str) -> None:
    ada_client = await socket_client((await logged_in(web_user, "ada")).cookie_header, transport)
    bob_client = await socket_client((await logged_in(web_user, "bob")).cookie_header, transport)
    clock.advance(5)
    ada_tag = (await ada_client.next("welcome"))["tag"]
    ack = await ada_client.sio.call("chat", {"text": "hello <b>bob</b>", "username": "mallory", "tag": "forged"})
    heard = await ada_client.next("chat")  # the sender hears itself too
    assert await bob_client.next("chat") == heard
    assert ack == {"ok": True, "message": heard}  # the answer is the message as everyone receives it
    assert {key: heard[key] for key in ("username", "tag", "skeleton", "text", "time")} == {
        "username": "ada", "tag": ada_tag, "skeleton": "ada", "text": "hello <b>bob</b>", "time": 1_700_000_005}
    assert set(heard) == {"id", "username", "tag", "skeleton", "text", "time", "position"}


@transports
@pytest.mark.gen_test
async def test_text_beyond_ascii_arrives_whole_in_chat_history_and_names(web_user, socket_client, transport: str) -> None:
    """UTF-8 as it is on both transports (frames no longer carry ASCII escapes): emoji (two
    UTF-16 units each in the page), accents, CJK and right-to-left text arrive unchanged."""
    text = "\U0001F600 é 漢字 שלום " + "\U0001F680" * 480
    zoe = await socket_client((await logged_in(web_user, "zoë 漢")).cookie_header, transport)
    await zoe.sio.emit("chat", {"text": text})
    assert (await zoe.next("chat"))["text"] == text
    newcomer = await socket_client((await logged_in(web_user, "bob")).cookie_header, transport)
    [kept] = (await newcomer.next("history"))["messages"]
    assert kept["text"] == text and kept["username"] == "zoë 漢"
    await newcomer.sees_online(["bob", "zoë 漢"])


@transports
@pytest.mark.gen_test
async def test_bad_chat_payloads_are_refused_in_words_to_the_sender_only(web_user, socket_client, transport: str) -> None:
    ada_client = await socket_client((await logged_in(web_user, "ada")).cookie_header, transport)
    bob_client = await socket_client((await logged_in(web_user, "bob")).cookie_header, transport)
    for payload, message in BAD_CHAT_PAYLOADS:
        refusal = await ada_client.sio.call("chat", payload)
        assert refusal["ok"] is False and refusal["reason"] == "invalid", (payload, refusal)
        assert message in refusal["message"], (payload, refusal)
    assert "must be an object" in (await ada_client.sio.call("chat"))["message"]  # no payload at all
    assert "must be an object" in (await ada_client.sio.call("chat", ({"text": "a"}, {"text": "b"})))["message"]  # two
    for bad_id in ["", "x" * 37, "no spaces", 12, ["a"]]:
        refusal = await ada_client.sio.call("chat", {"text": "hi", "id": bad_id})
        assert refusal["reason"] == "invalid" and "id must be 1 to 36" in refusal["message"], bad_id
    # Still connected and working, and nobody saw a broadcast of the bad ones.
    assert await ada_client.sio.call("whoami") == {"username": "ada", "logged_in_at": 1_700_000_000}
    await ada_client.sio.emit("chat", {"text": "fine"})
    assert (await bob_client.next("chat"))["text"] == "fine"
    assert bob_client.pending("chat") == 0
    assert bob_client.pending("error") == 0


@transports
@pytest.mark.gen_test
async def test_unknown_events_are_ignored(web_user, socket_client, transport: str) -> None:
    client = await socket_client((await logged_in(web_user, "ada")).cookie_header, transport)
    await client.sio.emit("no-such-event", {"x": 1})
    await client.sio.emit("welcome", {"username": "mallory"})
    assert await client.sio.call("whoami") == {"username": "ada", "logged_in_at": 1_700_000_000}
    assert client.pending("error") == 0


@pytest.mark.gen_test
async def test_presence_is_a_state_then_only_the_changes(web_user, socket_client) -> None:
    """A newcomer gets the state (people and version) once; then everyone gets only who came
    and went (a person joins with their first socket and leaves with their last)."""
    ada_client = await socket_client((await logged_in(web_user, "ada")).cookie_header)
    assert (await ada_client.next("presence_state"))["people"] == []  # she is in the next change
    ada_tag = (await ada_client.next("welcome"))["tag"]
    first = await ada_client.next("presence_diff")
    assert first["joins"] == [{"name": "ada", "tag": ada_tag, "skeleton": "ada"}] and first["leaves"] == []
    bob = await logged_in(web_user, "bob")
    bob_client = await socket_client(bob.cookie_header)
    state = await bob_client.next("presence_state")
    assert state == {"version": first["version"], "epoch": state["epoch"], "people": [{"name": "ada", "tag": ada_tag, "skeleton": "ada"}]}
    joined = await ada_client.next("presence_diff")
    assert [person["name"] for person in joined["joins"]] == ["bob"] and joined["version"] == first["version"] + 1
    await bob_client.sees_online(["ada", "bob"])
    # A second socket of bob changes nothing for ada; the newcomer gets the state.
    second = await socket_client(bob.cookie_header)
    assert [person["name"] for person in (await second.next("presence_state"))["people"]] == ["ada", "bob"]
    await second.sio.disconnect()
    await bob_client.sio.disconnect()
    left = await ada_client.next("presence_diff")
    assert left["joins"] == [] and [person["name"] for person in left["leaves"]] == ["bob"]
    assert left["version"] == joined["version"] + 1  # the second socket's coming and going: no change
    await ada_client.sees_online(["ada"])
    assert ada_client.pending("presence_diff") == 0


@pytest.mark.gen_test
async def test_a_page_that_missed_a_change_asks_for_the_state_again(web_user, socket_client) -> None:
    ada_client = await socket_client((await logged_in(web_user, "ada")).cookie_header)
    await ada_client.sees_online(["ada"])
    await socket_client((await logged_in(web_user, "bob")).cookie_header)
    await ada_client.sees_online(["ada", "bob"])
    state = await ada_client.sio.call("presence_state")
    assert [person["name"] for person in state["people"]] == ["ada", "bob"]
    assert state["version"] == ada_client.presence.version
    refusal = await ada_client.sio.call("presence_state")  # at most once a second per socket
    assert refusal["refused"] == STATE_SLOW_DOWN and 0 < refusal["retry_after"] <= 1.1


@transports
@pytest.mark.gen_test
async def test_logout_disconnects_exactly_that_sessions_sockets_within_100_ms(web_user, socket_client, app: TornadoApp, transport: str) -> None:
    ada_laptop = await logged_in(web_user, "ada")
    ada_phone = await logged_in(web_user, "ada")  # same user, another session
    laptop_sockets = [await socket_client(ada_laptop.cookie_header, transport) for _ in range(2)]
    phone_socket = await socket_client(ada_phone.cookie_header, transport)
    await asyncio.sleep(0.2)  # let polling clients finish upgrading

    started = time.monotonic()
    await ada_laptop.logout()
    for client in laptop_sockets:
        await client.next("disconnect")
    assert time.monotonic() - started < 0.1 + 0.05  # the logout request itself included
    assert all(not client.sio.connected for client in laptop_sockets)

    assert phone_socket.sio.connected
    assert await phone_socket.sio.call("whoami") == {"username": "ada", "logged_in_at": 1_700_000_000}
    assert len(app.sockets.registry) == 1


@pytest.mark.gen_test
async def test_login_again_in_the_same_browser_drops_the_old_sessions_sockets(web_user, socket_client) -> None:
    browser = await logged_in(web_user, "ada")
    old_socket = await socket_client(browser.cookie_header)
    await browser.login("grace")
    await old_socket.next("disconnect")
    assert (await (await socket_client(browser.cookie_header)).next("welcome"))["username"] == "grace"


@pytest.mark.gen_test
async def test_the_sweep_disconnects_sockets_of_expired_sessions(web_user, socket_client, app: TornadoApp, clock: FakeClock) -> None:
    idle = await socket_client((await logged_in(web_user, "idle")).cookie_header)
    active_user = await logged_in(web_user, "active")
    active = await socket_client(active_user.cookie_header)
    clock.advance(SESSION_TTL - 10)
    await active.sio.call("whoami")  # a socket event refreshes its session
    clock.advance(20)
    assert await app.sweep_expired_sessions() == 1
    await idle.next("disconnect")
    assert active.sio.connected
    assert (await active_user.get("/api/session")).code == 200


@pytest.mark.gen_test
async def test_an_expired_sessions_socket_event_gets_nothing_and_is_dropped(web_user, socket_client, clock: FakeClock) -> None:
    client = await socket_client((await logged_in(web_user, "ada")).cookie_header)
    clock.advance(SESSION_TTL + 1)
    with pytest.raises(socketio.exceptions.TimeoutError):
        await client.sio.call("whoami", timeout=0.5)
    await client.next("disconnect")


@pytest.mark.gen_test
async def test_eviction_disconnects_the_evicted_sessions_sockets(web_user, socket_client, app: TornadoApp) -> None:
    first = await socket_client((await logged_in(web_user, "first")).cookie_header)
    for number in range(MAX_SESSIONS):
        await logged_in(web_user, f"user{number}")
    await first.next("disconnect")
    assert await app.backend.store.count() == MAX_SESSIONS


@pytest.mark.gen_test
async def test_disconnects_leave_no_trace_in_the_registry(web_user, socket_client, app: TornadoApp) -> None:
    user = await logged_in(web_user, "ada")
    clients = [await socket_client(user.cookie_header, transport) for transport in TRANSPORTS for _ in range(3)]
    assert len(app.sockets.registry) == 6
    for client in clients:
        await client.sio.disconnect()
    await eventually(app.sockets.registry.is_empty, what="the registry is empty")


@pytest.mark.gen_test
async def test_json_nested_10000_deep_is_one_short_line_not_a_traceback_per_packet(
    web_user, http_client, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each such packet made json raise RecursionError, logged with its traceback (3.6 KB)."""
    caplog.set_level(logging.INFO)
    ada = await logged_in(web_user, "ada")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        socket = await WireSocket.connect(http, base_url, ada.cookie_header, origin=base_url)
        for _ in range(20):
            await socket.send_raw("42" + "[" * 10_000 + "]" * 10_000)
        assert (await socket.call("whoami"))["username"] == "ada"
        await socket.close()

    def malformed_lines() -> list[str]:
        return [record.getMessage() for record in caplog.records if "malformed" in record.getMessage()]

    # the count is logged when the server has closed the socket
    with contextlib.suppress(AssertionError):
        await eventually(lambda: len(malformed_lines()) > 1)
    ignored = malformed_lines()
    assert len(ignored) == 2, ignored  # the first one, and the count when the socket closed
    assert ignored[0].startswith("ignored a malformed Socket.IO packet (RecursionError: ")
    assert ignored[1] == "ignored 20 malformed packets in all from 127.0.0.1"
    assert all(len(message) < 250 for message in ignored)
    assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.WARNING]


@pytest.mark.gen_test
async def test_a_refused_socketio_request_is_one_info_line(http_client, base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """engineio's 400s (an old protocol version, an unknown session) were WARNINGs in the
    access log, and the first of each kind an ERROR printed twice."""
    caplog.set_level(logging.DEBUG)
    for query in ["EIO=3&transport=polling", "EIO=4&transport=polling&sid=nosuchsession", "EIO=4&transport=carrier-pigeon"]:
        response = await http_client.fetch(f"{base_url}/socket.io/?{query}", raise_error=False)
        assert response.code == 400
    lines = [record for record in caplog.records if record.levelno >= logging.INFO and record.name.startswith("tornado_app")]
    assert [record.getMessage() for record in lines] == [
        "refused GET /socket.io/ from 127.0.0.1: 400",
        # A sid engineio never makes is refused before engineio (transport.py), counted per kind.
        "refused socket requests with a malformed query: a malformed sid, the latest from 127.0.0.1",
        "refused GET /socket.io/ from 127.0.0.1: 400",
    ]
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


# --- The page as people use it: history, identity by session, honest endings, activity. ---


@pytest.mark.gen_test
async def test_a_late_joiner_gets_the_recent_conversation_bounded_and_in_order(web_user, socket_client, app: TornadoApp) -> None:
    ada = await socket_client((await logged_in(web_user, "ada")).cookie_header)
    first = await ada.next("history")
    assert first["messages"] == [] and first["resume"] == "none"  # nothing said yet: the page may say so
    for number in range(app.backend.history.size + 5):
        await ada.sio.emit("chat", {"text": f"message {number}"})
    for _ in range(app.backend.history.size + 5):
        await ada.next("chat")
    late = await socket_client((await logged_in(web_user, "late")).cookie_header)
    messages = (await late.next("history"))["messages"]
    assert [message["text"] for message in messages] == [f"message {number}" for number in range(5, app.backend.history.size + 5)]
    assert {message["username"] for message in messages} == {"ada"}


@pytest.mark.gen_test
async def test_two_people_with_one_name_are_two_people_told_apart_by_tag(web_user, socket_client) -> None:
    first = await socket_client((await logged_in(web_user, "alice")).cookie_header)
    first_tag = (await first.next("welcome"))["tag"]
    second = await socket_client((await logged_in(web_user, "alice")).cookie_header)
    second_tag = (await second.next("welcome"))["tag"]
    assert first_tag != second_tag and len(first_tag) == 11
    await first.sees_online(["alice", "alice"])
    assert sorted(first.presence.people) == sorted([first_tag, second_tag])
    await second.sio.emit("chat", {"text": "which alice?"})
    heard = await first.next("chat")
    assert heard["tag"] == second_tag != first_tag  # so the first alice's page does not call it hers


def test_the_public_tag_reveals_nothing_of_the_session_id() -> None:
    from tornado_app.sessions import new_session_id, new_tag

    tags = {new_tag() for _ in range(1000)}
    assert len(tags) == 1000
    assert all(tag not in new_session_id() for tag in list(tags)[:10])


@pytest.mark.parametrize("reason", ["logout", "replaced", "expired", "evicted"])
@pytest.mark.gen_test
async def test_the_server_says_why_a_session_ended_before_it_disconnects(
    web_user, socket_client, app: TornadoApp, clock: FakeClock, reason: str
) -> None:
    browser = await logged_in(web_user, "ada")
    client = await socket_client(browser.cookie_header)
    if reason == "logout":
        await browser.logout()
    elif reason == "replaced":
        await browser.login("grace")
    elif reason == "expired":
        clock.advance(SESSION_TTL + 1)
        await app.sweep_expired_sessions()
    else:
        for number in range(MAX_SESSIONS):
            await logged_in(web_user, f"user{number}")
    assert await client.next("ended") == {"reason": reason}
    await client.next("disconnect")


@pytest.mark.gen_test
async def test_a_page_reporting_activity_keeps_its_session_from_expiring(web_user, socket_client, app: TornadoApp, clock: FakeClock) -> None:
    reader = await socket_client((await logged_in(web_user, "reader")).cookie_header)
    abandoned = await socket_client((await logged_in(web_user, "abandoned")).cookie_header)
    for _ in range(3):  # a person reading for three times the idle TTL, reporting once a minute
        clock.advance(SESSION_TTL - 5)
        await reader.sio.emit("active")
        await asyncio.sleep(0.05)
    await app.sweep_expired_sessions()
    assert await abandoned.next("ended") == {"reason": "expired"}
    assert reader.pending("ended") == 0
    assert (await reader.sio.call("whoami"))["username"] == "reader"


@pytest.mark.parametrize("how", ["the client's 41", "a logout"])
def test_an_engineio_connection_left_open_after_its_socket_disconnects_is_closed(server_process: Any, how: str) -> None:
    """A client that leaves the namespace (`41`), or is disconnected by a logout, but keeps
    its connection open and answers pings used to hold it for good (300 of 300 stayed). It
    gets --connect-timeout (1 s here) to connect again, like a new connection, and is closed."""
    server = server_process("--port", "0", "--connect-timeout", "1")
    base = server.url.rstrip("/")

    async def scenario() -> float:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            cookie = await log_in(http, base, "ada")
            # It answers pings and ignores the rest until the server closes the connection.
            socket = await WireSocket.connect(http, base, cookie, origin=base, stay_after_disconnect=True)
            if how == "a logout":
                assert await log_out(http, base, cookie) == 303
            else:
                await socket.send_raw("41")
            left = time.monotonic()
            await socket.closed.wait()
            return time.monotonic() - left

    took = asyncio.run(asyncio.wait_for(scenario(), 15))
    assert took < 10, f"closed only after {took:.1f} s"
    status, _, log = server.stop()
    assert status == 0 and "Traceback" not in log
    assert "no Socket.IO connect within 1 s" in log


@pytest.mark.gen_test
async def test_idle_left_says_how_long_the_session_has_and_asking_is_not_a_use(web_user, socket_client, clock: FakeClock,
                                                                              app: TornadoApp) -> None:
    """What the page's warning a minute before the idle deadline reads (`welcome` gives the idle
    TTL); `active` renews the session and says so."""
    client = await socket_client((await logged_in(web_user, "ada")).cookie_header)
    ttl = app.backend.store.ttl
    assert (await client.next("welcome"))["idle_timeout"] == ttl
    clock.advance(ttl / 4)
    assert await client.sio.call("idle_left") == {"idle_left": ttl * 3 / 4}
    clock.advance(ttl / 4)
    assert await client.sio.call("idle_left") == {"idle_left": ttl / 2}  # asking renewed nothing
    assert await client.sio.call("active") == {"idle_left": ttl}
    assert await client.sio.call("idle_left") == {"idle_left": ttl}
