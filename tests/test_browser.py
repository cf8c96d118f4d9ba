"""The page in a real browser (Debian's Chromium driven by Playwright), as a person uses it.

Each test saves screenshots of the states it reaches under test-output/browser/.
"""

from __future__ import annotations

import asyncio
import http.cookies
import http.server
import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.support.browser import (
    PHONE,
    TIMEOUT_MS,
    VIEWPORT,
    Person,
    box,
    in_first_screen,
    launched_chromium,
    plain_server,
    socket_state,
    wait_for_socket,
)
from tests.support.constants import OUTPUT_DIR
from tests.support.e2e import e2e_unavailable
from tests.support.forms import log_in
from tests.support.matching import found
from tests.support.processes import ServerProcess
from tests.support.wire import WireSocket
from tornado_app.reasons import STATE_SLOW_DOWN

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture says so, with the reason
    expect = None  # type: ignore[assignment]  # not used then

pytestmark = pytest.mark.e2e

SHOTS = OUTPUT_DIR / "browser"


@pytest.fixture(scope="module")
def live_server() -> Iterator[ServerProcess]:
    """The plain server, as `make serve` runs it, on a free port."""
    yield from plain_server()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield from launched_chromium(e2e_unavailable)


SIZES = pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["1280x800", "390x844"])


@pytest.fixture
def people(browser: Any, live_server: ServerProcess) -> Iterator[Any]:
    made: list[Person] = []

    def make(viewport: dict[str, int] = VIEWPORT) -> Person:
        person = Person(browser, live_server.url, viewport)
        made.append(person)
        return person

    yield make
    for person in made:
        # Failed loads of resources the server refuses on purpose are not page errors.
        unexpected = [text for text in person.console_errors if "status of 4" not in text]
        person.context.close()
        assert unexpected == [], "the page logged errors"


def test_log_in_through_the_form_shows_the_user_and_a_connected_socket(people) -> None:
    page = people().log_in("Ada")
    wait_for_socket(page, "connected")
    assert page.text_content("#current-user") == "Ada"
    page.wait_for_selector("#online-users li:has-text('Ada')")
    page.wait_for_selector("#handshake-log li:has-text('welcome')")
    page.click("#whoami-button")
    page.wait_for_selector("#whoami-result:has-text('Ada')")
    page.screenshot(path=SHOTS / "1-logged-in.png")


def test_two_people_chat_and_each_sees_both_messages_and_both_names(people) -> None:
    ada, grace = people().log_in("Ada"), people().log_in("Grace <b>")
    for page in (ada, grace):
        wait_for_socket(page, "connected")
    ada.fill("#chat-input", "Hello Grace, <i>this</i> is Ada")
    ada.press("#chat-input", "Enter")
    grace.wait_for_selector("#chat-messages li:has-text('this</i> is Ada')")
    grace.fill("#chat-input", "Hi Ada!")
    grace.click("#chat-form button[type=submit]")
    for page in (ada, grace):
        page.wait_for_selector("#chat-messages li:has-text('Hi Ada!')")
        messages = page.locator("#chat-messages li").all_inner_texts()
        assert any("Ada" in text and "Hello Grace, <i>this</i> is Ada" in text for text in messages)
        assert any("Grace <b>" in text and "Hi Ada!" in text for text in messages)
        page.wait_for_selector("#online-users li:has-text('Grace <b>')")
        assert set(page.locator("#online-users .person-name").all_inner_texts()) >= {"Ada", "Grace <b>"}
        assert page.locator("#chat-messages i, #online-users b").count() == 0  # shown as text, never markup
    ada.screenshot(path=SHOTS / "2-chat-ada.png")
    grace.screenshot(path=SHOTS / "2-chat-grace.png")


def test_a_bad_username_shows_the_error_and_keeps_the_form(people) -> None:
    person = people()
    page = person.log_in("x" * 40)
    page.wait_for_selector("#login-error")
    assert "at most 32 characters" in page.text_content("#login-error")
    assert page.input_value("#username") == "x" * 40
    page.screenshot(path=SHOTS / "3-bad-username.png")
    page.fill("#username", "   ")
    page.click("#login-form button[type=submit]")
    assert "Enter a username." in page.text_content("#login-error")
    assert not any(cookie["name"] == "session" for cookie in person.context.cookies())


def test_logout_in_one_tab_disconnects_the_other_tab_of_that_session_only(people) -> None:
    ada = people()
    first_tab = ada.log_in("Ada")
    wait_for_socket(first_tab, "connected")
    second_tab = ada.open("/")
    wait_for_socket(second_tab, "connected")
    grace_page = people().log_in("Grace")
    wait_for_socket(grace_page, "connected")

    second_tab.click("#logout-form button[type=submit]")
    wait_for_socket(first_tab, "disconnected")
    # One reason, in plain words; the transport's jargon only in the handshake log.
    assert first_tab.text_content("#socket-reason") == "session ended"
    assert first_tab.text_content("#socket-help-text") == "You logged out, here or in another tab, so this session has ended."
    assert first_tab.is_visible("#socket-help-login")
    assert not first_tab.is_visible("#header-session")  # no "Signed in as" for a gone session
    assert first_tab.text_content("#session-status") == "ended"
    # The log tells each step in words, without Socket.IO's reason codes.
    assert "disconnected: the server closed this connection" in first_tab.text_content("#handshake-log")
    assert "io server disconnect" not in first_tab.inner_text("#live-view")
    first_tab.screenshot(path=SHOTS / "4-other-tab-after-logout.png")
    assert second_tab.url.endswith("/login?logged_out=1")
    assert "You have logged out" in second_tab.text_content("#logged-out")
    assert socket_state(grace_page) == "connected"
    expect(grace_page.locator("#online-users")).not_to_contain_text("Ada")


def test_a_page_opened_after_logout_shows_the_socket_refused(people) -> None:
    ada = people()
    page = ada.log_in("Ada")
    wait_for_socket(page, "connected")
    page.click("#logout-form button[type=submit]")
    page.wait_for_url("**/login?logged_out=1")
    later = ada.open("/")
    wait_for_socket(later, "refused")
    assert later.text_content("#socket-reason") == "not authenticated"
    later.screenshot(path=SHOTS / "5-after-logout-refused.png")



def test_a_late_joiner_sees_the_conversation_and_the_empty_state_tells_the_truth(browser) -> None:
    server = ServerProcess("--port", "0", "--history", "50")  # its own: nothing said yet
    try:
        first = Person(browser, server.url)
        ada = first.log_in("Ada")
        wait_for_socket(ada, "connected")
        ada.wait_for_selector("#chat-empty:has-text('No messages yet')")
        ada.fill("#chat-input", "said before Grace came")
        ada.press("#chat-input", "Enter")
        ada.wait_for_selector("#chat-messages li:has-text('said before Grace came')")
        assert ada.is_hidden("#chat-empty")

        grace = Person(browser, server.url).log_in("Grace")
        wait_for_socket(grace, "connected")
        grace.wait_for_selector("#chat-messages li:has-text('said before Grace came')")
        assert grace.is_hidden("#chat-empty")
        grace.screenshot(path=SHOTS / "6-late-joiner-sees-history.png")
        ada.reload()  # a reload keeps one's own chat
        wait_for_socket(ada, "connected")
        ada.wait_for_selector("#chat-messages li.is-me:has-text('said before Grace came')")
        assert ada.locator("#chat-messages li").count() == 1  # history and live never repeat one
        first.context.close()
        grace.context.close()
    finally:
        server.close()


@SIZES
def test_two_people_with_the_same_name_are_told_apart_by_their_tags_everywhere(people, viewport: dict[str, int]) -> None:
    size = f"{viewport['width']}x{viewport['height']}"
    first, second = people(viewport).log_in("Alice"), people(viewport).log_in("Alice")
    tags = {}
    for page in (first, second):
        wait_for_socket(page, "connected")
        tags[page] = page.get_attribute("#live-view", "data-tag")[:4]
        # Each Alice sees her own tag on her session card.
        assert page.text_content("#current-tag") == "#" + tags[page]
    said_first, said_second = f"I was here first ({size})", f"I am the second Alice ({size})"
    first.fill("#chat-input", said_first)
    first.press("#chat-input", "Enter")
    second.fill("#chat-input", said_second)
    second.press("#chat-input", "Enter")
    for page, other in ((first, second), (second, first)):
        expect(page.locator("#online-users li[data-username='Alice']")).to_have_count(2)
        notes = page.locator("#online-users li[data-username='Alice'] .person-note").all_inner_texts()
        assert sorted(notes) == sorted([f"you, #{tags[page]}", f"#{tags[other]}"]), notes
        # In the chat too: who wrote what, by tag.
        for writer, text in ((first, said_first), (second, said_second)):
            message = page.locator(f"#chat-messages li:has-text('{text}')")
            expect(message.locator(".message-tag")).to_have_text("#" + tags[writer])
    mine = f"#chat-messages li.is-me:has-text('{said_second}')"
    assert second.locator(mine).count() == 1 and first.locator(mine).count() == 0  # styled as one's own only
    first.screenshot(path=SHOTS / f"7-two-alices-{size}.png")


def test_a_name_nobody_shares_shows_no_tag_in_the_chat(people) -> None:
    page = people().log_in("Unique Ursula")
    wait_for_socket(page, "connected")
    page.fill("#chat-input", "only one of me")
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-messages li.is-me:has-text('only one of me')")
    assert page.locator("#chat-messages li.is-me .message-tag").count() == 0
    assert page.locator("#online-users li.is-me .person-note").inner_text() == "you"


def phone_person(browser: Any, base_url: str) -> Person:
    person = Person(browser, base_url)
    person.context.close()
    person.context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    person.context.set_default_timeout(TIMEOUT_MS)
    return person


def test_on_a_phone_the_headline_stays_and_then_the_chat_comes_first(browser, live_server: ServerProcess) -> None:
    person = phone_person(browser, live_server.url)
    page = person.open("/")
    page.wait_for_selector("#socket-state[data-state=refused]")
    assert page.evaluate("window.scrollY") == 0  # focusing the name field scrolled nothing away
    assert box(page, "#intro-heading")["y"] >= 0
    assert page.evaluate("document.activeElement.id") == "username"
    page.screenshot(path=SHOTS / "8-phone-logged-out.png")

    page.fill("#username", "Ada on a phone")
    page.click("#login-form button[type=submit]")
    wait_for_socket(page, "connected")
    page.evaluate("window.scrollTo(0, 0)")
    chat, send = box(page, "#chat-scroll"), box(page, "#chat-input")
    assert chat["y"] < PHONE["height"] and send["y"] + send["height"] <= PHONE["height"], (chat, send)
    online, session = box(page, "#online-card"), box(page, "#session-heading")
    assert send["y"] < online["y"] < session["y"]  # the online list right after the chat
    assert page.evaluate("document.activeElement.id") == "chat-input"  # ready to type
    page.screenshot(path=SHOTS / "9-phone-logged-in.png")
    person.context.close()


def test_on_a_phone_the_login_form_comes_before_the_explanation(browser, live_server: ServerProcess) -> None:
    page = phone_person(browser, live_server.url).open("/")
    page.wait_for_selector("#socket-state[data-state=refused]")
    assert box(page, "#intro-heading")["y"] < box(page, "#login-form")["y"] < box(page, ".steps")["y"]
    assert in_first_screen(page, "#login-form button[type=submit]", PHONE)
    page.screenshot(path=SHOTS / "8-phone-login-first.png")
    wide = Person(browser, live_server.url).open("/")
    assert box(wide, "#login-form")["x"] > box(wide, ".steps")["x"]  # beside the explanation on a wide screen
    wide.context.close()
    page.context.close()


@SIZES
def test_after_a_logout_elsewhere_the_ending_is_said_where_the_eye_is(people, viewport: dict[str, int]) -> None:
    size = f"{viewport['width']}x{viewport['height']}"
    ada = people(viewport)
    page = ada.log_in("Ada")
    wait_for_socket(page, "connected")
    other_tab = ada.open("/")
    other_tab.click("#logout-form button[type=submit]")
    wait_for_socket(page, "disconnected")
    banner = page.locator("#chat-ended")
    expect(banner).to_contain_text("You logged out, here or in another tab, so this session has ended.")
    expect(banner.locator("a")).to_have_text("Log in again")
    assert in_first_screen(page, "#chat-ended", viewport)
    assert page.get_attribute("#chat-input", "placeholder") == "Not connected"
    page.screenshot(path=SHOTS / f"10-ended-where-the-eye-is-{size}.png")


@SIZES
def test_a_long_paste_is_counted_and_explained_and_never_sent_cut_short(people, viewport: dict[str, int]) -> None:
    size = f"{viewport['width']}x{viewport['height']}"
    page = people(viewport).log_in("Paster")
    wait_for_socket(page, "connected")
    pasted = "word " * 122 + "end"  # 613 characters
    page.fill("#chat-input", pasted)
    assert page.input_value("#chat-input") == pasted  # nothing cut off by the field
    expect(page.locator("#chat-count")).to_have_text("613/500")
    assert "is-over-limit" in page.get_attribute("#chat-count", "class")
    expect(page.locator("#chat-notice [aria-hidden=true]")).to_have_text("Too long to send: 613 characters, at most 500. Shorten it by 113.")
    page.screenshot(path=SHOTS / f"11-long-paste-{size}.png")
    page.press("#chat-input", "Enter")
    page.wait_for_timeout(500)  # long enough for a message to come back, had one been sent
    assert page.locator("#chat-messages li.is-me").count() == 0 and page.input_value("#chat-input") == pasted
    page.fill("#chat-input", pasted[:500])
    expect(page.locator("#chat-notice")).to_be_hidden()
    page.press("#chat-input", "Enter")
    expect(page.locator("#chat-messages li.is-me")).to_have_count(1)
    assert page.locator("#chat-messages li.is-me .message-text").text_content() == pasted[:500]

    page.fill("#chat-input", "    ")
    page.press("#chat-input", "Enter")
    expect(page.locator("#chat-notice")).to_have_text("Nothing was sent: the message is only spaces.")
    assert page.locator("#chat-messages li.is-me").count() == 1


@SIZES
def test_new_messages_below_a_reader_who_scrolled_up_are_announced_and_one_click_away(people, viewport: dict[str, int]) -> None:
    size = f"{viewport['width']}x{viewport['height']}"
    reader, writer = people(viewport).log_in(f"Reader {size}"), people().log_in(f"Writer {size}")
    wait_for_socket(reader, "connected")
    wait_for_socket(writer, "connected")
    for number in range(12):  # enough to scroll, under the chat rate (20 per 10 s)
        writer.fill("#chat-input", f"filler {number} of {size}")
        writer.press("#chat-input", "Enter")
    reader.wait_for_selector(f"#chat-messages li:has-text('filler 11 of {size}')")
    expect(reader.locator("#chat-newer")).to_be_hidden()  # at the bottom: nothing to announce
    reader.evaluate("document.getElementById('chat-scroll').scrollTop = 0")
    writer.fill("#chat-input", f"news for the reader ({size})")
    writer.press("#chat-input", "Enter")
    reader.wait_for_selector(f"#chat-messages li:has-text('news for the reader ({size})')", state="attached")
    expect(reader.locator("#chat-newer")).to_be_visible()
    assert reader.evaluate("document.getElementById('chat-scroll').scrollTop") == 0  # the reader's place is kept
    reader.screenshot(path=SHOTS / f"12-new-messages-hint-{size}.png")
    reader.click("#chat-newer")
    expect(reader.locator("#chat-newer")).to_be_hidden()
    expect(reader.locator(f"#chat-messages li:has-text('news for the reader ({size})')")).to_be_in_viewport()


def test_the_login_form_says_the_length_limit_before_it_is_sent(people) -> None:
    page = people().open("/login")
    page.fill("#username", "x" * 33)
    expect(page.locator("#username-hint")).to_have_text("33 characters: a username is at most 32. Shorten it by 1.")
    page.fill("#username", "x" * 32)
    expect(page.locator("#username-hint")).to_contain_text("1 to 32 characters")


@pytest.fixture
def restartable_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A server on a fixed port that the test stops and starts again (in memory, or in Redis
    when the test is parametrized with redis=True)."""
    from deploy.services import free_port

    port = free_port()
    args = ["--port", str(port), "--cookie-secret", "r" * 32]
    if getattr(request, "param", False):
        args += ["--redis-url", request.getfixturevalue("redis_url")]
    servers = [ServerProcess(*args)]

    def stop() -> None:
        servers[-1].stop()

    def start() -> None:
        servers.append(ServerProcess(*args))

    yield servers[0], stop, start
    for server in servers:
        server.close()


@SIZES
@pytest.mark.parametrize("restartable_server", [False], indirect=True, ids=["memory"])
def test_after_a_restart_in_memory_the_page_says_the_session_is_gone(browser, restartable_server: Any, viewport: dict[str, int]) -> None:
    size = f"{viewport['width']}x{viewport['height']}"
    server, stop, start = restartable_server
    person = Person(browser, server.url, viewport)
    page = person.log_in("Ada")
    wait_for_socket(page, "connected")
    stop()
    wait_for_socket(page, "connecting")
    written = "written while it was down"
    page.fill("#chat-input", written)  # the field stays writable while reconnecting
    page.press("#chat-input", "Enter")
    on_its_way = page.locator("#chat-outbox li.message")
    expect(on_its_way).to_contain_text("not sent yet: it goes when the page is connected again")
    start()
    wait_for_socket(page, "refused")
    # The session did not survive: the message will never go, and the page says so, text kept.
    expect(on_its_way).to_contain_text(written)
    expect(on_its_way).to_contain_text("not sent: this session has ended. Copy the text before you log in again to send it.")
    assert "it goes when the page is connected again" not in on_its_way.inner_text()
    help_text = "The server restarted, and this session did not survive it. Log in again to go on."
    expect(page.locator("#socket-help-text")).to_have_text(help_text)
    expect(page.locator("#chat-ended")).to_contain_text(help_text)
    assert "The server is stopping" not in page.inner_text("#live-view")
    assert page.text_content("#session-status") == "gone"
    log = page.text_content("#handshake-log")
    assert "server: stopping; this page reconnects, to another server or to this one when it is back" in log
    assert "session ended (shutdown)" not in log
    assert in_first_screen(page, "#chat-ended", viewport)
    page.screenshot(path=SHOTS / f"13-after-a-restart-{size}.png")
    person.context.close()


@pytest.mark.parametrize("restartable_server", [True], indirect=True, ids=["redis"])
def test_after_a_restart_in_redis_mode_the_page_carries_on_and_its_log_says_no_session_ended(browser, restartable_server: Any) -> None:
    server, stop, start = restartable_server
    person = Person(browser, server.url)
    page = person.log_in("Ada")
    wait_for_socket(page, "connected")
    status_colour = "getComputedStyle(document.getElementById('session-status')).color"
    active_green = page.evaluate(status_colour)
    stop()
    page.wait_for_selector("#handshake-log li:has-text('server: stopping')")
    # While it is away, "checking…" is said in a neutral colour, not the green of "active".
    page.wait_for_selector("#session-status[data-kind=checking]")
    assert page.text_content("#session-status") == "checking…" and page.evaluate(status_colour) != active_green
    page.screenshot(path=SHOTS / "14-server-away-checking.png")
    start()
    wait_for_socket(page, "connected")
    log = page.text_content("#handshake-log")
    assert "session ended" not in log and "io server disconnect" not in log
    assert page.text_content("#session-status") == "active"
    page.fill("#chat-input", "still here after the restart")
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-messages li.is-me:has-text('still here after the restart')")
    person.context.close()


@pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["1280x800", "390x844"])
def test_every_page_state_has_no_serious_accessibility_violation(browser, live_server: ServerProcess, viewport: dict[str, int]) -> None:
    """axe-core (WCAG 2.1 AA rules) in the page: logged out, logged in with a chat, and ended."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        e2e_unavailable("axe-playwright-python is not installed (pip install -e '.[test]')")
    axe = Axe()
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(live_server.url)
    page.wait_for_selector("#socket-state[data-state=refused]")
    states = {"logged out": axe.run(page)}
    page.fill("#username", "Ada")
    page.click("#login-form button[type=submit]")
    wait_for_socket(page, "connected")
    page.fill("#chat-input", "a message, so that times and names are checked too")
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-messages li.is-me")
    states["logged in"] = axe.run(page)
    other_tab = context.new_page()
    other_tab.goto(live_server.url + "logout")
    other_tab.click("#logout-form button[type=submit]")
    wait_for_socket(page, "disconnected")
    states["session ended"] = axe.run(page)
    states["logged out notice"] = axe.run(other_tab)
    context.close()
    serious = {
        state: [(violation["id"], [node["target"] for node in violation["nodes"]]) for violation in result.response["violations"]
                if violation["impact"] in ("serious", "critical")]
        for state, result in states.items()
    }
    assert serious == {state: [] for state in states}


@pytest.mark.heavy  # it waits out an idle TTL (10 s); run by make test-heavy and CI
def test_a_page_in_use_stays_logged_in_and_an_abandoned_one_expires(browser) -> None:
    """Idle means nobody at the page: keys and clicks are reported (here every second, for an
    idle TTL of 3 s), so the reader's session lives on; the page nobody touches expires and
    says so in plain words."""
    server = ServerProcess("--port", "0", "--session-ttl", "3")
    try:
        reader_person, absent_person = Person(browser, server.url), Person(browser, server.url)
        reader, absent = reader_person.log_in("Reader"), absent_person.log_in("Absent")
        for page in (reader, absent):
            wait_for_socket(page, "connected")
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:  # a person scrolling and typing, no message sent
            reader.keyboard.press("Shift")
            reader.mouse.click(5, 300)
            reader.wait_for_timeout(300)
        wait_for_socket(absent, "disconnected")
        assert absent.text_content("#socket-help-text") == "This session expired: nobody used it for too long."
        absent.screenshot(path=SHOTS / "10-abandoned-page-expired.png")
        assert socket_state(reader) == "connected"
        reader.click("#whoami-button")
        reader.wait_for_selector("#whoami-result:has-text('You are Reader')")
        for person in (reader_person, absent_person):
            person.context.close()
    finally:
        server.close()


def test_a_page_watching_50_people_come_and_go_ends_with_the_servers_list(browser) -> None:
    """50 people join and 25 leave (in bursts, as tabs and phones do) while a page watches:
    it applies the changes one batch at a time and ends with exactly who is online."""
    import asyncio

    import aiohttp

    from tests.support.forms import log_in
    from tests.support.wire import WireSocket

    server = ServerProcess("--port", "0", "--login-rate", "off", "--connect-rate", "off")
    base = server.url.rstrip("/")
    person = Person(browser, server.url)
    try:
        page = person.log_in("watcher")
        wait_for_socket(page, "connected")
        stayers: list[str] = []
        crowd_done = threading.Event()
        release = threading.Event()

        async def crowd() -> None:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
                sockets = []
                for n in range(50):
                    sockets.append(await WireSocket.connect(http, base, await log_in(http, base, f"p{n:02d}"), origin=base))
                    if n % 10 == 9:
                        await asyncio.sleep(0.15)  # a few batches, not one
                for n, socket in enumerate(sockets):
                    if n % 2:
                        await socket.close()
                    else:
                        stayers.append(f"p{n:02d}")
                crowd_done.set()
                while not release.is_set():  # noqa: ASYNC110 (a threading.Event, set by the browser's thread)
                    await asyncio.sleep(0.05)
                for socket in sockets[::2]:
                    await socket.close()

        thread = threading.Thread(target=lambda: asyncio.run(crowd()))
        thread.start()
        assert crowd_done.wait(60), "the crowd did not get going"
        expected = sorted(["watcher", *stayers])
        expect(page.locator("#online-count")).to_have_text(str(len(expected)))
        shown = page.locator("#online-users li.person[data-username]").evaluate_all("nodes => nodes.map(n => n.dataset.username)")
        assert sorted(shown) == expected
        assert shown[0] == "watcher"  # you first
        # The Online card grew and the handshake log's box shrank: its newest line is still in view.
        expect(page.locator("#handshake-log li").last).to_be_in_viewport()
        page.screenshot(path=SHOTS / "8-crowd-came-and-went.png")
        release.set()
        thread.join(30)
        expect(page.locator("#online-count")).to_have_text("1")
    finally:
        person.context.close()
        server.close()


# --- Same-site pages (issue 21, item 5): a page on another port of 127.0.0.1 is the same site,
# so the browser sends this server's cookies with the forms it submits, and that page's
# server can overwrite the `_xsrf` cookie (even an HttpOnly one) for the whole host. ------


class SameSitePage:
    """A page on another port of 127.0.0.1 that plants `_xsrf` (by its server's Set-Cookie,
    which can overwrite the person's HttpOnly one, and by document.cookie for the form's path)
    with a value it knows, and submits a form to the app with the matching token at once."""

    def __init__(self, app_url: str) -> None:
        with urllib.request.urlopen(app_url + "login") as answer:  # a genuine pair, for itself
            token = found(r'name="_xsrf" value="([^"]+)"', answer.read().decode()).group(1)
            cookie = http.cookies.SimpleCookie(answer.headers["Set-Cookie"])["_xsrf"].value
        forms = {
            "/logout": "",
            "/login": '<input name="username" value="Mallory">',
        }

        class Attacker(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path not in forms:
                    self.send_error(404)
                    return
                page = (f'<!doctype html><title>prize</title><script>document.cookie = "_xsrf={cookie}; path={self.path}";</script>'
                        f'<form id="forged" method="post" action="{app_url.rstrip("/")}{self.path}">'
                        f'<input name="_xsrf" value="{token}">{forms[self.path]}</form>'
                        '<script>document.getElementById("forged").submit();</script>').encode()
                self.send_response(200)
                self.send_header("Set-Cookie", f"_xsrf={cookie}; Path=/")
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["memory", "redis"])
def store_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The plain server in memory mode, or on the test Redis."""
    args = ["--port", "0", "--cookie-secret", "s" * 32, "--log-level", "info"]
    if request.param == "redis":
        args += ["--redis-url", request.getfixturevalue("redis_url")]
    server = ServerProcess(*args)
    assert server.url, server.log()
    yield server
    server.close()


def test_a_page_on_another_port_that_plants_xsrf_cannot_log_the_person_out_or_in_as_someone_else(browser, store_server: ServerProcess) -> None:
    person = Person(browser, store_server.url)
    attacker = SameSitePage(store_server.url)
    try:
        page = person.log_in("Ada")
        wait_for_socket(page, "connected")
        for path in ("/logout", "/login"):
            forged = person.context.new_page()
            forged.goto(attacker.url + path)
            forged.wait_for_url(lambda url: url.startswith(store_server.url))  # the form went, and was answered
            forged.wait_for_load_state()
            assert forged.url == store_server.url.rstrip("/") + path, f"the forged form was accepted: {forged.url}"
            expect(forged.locator("#error-heading")).to_have_text("Forbidden")
            assert "sent from a page of another site" in forged.text_content("main")
            forged.screenshot(path=SHOTS / f"16-same-site-forged-{path.strip('/')}.png")
            forged.close()
        # The planted cookie is there (the attack did what it could), and changed nothing.
        assert any(c["name"] == "_xsrf" and c["path"] == "/login" for c in person.context.cookies())
        assert person.context.request.get(store_server.url + "api/session").json()["username"] == "Ada"
        page.click("#whoami-button")
        page.wait_for_selector("#whoami-result:has-text('Ada')")
        assert socket_state(page) == "connected"
        # The person's own button still works, whatever was planted.
        page.click("#logout-form button[type=submit]")
        page.wait_for_url("**/login?logged_out=1")
        page.fill("#username", "Ada again")
        page.click("#login-form button[type=submit]")
        wait_for_socket(page, "connected")
        assert page.text_content("#current-user") == "Ada again"
    finally:
        attacker.close()
        person.context.close()
    log = store_server.log()
    assert "login: 'Mallory'" not in log and "Traceback" not in log
    assert log.count("403 form from another origin (Origin 'http://127.0.0.1:") == 2


# Look-alike names and hostile chat text (issue 21, item 10).

def test_look_alike_names_are_told_apart_by_their_tags_on_both_pages(people) -> None:
    """'аlice' (a Cyrillic а) beside 'alice' looked like one person with two entries: neither got
    a tag, since the page compared characters. Now the server sends each name's skeleton and
    the page counts the two as one shared name: each page shows both tags, online and in the chat."""  # noqa: RUF002 (a Cyrillic letter is the subject)
    latin, cyrillic = "alice", "\u0430lice"
    pages = {name: people().log_in(name) for name in (latin, cyrillic)}
    tags = {}
    for name, page in pages.items():
        wait_for_socket(page, "connected")
        tags[name] = page.get_attribute("#live-view", "data-tag")[:4]
    for name, page in pages.items():
        page.fill("#chat-input", f"hello from {name}")
        page.press("#chat-input", "Enter")
    for name, page in pages.items():
        other = cyrillic if name == latin else latin
        expect(page.locator("#online-users li.person")).to_have_count(2)
        expect(page.locator(f"#online-users li[data-username='{name}'] .person-note")).to_have_text(f"you, #{tags[name]}")
        expect(page.locator(f"#online-users li[data-username='{other}'] .person-note")).to_have_text(f"#{tags[other]}")
        for writer in (latin, cyrillic):
            message = page.locator(f"#chat-messages li[data-username='{writer}']")
            expect(message.locator(".message-tag")).to_have_text("#" + tags[writer])
    pages[latin].screenshot(path=SHOTS / "12-look-alike-names.png")


@pytest.mark.parametrize(("name", "said"), [("alice #k3Jd", '"#" followed by a letter or digit'),
                                            ("alice (you)", '"(you)"'), ("\u0430lice \uff03k3Jd", '"#" followed')],
                         ids=["tag-marker", "you-marker", "cyrillic-and-fullwidth-hash"])
def test_a_name_imitating_the_pages_markers_is_refused_on_the_form(people, request: pytest.FixtureRequest, name: str,
                                                                  said: str) -> None:
    person = people()
    page = person.open("/login")
    page.fill("#username", name)
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        page.click("#login-form button[type=submit]")
    assert answer.value.status == 400
    expect(page.locator("#login-error")).to_contain_text(said)
    assert page.input_value("#username") == name  # kept, to be fixed
    assert not any(cookie["name"] == "session" for cookie in person.context.cookies())
    page.screenshot(path=SHOTS / f"15-refused-name-{request.node.callspec.id}.png")


HOSTILE_TEXT = "\u202eevil" + "\n" * 300 + "x" + "\u0301" * 50 + " end"


def test_chat_text_that_reorders_or_spills_is_refused_and_never_reaches_anyone(people) -> None:
    """A U+202E, 300 line breaks and 50 combining marks in one message were passed to everyone
    as they were. Now the server refuses it with a reason (a script's socket here), the page
    says why before sending a pasted one and keeps it in the field, and nobody sees it."""
    sender, reader = people().log_in("Mallory"), people().log_in("Reader")
    for page in (sender, reader):
        wait_for_socket(page, "connected")
    refusal = sender.evaluate("""(text) => new Promise((resolve) => {
        const raw = window.io({ forceNew: true, transports: ["websocket"] });
        raw.on("connect", () => raw.emit("chat", { text }, (answer) => { resolve(answer.message); raw.close(); }));
    })""", HOSTILE_TEXT)
    assert "bidirectional overrides" in refusal
    pasted = "\u202eevil" + "x" + "\u0301" * 50  # the field holds one line: no line breaks
    sender.fill("#chat-input", pasted)
    sender.press("#chat-input", "Enter")
    expect(sender.locator("#chat-notice")).to_contain_text("Not sent: the message holds a bidirectional override")
    assert sender.input_value("#chat-input") == pasted  # nothing lost
    piled = "Zalgo x" + "\u0301" * 7
    sender.fill("#chat-input", piled)
    sender.press("#chat-input", "Enter")
    expect(sender.locator("#chat-notice")).to_have_text("Not sent: the message piles more than 6 accents or marks on one letter.")
    assert sender.input_value("#chat-input") == piled
    with_a_control = "a paste with a vertical tab\u000b in it"  # an <input> keeps it; the server refuses it
    sender.fill("#chat-input", with_a_control)
    sender.press("#chat-input", "Enter")
    expect(sender.locator("#chat-notice")).to_contain_text("Not sent: the message holds a control character")
    assert sender.input_value("#chat-input") == with_a_control
    sender.fill("#chat-input", "after it")
    sender.press("#chat-input", "Enter")
    expect(reader.locator("#chat-messages li[data-username='Mallory']")).to_have_count(1)
    expect(reader.locator("#chat-messages li[data-username='Mallory'] .message-text")).to_have_text("after it")


def test_hostile_text_from_an_older_server_is_shown_isolated_and_clipped(people) -> None:
    """What the page does with such a text if a server passes it (a process of an earlier
    version in a cluster): here the test rewrites one chat frame on its way to the page. The
    text stays inside its own bubble: its override reverses nothing after it, its marks are
    clipped to the bubble, its 300 line breaks are shown as one blank line."""
    marker = "REWRITTEN-BY-THE-TEST"
    upgraded = []

    def route(page_side: Any) -> None:
        server_side = page_side.connect_to_server()

        def to_page(frame: str | bytes) -> None:
            if isinstance(frame, str) and marker in frame:
                frame = frame.replace(marker, json.dumps(HOSTILE_TEXT)[1:-1])
            page_side.send(frame)

        def to_server(frame: str | bytes) -> None:
            if frame == "5":  # Engine.IO's upgrade: from now on everything comes this way
                upgraded.append(True)
            server_side.send(frame)

        server_side.on_message(to_page)
        page_side.on_message(to_server)

    writer, reader_person = people(), people()
    reader_context_page = reader_person.context.new_page()
    reader_context_page.route_web_socket("**/socket.io/**", route)
    reader_context_page.goto(reader_person.base_url + "login")
    reader_context_page.fill("#username", "Reader")
    reader_context_page.click("#login-form button[type=submit]")
    reader = reader_context_page
    wait_for_socket(reader, "connected")
    writing = writer.log_in("Writer")
    wait_for_socket(writing, "connected")
    deadline = time.monotonic() + 10
    while not upgraded and time.monotonic() < deadline:
        reader.wait_for_timeout(100)
    assert upgraded, "the page never upgraded to the WebSocket the test rewrites"
    writing.fill("#chat-input", marker)
    writing.press("#chat-input", "Enter")
    writing.fill("#chat-input", "the next message, in order")
    writing.press("#chat-input", "Enter")
    written = reader.locator("#chat-messages li[data-username='Writer'] .message-text")
    expect(written).to_have_count(2)
    hostile, after = written.all()
    assert hostile.get_attribute("dir") == "auto" and after.get_attribute("dir") == "auto"
    assert hostile.evaluate("node => getComputedStyle(node).unicodeBidi") == "isolate"
    assert hostile.evaluate("node => getComputedStyle(node).overflow") == "hidden"
    assert hostile.text_content().count("\n") == 2  # 300 breaks shown as one blank line
    line_height = after.bounding_box()["height"]
    assert hostile.bounding_box()["height"] < 4 * line_height  # three lines, not 300
    # The next message reads left to right, where it belongs, unreversed.
    assert after.evaluate("""node => {
        const range = document.createRange();
        range.setStart(node.firstChild, 0); range.setEnd(node.firstChild, 3);  // "the"
        const first = range.getBoundingClientRect();
        range.setStart(node.firstChild, node.firstChild.length - 5); range.setEnd(node.firstChild, node.firstChild.length);
        return first.left < range.getBoundingClientRect().left;
    }""")
    reader.locator("#chat-scroll").screenshot(path=SHOTS / "13-hostile-text-isolated.png")


# The page's side of asking for the presence state again (issue 21, item 6): a page that missed
# a change asks, and when refused for asking too often it waits as long as the refusal says,
# asks again, and ends with the server's list.

STATE_ASK = re.compile(r'42(\d+)\["presence_state"\]')
STATE_RETRY_AFTER = 2.5  # seconds, more than the page's own 1.2 s between two tries


def page_until(page: Any, condition: Any, timeout: float = 10) -> None:
    """Wait for `condition()`, letting Playwright run meanwhile (its WebSocket route's
    handlers run only while this thread is inside a Playwright call, never in time.sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s")
        page.wait_for_timeout(50)


class Crowd:
    """People who come online from a loop of their own, one call at a time."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.http: aiohttp.ClientSession | None = None
        self.sockets: list[WireSocket] = []

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def join(self, name: str) -> None:
        async def joining() -> None:
            if self.http is None:
                self.http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
            cookie = await log_in(self.http, self.base, name)
            self.sockets.append(await WireSocket.connect(self.http, self.base, cookie, origin=self.base))

        self.run(joining())

    def close(self) -> None:
        async def leaving() -> None:
            for socket in self.sockets:
                await socket.close()
            if self.http is not None:
                await self.http.close()

        self.run(leaving())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_a_page_refused_the_state_waits_as_told_then_asks_again_and_shows_who_is_online(browser: Any) -> None:
    """Between the page and the server (Playwright's WebSocket route): one `presence_diff` is
    dropped, so the page sees a gap at the next and asks; its first ask is answered with the
    server's refusal (`{"refused", "retry_after"}`), the next goes to the server. Before, the
    page took the refusal for a state, applied nothing, never asked again, and showed a list
    without the people of the held changes."""
    server = ServerProcess("--port", "0", "--login-rate", "off", "--connect-rate", "off")
    base = server.url.rstrip("/")
    person = Person(browser, server.url)
    crowd = Crowd(base)
    routed = threading.Event()
    drop_next_diff = threading.Event()
    dropped: list[str] = []
    asks: list[float] = []

    def route(page_side: Any) -> None:
        server_side = page_side.connect_to_server()

        def to_server(message: str | bytes) -> None:
            ask = STATE_ASK.fullmatch(message) if isinstance(message, str) else None
            if ask is not None:
                asks.append(time.monotonic())
                if len(asks) == 1:
                    refusal = {"refused": STATE_SLOW_DOWN, "retry_after": STATE_RETRY_AFTER}
                    page_side.send(f"43{ask.group(1)}" + json.dumps([refusal]))
                    return
            server_side.send(message)

        def to_page(message: str | bytes) -> None:
            if isinstance(message, str) and message.startswith('42["presence_diff"') and drop_next_diff.is_set():
                drop_next_diff.clear()
                dropped.append(message)
                return
            page_side.send(message)

        page_side.on_message(to_server)
        server_side.on_message(to_page)
        routed.set()

    person.context.route_web_socket(re.compile(r".*/socket\.io/.*transport=websocket.*"), route)
    try:
        page = person.log_in("watcher")
        wait_for_socket(page, "connected")
        page_until(page, routed.is_set)  # the page's socket upgraded to a WebSocket
        page.wait_for_timeout(500)  # the upgrade completes: what follows comes over the WebSocket
        drop_next_diff.set()
        crowd.join("ada")  # her join is the change the page misses
        page_until(page, lambda: bool(dropped))
        crowd.join("bob")  # the next change shows the gap: the page asks, and is refused
        page_until(page, lambda: len(asks) >= 2)
        assert asks[1] - asks[0] >= STATE_RETRY_AFTER - 0.1, asks  # it waited as long as it was told
        names = lambda: sorted(page.eval_on_selector_all("#online-users li[data-username]", "items => items.map(i => i.dataset.username)"))  # noqa: E731 (a condition, named)
        page_until(page, lambda: names() == ["ada", "bob", "watcher"])
        assert page.text_content("#online-count") == "3"
        assert len(asks) == 2
    finally:
        crowd.close()
        person.context.close()
        server.close()
    assert [text for text in person.console_errors if "status of 4" not in text] == []
