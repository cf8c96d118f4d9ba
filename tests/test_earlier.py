"""Your earlier session's messages (web/static/js/earlier.js): logged in again, the page marks
the messages of this browser's earlier sessions under your name "(you, earlier)", and nobody
else's, in Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import Person, launched_chromium, plain_server, wait_for_socket
from tests.support.constants import OUTPUT_DIR
from tests.support.e2e import e2e_unavailable
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e

SHOTS = OUTPUT_DIR / "browser"
KEY = "session-sockets:earlier-tags"  # earlier.js
NOTE = "(you, earlier)"


@pytest.fixture(scope="module")
def live_server() -> Iterator[ServerProcess]:
    yield from plain_server()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield from launched_chromium(e2e_unavailable)


@pytest.fixture
def people(browser: Any, live_server: ServerProcess) -> Iterator[Any]:
    made: list[Person] = []

    def make() -> Person:
        person = Person(browser, live_server.url)
        made.append(person)
        return person

    yield make
    for person in made:
        unexpected = [text for text in person.console_errors if "status of 4" not in text]
        person.context.close()
        assert unexpected == [], "the page logged errors"


def say(page: Any, text: str) -> Any:
    """Send `text`; its item in the conversation once the server has it."""
    page.fill("#chat-input", text)
    page.click("#chat-send")
    item = page.locator(f"#chat-messages .message:has-text('{text}')")
    item.wait_for()
    return item


def message(page: Any, text: str) -> Any:
    item = page.locator(f"#chat-messages .message:has-text('{text}')")
    item.wait_for()
    return item


def log_out(page: Any) -> None:
    page.click("#logout-form button[type=submit]")
    page.wait_for_url("**/login?logged_out=1")


def test_logged_in_again_your_earlier_messages_say_so_and_nobody_elses_do(people) -> None:
    ada_browser, bob_browser, other_ada_browser = people(), people(), people()
    first = ada_browser.log_in("ada")
    wait_for_socket(first, "connected")
    first_tag = first.get_attribute("#live-view", "data-tag")
    say(first, "ada before logging out")
    log_out(first)

    again = ada_browser.log_in("ada")
    wait_for_socket(again, "connected")
    assert again.get_attribute("#live-view", "data-tag") != first_tag  # a new session, a new tag
    earlier = message(again, "ada before logging out")
    note = earlier.locator(".message-earlier")
    note.wait_for()
    assert note.text_content() == NOTE
    assert "earlier session" in note.get_attribute("title")
    assert earlier.locator(".message-tag").text_content() == "#" + first_tag[:4]  # the name is shared now
    now = say(again, "ada after logging in again")
    assert now.locator(".message-earlier").count() == 0
    again.screenshot(path=SHOTS / "earlier-1-logged-in-again.png")

    bob = bob_browser.log_in("bob")
    wait_for_socket(bob, "connected")
    message(bob, "ada after logging in again")
    assert message(bob, "ada before logging out").locator(".message-earlier").count() == 0
    assert bob.locator(".message-earlier").count() == 0
    assert bob.locator(f"#online-users .person:has-text('{NOTE[1:-1]}')").count() == 0

    # Another person named ada, in another browser: none of the first ada's messages are
    # hers, and hers are not the first ada's.
    other = other_ada_browser.log_in("ada")
    wait_for_socket(other, "connected")
    message(other, "ada after logging in again")
    say(other, "the other ada")
    assert other.locator(".message-earlier").count() == 0
    message(again, "the other ada")
    assert message(again, "the other ada").locator(".message-earlier").count() == 0
    assert again.locator(".message-earlier").count() == 1
    other.screenshot(path=SHOTS / "earlier-2-another-ada.png")


def test_a_tag_this_browser_had_that_is_still_online_is_marked_in_the_online_list(people) -> None:
    """The same person online under an earlier session (their tag remembered here, as after a
    login on this browser whose earlier session another window still holds)."""
    still_online_browser, this_browser = people(), people()
    still_online = still_online_browser.log_in("grace")
    wait_for_socket(still_online, "connected")
    old_tag = still_online.get_attribute("#live-view", "data-tag")
    page = this_browser.open("/login")
    page.evaluate("([key, tags]) => localStorage.setItem(key, JSON.stringify(tags))", [KEY, [old_tag]])
    page.fill("#username", "grace")
    page.click("#login-form button[type=submit]")
    wait_for_socket(page, "connected")
    earlier = page.locator(f"#online-users .person[data-tag='{old_tag}']")
    earlier.wait_for()
    assert earlier.locator(".person-note").text_content() == f"you, earlier, #{old_tag[:4]}"
    assert "(you, earlier)" in earlier.get_attribute("title")
    mine = page.locator("#online-users .person.is-me")
    assert mine.locator(".person-note").text_content().startswith("you, #")
    # The other browser's page knows nothing of it.
    assert still_online.locator(f"#online-users .person:has-text('{NOTE[1:-1]}')").count() == 0
    page.screenshot(path=SHOTS / "earlier-3-online.png")


def test_the_browser_keeps_the_last_20_tags_and_shrugs_off_what_it_cannot_read(people) -> None:
    person = people()
    page = person.log_in("kept")
    wait_for_socket(page, "connected")
    tag = page.get_attribute("#live-view", "data-tag")
    many = [f"tag{number:03d}" for number in range(30)]
    page.evaluate("([key, tags]) => localStorage.setItem(key, JSON.stringify(tags))", [KEY, many])
    page.reload()
    wait_for_socket(page, "connected")
    kept = json.loads(page.evaluate("(key) => localStorage.getItem(key)", KEY))
    assert kept == [tag, *many[:19]]
    for garbage in ("{not json", json.dumps({"a": 1}), json.dumps([1, None, "<b>", "x" * 100])):
        page.evaluate("([key, value]) => localStorage.setItem(key, value)", [KEY, garbage])
        page.reload()
        wait_for_socket(page, "connected")
        assert json.loads(page.evaluate("(key) => localStorage.getItem(key)", KEY)) == [tag]
