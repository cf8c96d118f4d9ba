"""Presence: a state once, then only the changes, versioned; a person joins with their first
socket and leaves with their last; a change batch costs what changed."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.presence import PresenceView
from tests.support.web_user import logged_in
from tornado_app.presence import HERE, PresenceBook
from tornado_app.presence_asks import (
    PER_ADDRESS_BURST,
    PER_ADDRESS_EVERY,
    PER_SESSION_EVERY,
    PER_SOCKET_EVERY,
    StateAsks,
)
from tornado_app.registry import Person

ADA, BOB, CY = Person("ada", "tag-ada-0000"), Person("bob", "tag-bob-0000"), Person("cy", "tag-cy-00000")


def test_a_batch_holds_who_came_and_who_went_and_nobody_who_did_both() -> None:
    book = PresenceBook()
    book.add(HERE, ADA)
    book.add(HERE, BOB)
    assert book.take_changes() == (1, [ADA, BOB], [])
    book.remove(HERE, BOB)  # left...
    book.add(HERE, BOB)  # ...and came back within one batch: no change
    book.add(HERE, CY)  # came...
    book.remove(HERE, CY)  # ...and went: no change
    assert book.take_changes() is None and book.version == 1
    book.remove(HERE, ADA)
    assert book.take_changes() == (2, [], [ADA])
    assert book.state() == {"version": 2, "epoch": book.epoch, "people": [{"name": "bob", "tag": "tag-bob-0000", "skeleton": "bob"}]}


def test_a_person_online_in_two_places_leaves_with_the_last() -> None:
    book = PresenceBook()
    book.add(HERE, ADA)
    book.add("0123456789abcdef", ADA)  # a tab on another process
    assert book.take_changes() == (1, [ADA], [])
    book.remove(HERE, ADA)
    assert book.take_changes() is None
    book.replace("0123456789abcdef", [])  # that process died
    assert book.take_changes() == (2, [], [ADA])


def test_a_page_applies_changes_in_version_order_and_notices_a_gap() -> None:
    page = PresenceView()
    page.event("presence_diff", {"version": 4, "joins": [{"name": "cy", "tag": "c"}], "leaves": []})  # before the state: held
    page.event("presence_state", {"version": 3, "people": [{"name": "ada", "tag": "a"}]})
    assert page.names() == ["ada", "cy"] and page.version == 4
    page.event("presence_diff", {"version": 4, "joins": [{"name": "cy", "tag": "c"}], "leaves": []})  # again: ignored
    page.event("presence_diff", {"version": 6, "joins": [{"name": "dan", "tag": "d"}], "leaves": []})  # 5 is missing
    assert page.gapped and page.names() == ["ada", "cy"]
    page.event("presence_diff", {"version": 5, "joins": [], "leaves": [{"name": "ada", "tag": "a"}]})  # late, out of order
    assert not page.gapped and page.names() == ["cy", "dan"] and page.version == 6


@pytest.mark.gen_test
async def test_a_burst_of_arrivals_is_one_or_two_batches(web_user, socket_client) -> None:
    """Changes go out at most every 100 ms: a burst of four arrivals is one or two batches."""
    observer = await socket_client((await logged_in(web_user, "observer")).cookie_header)
    await observer.sees_online(["observer"])
    while observer.pending("presence_diff"):
        await observer.next("presence_diff")
    cookies = [(await logged_in(web_user, f"user{number}")).cookie_header for number in range(4)]
    await asyncio.gather(*(socket_client(cookie) for cookie in cookies))
    await observer.sees_online(["observer", "user0", "user1", "user2", "user3"])
    await asyncio.sleep(0.25)
    assert 1 <= observer.pending("presence_diff") <= 2


def test_the_state_is_encoded_once_per_version() -> None:
    book = PresenceBook()
    book.add(HERE, ADA)
    book.take_changes()
    first = book.encoded_state()
    assert book.encoded_state() is first  # asked again: nothing encoded
    assert json.loads(first.text) == {"version": 1, "epoch": book.epoch, "people": [{"name": "ada", "tag": "tag-ada-0000", "skeleton": "ada"}]}
    book.add(HERE, BOB)
    assert book.encoded_state() is first  # not announced yet: still version 1
    book.take_changes()
    assert json.loads(book.encoded_state().text)["version"] == 2


def test_state_asks_get_a_fair_share_per_socket_session_and_address() -> None:
    """One socket once a second; one session 3 at once, then one every 5 s whatever its number
    of sockets; one address 20 at once, then one a second whatever its number of sessions."""
    now = [1000.0]
    asks = StateAsks(clock=lambda: now[0])
    assert asks.wait("s1", "session-a", "10.0.0.1") == 0
    assert asks.wait("s1", "session-a", "10.0.0.1") == pytest.approx(PER_SOCKET_EVERY)
    assert [asks.wait(f"s{n}", "session-a", "10.0.0.1") for n in range(2, 5)] == [0, 0, pytest.approx(PER_SESSION_EVERY)]
    now[0] += PER_SESSION_EVERY
    assert asks.wait("s4", "session-a", "10.0.0.1") == 0
    assert asks.wait("s5", "session-a", "10.0.0.1") == pytest.approx(PER_SESSION_EVERY)
    # Many sessions of one address: each its own share, all within the address's.
    crowd = StateAsks(clock=lambda: now[0])
    answered = sum(crowd.wait(f"t{n}", f"session-{n}", "10.0.0.1") == 0 for n in range(40))
    assert answered == PER_ADDRESS_BURST
    assert crowd.wait("t99", "session-99", "10.0.0.1") == pytest.approx(PER_ADDRESS_EVERY)
    assert crowd.wait("u1", "session-u", "10.0.0.2") == 0  # another address is not held back
    now[0] += 3600
    asks.wait("s1", "session-a", "10.0.0.1")
    assert asks.tracked() == 3  # budgets whole again are forgotten: only the latest ask's
