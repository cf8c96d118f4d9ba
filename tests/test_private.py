"""Private messages (`private`), in one process with the store in memory: to every socket of
the person addressed by their tag and to the sender's other tabs, nobody else; refused in
words (and sent to nobody) for anything but a tag of a person online now; one rate with chat;
never kept. (Across processes in Redis: test_private_cluster.py; on the page: test_browser.py.)"""

from __future__ import annotations

from typing import Any

import pytest
import socketio

from tests.support.clock import FakeClock
from tests.support.constants import (
    ALLOWED_ORIGIN,
    MAX_SESSIONS,
    SESSION_TTL,
    TEST_SECRET,
    TRANSPORTS,
)
from tests.support.waiting import eventually
from tests.support.web_user import logged_in
from tests.test_sockets import BAD_CHAT_PAYLOADS
from tornado_app.app import TornadoApp, make_app
from tornado_app.backend import Backend
from tornado_app.private import person_room
from tornado_app.reasons import NOT_TO_YOURSELF, SESSION_ENDED
from tornado_app.settings import Settings


@pytest.fixture
def chat_rate() -> str:
    """--chat-rate of this test's app (a test parametrizes it to try the limit)."""
    return "off"


@pytest.fixture
def app(clock: FakeClock, chat_rate: str) -> TornadoApp:
    """conftest's app, with this module's --chat-rate."""
    settings = Settings.lifted(session_ttl=SESSION_TTL, max_sessions=MAX_SESSIONS, chat_rate=chat_rate)
    return make_app(TEST_SECRET, settings=settings, backend=Backend.in_memory(settings, clock=clock), allowed_origins=[ALLOWED_ORIGIN])


async def person(web_user: Any, socket_client: Any, name: str, tabs: int = 1, transport: str = "websocket") -> tuple[str, list[Any]]:
    """Someone logged in with `tabs` sockets: (their tag, their sockets)."""
    browser = await logged_in(web_user, name)
    sockets = [await socket_client(browser.cookie_header, transport) for _ in range(tabs)]
    return (await sockets[0].next("welcome"))["tag"], sockets


async def nothing_private_came(sockets: list[Any], sender: Any) -> None:
    """A public message sent after the private one reaches every socket; packets to a socket
    keep their order, so a private message that had not come before it never will."""
    await sender.sio.emit("chat", {"text": "barrier"})
    for socket in sockets:
        while (await socket.next("chat"))["text"] != "barrier":
            pass
        assert socket.pending("private") == 0


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.gen_test
async def test_a_private_message_reaches_the_recipients_every_socket_and_the_senders_other_tabs_only(
    web_user, socket_client, clock: FakeClock, transport: str
) -> None:
    ada_tag, ada_tabs = await person(web_user, socket_client, "ada", tabs=2, transport=transport)
    bob_tag, [bob, bob_other_tab] = await person(web_user, socket_client, "bob", tabs=2, transport=transport)
    _, carol_tabs = await person(web_user, socket_client, "carol", tabs=2, transport=transport)
    await bob.sees_online(["ada", "bob", "carol"])
    clock.advance(5)
    ack = await bob.sio.call("private", {"to": ada_tag, "text": "just for you <b>ada</b>", "id": "page-id-1",
                                         "from": {"name": "mallory", "tag": "forged"}})
    assert ack["ok"] is True, ack
    message = ack["message"]
    assert message == {"id": message["id"], "text": "just for you <b>ada</b>", "time": 1_700_000_005,
                       "from": {"name": "bob", "tag": bob_tag, "skeleton": "bob"},
                       "to": {"name": "ada", "tag": ada_tag, "skeleton": "ada"}}
    for socket in [*ada_tabs, bob_other_tab]:
        assert await socket.next("private") == message
    await nothing_private_came([*ada_tabs, bob, bob_other_tab, *carol_tabs], bob)


@pytest.mark.gen_test
async def test_a_retry_of_the_same_page_id_has_the_same_message_id_so_pages_show_it_once(web_user, socket_client) -> None:
    ada_tag, [ada] = await person(web_user, socket_client, "ada")
    _, [bob] = await person(web_user, socket_client, "bob")
    _, [eve] = await person(web_user, socket_client, "eve")
    await bob.sees_online(["ada", "bob", "eve"])
    first = (await bob.sio.call("private", {"to": ada_tag, "text": "once", "id": "same-id"}))["message"]
    again = (await bob.sio.call("private", {"to": ada_tag, "text": "once", "id": "same-id"}))["message"]
    other = (await bob.sio.call("private", {"to": ada_tag, "text": "once", "id": "other-id"}))["message"]
    without = (await bob.sio.call("private", {"to": ada_tag, "text": "once"}))["message"]
    assert first["id"] == again["id"] and len({first["id"], other["id"], without["id"]}) == 3
    # Another session sending the same page id gets an id of its own.
    theirs = (await eve.sio.call("private", {"to": ada_tag, "text": "once", "id": "same-id"}))["message"]
    assert theirs["id"] != first["id"]
    assert [(await ada.next("private"))["id"] for _ in range(5)] == [first["id"], first["id"], other["id"], without["id"], theirs["id"]]


@pytest.mark.gen_test
async def test_private_messages_are_never_in_a_history_or_a_catch_up(web_user, socket_client) -> None:
    ada_tag, [ada] = await person(web_user, socket_client, "ada")
    _, [bob] = await person(web_user, socket_client, "bob")
    await bob.sees_online(["ada", "bob"])
    start = (await bob.next("history"))["position"]
    await bob.sio.emit("chat", {"text": "public"})
    assert (await bob.sio.call("private", {"to": ada_tag, "text": "secret", "id": "p1"}))["ok"] is True
    await ada.next("private")
    # A newcomer, a new tab of ada's, and a page catching up: the public message only.
    _, [newcomer] = await person(web_user, socket_client, "carol")
    assert [message["text"] for message in (await newcomer.next("history"))["messages"]] == ["public"]
    caught_up = await bob.sio.call("catch_up", {"after": start})
    assert caught_up["resume"] == "caught_up" and [message["text"] for message in caught_up["messages"]] == ["public"]


@pytest.mark.gen_test
async def test_anything_but_the_tag_of_someone_else_online_is_refused_in_words_and_sent_to_nobody(web_user, socket_client) -> None:
    ada_tag, [ada] = await person(web_user, socket_client, "ada")
    bob_tag, [bob] = await person(web_user, socket_client, "bob")
    await bob.sees_online(["ada", "bob"])
    for to in [None, 5, "", "x" * 33, "not a tag!", ["a"], {"tag": ada_tag}]:
        refusal = await bob.sio.call("private", {"to": to, "text": "hi"})
        assert refusal["ok"] is False and refusal["reason"] == "invalid", (to, refusal)
        assert 'needs "to": the tag of a person online' in refusal["message"]
    assert (await bob.sio.call("private", {"text": "hi"}))["reason"] == "invalid"  # no "to" at all
    assert await bob.sio.call("private", {"to": bob_tag, "text": "hi"}) == {"ok": False, "reason": "invalid", "message": NOT_TO_YOURSELF}
    # Well formed, but nobody online has it (a tag made up, or the name instead of the tag).
    for to in ["AAAAAAAAAAA", ada_tag[:-1], "ada"]:
        assert await bob.sio.call("private", {"to": to, "text": "hi"}) == {
            "ok": False, "reason": "offline", "message": f"#{to[:4]} is not online now: this message was not sent"}
    # The text's rules are chat's, with the same words; and the page's id.
    for payload, words in BAD_CHAT_PAYLOADS:
        addressed = {**payload, "to": ada_tag} if isinstance(payload, dict) else payload
        refusal = await bob.sio.call("private", addressed)
        assert refusal["reason"] == "invalid" and words in refusal["message"], (payload, refusal)
    assert "id must be 1 to 36" in (await bob.sio.call("private", {"to": ada_tag, "text": "hi", "id": "no spaces"}))["message"]
    assert (await bob.sio.call("private"))["reason"] == "invalid"  # no payload
    assert (await bob.sio.call("private", ({"to": ada_tag, "text": "a"}, {"to": ada_tag, "text": "b"})))["reason"] == "invalid"
    await nothing_private_came([ada, bob], bob)
    # Once ada's last socket is gone she is offline: refused, the same words.
    await ada.sio.disconnect()
    await bob.sees_online(["bob"])
    assert (await bob.sio.call("private", {"to": ada_tag, "text": "are you there?"}))["reason"] == "offline"


@pytest.mark.parametrize("chat_rate", ["3/minute"])
@pytest.mark.gen_test
async def test_private_and_chat_messages_share_one_rate(web_user, socket_client, chat_rate: str) -> None:
    ada_tag, [ada] = await person(web_user, socket_client, "ada")
    bob_tag, [bob] = await person(web_user, socket_client, "bob")
    await bob.sees_online(["ada", "bob"])
    assert (await bob.sio.call("chat", {"text": "one"}))["ok"] is True
    assert (await bob.sio.call("private", {"to": ada_tag, "text": "two"}))["ok"] is True
    assert (await bob.sio.call("chat", {"text": "three"}))["ok"] is True
    refused = await bob.sio.call("private", {"to": ada_tag, "text": "four"})
    assert refused == {"ok": False, "reason": "rate", "message": "slow down: too many messages (at most 3 per 1 minute): this message was not sent"}
    assert (await bob.sio.call("chat", {"text": "five"}))["reason"] == "rate"
    assert (await ada.next("private"))["text"] == "two"
    assert [(await ada.next("chat"))["text"] for _ in range(2)] == ["one", "three"]
    assert (await ada.sio.call("private", {"to": bob_tag, "text": "ada's own budget"}))["ok"] is True


@pytest.mark.gen_test
async def test_a_socket_is_in_its_persons_room_while_connected_and_a_refused_one_never_stays(
    web_user, socket_client, app: TornadoApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entered at the accept (so a message reaches a socket from its connect on), left with its
    disconnect; a connect refused after entering (its session ended meanwhile) leaves it too."""
    browser = await logged_in(web_user, "ada")
    ada = await socket_client(browser.cookie_header)
    tag = (await ada.next("welcome"))["tag"]
    rooms = app.sockets.sio.manager.rooms["/"]
    assert list(rooms[person_room(tag)]) == [ada.sio.get_sid("/")]
    # The session ends between the two looks of a connect: refused, out of every room.
    store = app.backend.store
    real_get = store.get
    looks = 0

    async def ends_on_the_second_look(session_id: str | None) -> Any:
        nonlocal looks
        looks += 1
        return None if looks == 2 else await real_get(session_id)

    monkeypatch.setattr(store, "get", ends_on_the_second_look)
    with pytest.raises(socketio.exceptions.ConnectionError) as refused:
        await socket_client(browser.cookie_header)
    assert await refused.value.client.next("connect_error") == {"message": SESSION_ENDED}
    monkeypatch.undo()
    assert list(rooms[person_room(tag)]) == [ada.sio.get_sid("/")]
    await ada.sio.disconnect()
    await eventually(lambda: person_room(tag) not in rooms, what="ada's room is gone with her last socket")
    assert app.sockets.sio.manager.rooms_of.get("/", {}) == {}


def test_presence_knows_who_is_online_by_tag_in_any_process_until_their_last_place_goes() -> None:
    """The address book of private messages: a person is online by their tag while any
    process has them (here, another process, or both), O(1) per question."""
    from tornado_app.presence import HERE, PresenceBook
    from tornado_app.registry import Person

    book = PresenceBook()
    ada, bob = Person("ada", "AAAAAAAAAAA"), Person("bob", "BBBBBBBBBBB")
    assert book.online(ada.tag) is None
    book.add(HERE, ada)
    book.add("0123456789abcdef", ada)
    book.replace("fedcba9876543210", [bob])
    assert book.online(ada.tag) == ada and book.online(bob.tag) == bob
    book.remove(HERE, ada)
    assert book.online(ada.tag) == ada  # still online in another process
    book.remove("0123456789abcdef", ada)
    book.replace("fedcba9876543210", [])
    assert book.online(ada.tag) is None and book.online(bob.tag) is None
    assert book.online("ada") is None  # a name is no address
