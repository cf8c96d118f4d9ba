"""Nothing typed is lost, and a page that was away catches up exactly (issue 22), in a real
browser (Debian's Chromium through Playwright) on real servers (`python -m tornado_app`).

A dead link is a FreezableProxy (tests/support/proxy.py) between the page and the server: no
byte either way while every connection stays open, as a dead Wi-Fi or a stalled tunnel. The
other person's page talks to the server directly.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from deploy.services import free_port
from tests.support.browser import (
    PHONE,
    VIEWPORT,
    Person,
    in_first_screen,
    launched_chromium,
    wait_for_socket,
)
from tests.support.constants import OUTPUT_DIR
from tests.support.e2e import e2e_unavailable
from tests.support.processes import ServerProcess
from tests.support.proxy import FreezableProxy

SHOTS = OUTPUT_DIR / "browser"

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture says so, with the reason
    expect = None  # type: ignore[assignment]  # not used then

pytestmark = pytest.mark.e2e

SIZES = pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["1280x800", "390x844"])
SEEN_DEAD_WITHIN_S = 15  # the bound: a frozen link is said "reconnecting" within it
RECONNECT_MS = 30000  # after a thaw: the client's backoff (up to 5 s) and a fresh handshake
# Short, so that the idle warning comes min(60, 30 / 3) = 10 s before the end: room for the
# test's look at the warning (an accessibility check, a screenshot) on a loaded machine before
# it clicks (at 15 s, 5 s were used up once and the session ended under the test).
IDLE_TTL_S = 30


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield from launched_chromium(e2e_unavailable)


class Proxied:
    """A server, and a freezable proxy in front of it; `url` goes through the proxy."""

    def __init__(self, *args: str) -> None:
        port = free_port()  # the proxy's: the server answers to that name too
        self.server = ServerProcess("--port", "0", "--allowed-host", f"127.0.0.1:{port}", *args)
        assert self.server.url, f"the server did not start: {self.server.first_line!r} {self.server.log()[-2000:]}"
        self.direct_url = self.server.url
        server_port = urlsplit(self.server.url).port
        assert server_port is not None
        self.proxy = FreezableProxy("127.0.0.1", server_port, port=port).start()
        self.url = f"http://127.0.0.1:{self.proxy.port}/"

    def close(self) -> None:
        self.proxy.stop()
        self.server.close()


@pytest.fixture
def proxied() -> Iterator[Any]:
    made: list[Proxied] = []

    def make(*args: str) -> Proxied:
        made.append(Proxied(*args))
        return made[-1]

    yield make
    for each in made:
        each.close()


def logged_in(browser: Any, url: str, name: str, viewport: dict[str, int] = VIEWPORT) -> tuple[Person, Any]:
    person = Person(browser, url, viewport)
    page = person.log_in(name)
    wait_for_socket(page, "connected")
    return person, page


def send(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")


def shown(page: Any, text: str) -> Any:
    """Every item on the page, stored or on its way, whose text is exactly `text`."""
    return page.locator("#chat-messages li.message, #chat-outbox li.message").filter(
        has=page.locator(".message-text", has_text=re.compile("^" + re.escape(text) + "$")))


def serious_violations(page: Any) -> list[tuple[str, list[Any]]]:
    """axe-core's serious and critical findings (WCAG 2.1 AA rules) in the page as it is."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        e2e_unavailable("axe-playwright-python is not installed (pip install -e '.[test]')")
    return [(violation["id"], [node["target"] for node in violation["nodes"]]) for violation in Axe().run(page).response["violations"]
            if violation["impact"] in ("serious", "critical")]


def no_page_errors(*people: Person) -> None:
    for person in people:
        assert [text for text in person.console_errors if "status of 4" not in text] == [], "the page logged errors"
        person.context.close()


def filtered(browser: Any, proxied: Any, passes_to_page: Callable[[str | bytes], bool],
             seen_by_server: Callable[[str | bytes], None] = lambda frame: None) -> tuple[Any, Person, Any, Person, Any]:
    """A site, Ada's page with its socket through a filter (a frame to the page passes only if
    `passes_to_page` says so; every frame to the server is shown to `seen_by_server`), once the
    page has upgraded to the WebSocket the filter sees, and Grace's page beside it."""
    upgraded: list[bool] = []

    def route(page_side: Any) -> None:
        server_side = page_side.connect_to_server()

        def to_page(frame: str | bytes) -> None:
            if passes_to_page(frame):
                page_side.send(frame)

        def to_server(frame: str | bytes) -> None:
            if frame == "5":  # Engine.IO's upgrade: from now on everything comes this way
                upgraded.append(True)
            seen_by_server(frame)
            server_side.send(frame)

        server_side.on_message(to_page)
        page_side.on_message(to_server)

    site = proxied()
    ada_person = Person(browser, site.direct_url)
    ada = ada_person.context.new_page()
    ada.on("pageerror", lambda error: ada_person.console_errors.append(str(error)))
    ada.route_web_socket("**/socket.io/**", route)
    ada.goto(site.direct_url + "login")
    ada.fill("#username", "Ada")
    ada.click("#login-form button[type=submit]")
    wait_for_socket(ada, "connected")
    grace_person, grace = logged_in(browser, site.direct_url, "Grace")
    deadline = time.monotonic() + 10
    while not upgraded and time.monotonic() < deadline:
        ada.wait_for_timeout(100)
    assert upgraded, "the page never upgraded to the WebSocket the test filters"
    return site, ada_person, ada, grace_person, grace


@SIZES
def test_a_frozen_link_is_said_in_the_chat_card_and_a_message_sent_into_it_is_kept_then_delivered_once(
        browser: Any, proxied: Any, viewport: dict[str, int]) -> None:
    """A message sent into a dead link was cleared from the field and reached nobody, and the
    page said "connected" for 44 s. Now: "not sent" with its words kept, "Reconnecting…" in
    the chat card (on a phone's first screen) within 15 s, and Retry delivers it once."""
    size = f"{viewport['width']}x{viewport['height']}"
    site = proxied()
    ada_person, ada = logged_in(browser, site.url, "Ada", viewport)
    grace_person, grace = logged_in(browser, site.direct_url, "Grace")
    text = "sent into a dead link"

    site.proxy.freeze()
    frozen_at = time.monotonic()
    send(ada, text)
    expect(ada.locator("#chat-input")).to_have_value("")  # the text lives on below, "sending…"
    mine = shown(ada, text)
    expect(mine).to_have_count(1)
    expect(mine.locator(".message-status")).to_have_text("sending…")
    expect(mine).to_have_attribute("data-state", "failed", timeout=10000)  # no ack in 5 s
    expect(mine.locator(".message-status")).to_contain_text("not sent")
    expect(mine.locator("button", has_text="Retry")).to_be_visible()
    expect(ada.locator("#chat-status-text")).to_have_text("Reconnecting…", timeout=SEEN_DEAD_WITHIN_S * 1000)
    seen_dead_after = time.monotonic() - frozen_at
    assert seen_dead_after <= SEEN_DEAD_WITHIN_S, seen_dead_after
    assert in_first_screen(ada, "#chat-status-text", viewport)
    ada.screenshot(path=SHOTS / f"22-frozen-link-not-sent-{size}.png")
    assert serious_violations(ada) == []
    expect(shown(grace, text)).to_have_count(0)
    # Written while the page knows it is away: it waits, and goes by itself once connected.
    later = "written while reconnecting"
    send(ada, later)
    waiting = shown(ada, later)
    expect(waiting).to_have_attribute("data-state", "waiting")
    expect(waiting.locator(".message-status")).to_have_text("not sent yet: it goes when the page is connected again")

    site.proxy.thaw(reset=True)  # as a tunnel that lost its state: the old connections are dead
    expect(ada.locator("#socket-state")).to_have_attribute("data-state", "connected", timeout=RECONNECT_MS)
    expect(ada.locator("#chat-status-text")).to_have_text(re.compile("^Reconnected"))
    expect(mine).to_have_attribute("data-state", "failed")  # still there, still its words
    mine.locator("button", has_text="Retry").click()
    for page in (ada, grace):
        expect(shown(page, text)).to_have_count(1)
    expect(ada.locator("#chat-outbox li")).to_have_count(0)  # stored now, not on its way
    expect(ada.locator("#chat-messages li.is-me .message-text")).to_have_text([later, text])
    ada.wait_for_timeout(1500)  # nothing more comes of it
    for page in (ada, grace):
        expect(shown(page, text)).to_have_count(1)
        expect(shown(page, later)).to_have_count(1)
    ada.screenshot(path=SHOTS / f"22-frozen-link-retried-{size}.png")
    no_page_errors(ada_person, grace_person)


def test_a_retry_after_a_lost_answer_posts_nothing_twice(browser: Any, proxied: Any) -> None:
    """The server stored the message and sent it to everyone, but its answer (and the copy for
    the sender) never reached the sender's page: the page says "not sent", and Retry, which
    sends the same id, is answered with the message stored the first time, posted nowhere."""
    text = "answered into the void"
    dropped: list[str] = []

    def to_page(frame: str | bytes) -> bool:
        if isinstance(frame, str) and text in frame and not dropped:
            if frame.startswith("43"):  # the ack; the live copy ("42") went before it
                dropped.append(frame)
            return False
        return True

    _site, ada_person, ada, grace_person, grace = filtered(browser, proxied, to_page)

    send(ada, text)
    expect(shown(grace, text)).to_have_count(1)  # stored and sent to everyone
    mine = shown(ada, text)
    expect(mine).to_have_attribute("data-state", "failed", timeout=10000)
    assert dropped, "the answer was not held back"
    mine.locator("button", has_text="Retry").click()
    expect(ada.locator("#chat-outbox li")).to_have_count(0)
    expect(ada.locator("#chat-messages li.is-me .message-text")).to_have_text([text])
    ada.wait_for_timeout(1500)
    expect(shown(grace, text)).to_have_count(1)  # the retry posted nothing again
    expect(shown(ada, text)).to_have_count(1)
    no_page_errors(ada_person, grace_person)


def test_over_the_chat_rate_the_refused_text_is_back_in_the_field_with_the_reason(browser: Any, proxied: Any) -> None:
    site = proxied("--chat-rate", "2/minute")
    person, page = logged_in(browser, site.direct_url, "Quick")
    for text in ("one", "two"):
        send(page, text)
        expect(page.locator("#chat-messages li.is-me .message-text").last).to_have_text(text)
    send(page, "three, too fast")
    expect(page.locator("#chat-notice")).to_contain_text("slow down")
    expect(page.locator("#chat-notice")).to_contain_text("this message was not sent")
    expect(page.locator("#chat-input")).to_have_value("three, too fast")  # nothing to type again
    expect(page.locator("#chat-outbox li")).to_have_count(0)
    expect(shown(page, "three, too fast")).to_have_count(0)
    page.screenshot(path=SHOTS / "22-over-the-rate-text-kept.png")

    # Written anew while the answer was on its way: the refused one stays, "not sent", with Retry.
    refused = "four, too fast"
    page.fill("#chat-input", refused)
    page.evaluate("""() => {
        const input = document.getElementById("chat-input");
        document.getElementById("chat-form").requestSubmit();
        input.value = "typed meanwhile";
    }""")
    mine = shown(page, refused)
    expect(mine).to_have_attribute("data-state", "failed")
    expect(mine.locator(".message-status")).to_have_text(re.compile(r"^slow down: too many messages .*: this message was not sent$"))
    expect(page.locator("#chat-input")).to_have_value("typed meanwhile")
    mine.locator("button", has_text="Discard").click()
    expect(mine).to_have_count(0)
    no_page_errors(person)


@pytest.mark.parametrize(("store", "thaw_reset"), [("memory", False), ("memory", True), ("redis", False)],
                         ids=["memory-link-back", "memory-link-reset", "redis-link-back"])
def test_a_page_away_while_five_messages_are_sent_shows_exactly_those_five_once_in_order(
        browser: Any, proxied: Any, request: pytest.FixtureRequest, store: str, thaw_reset: bool) -> None:
    """Memory: a counter in the process's epoch; Redis: a stream whose ids are the count."""
    redis = ["--redis-url", request.getfixturevalue("redis_url"), "--cookie-secret", "r" * 32] if store == "redis" else []
    site = proxied(*redis)
    ada_person, ada = logged_in(browser, site.direct_url, "Ada")
    bob_person, bob = logged_in(browser, site.url, "Bob")
    dan_person, _ = logged_in(browser, site.direct_url, "Dan")
    expect(bob.locator("#online-users .person-name")).to_have_text(["Bob", "Ada", "Dan"])
    send(ada, "before the gap")
    expect(shown(bob, "before the gap")).to_have_count(1)

    site.proxy.freeze()
    missed = [f"missed {number}" for number in range(1, 6)]
    for text in missed:
        send(ada, text)
        expect(ada.locator("#chat-messages li.is-me .message-text").last).to_have_text(text)
    expect(bob.locator("#chat-status-text")).to_have_text("Reconnecting…", timeout=SEEN_DEAD_WITHIN_S * 1000)
    carol_person, _ = logged_in(browser, site.direct_url, "Carol")  # came online meanwhile
    dan_person.context.close()  # and Dan went
    site.proxy.thaw(reset=thaw_reset)
    expect(bob.locator("#chat-status-text")).to_have_text("Reconnected: 5 messages you missed are below", timeout=RECONNECT_MS)
    texts = ["before the gap", *missed]
    expect(bob.locator("#chat-messages li.message .message-text")).to_have_text(texts)
    expect(bob.locator("#chat-messages .chat-gap")).to_have_count(0)  # nothing is missing
    # Who is online: the change since the version it held, not the whole list again.
    expect(bob.locator("#online-users .person-name")).to_have_text(["Bob", "Ada", "Carol"])
    log = bob.text_content("#handshake-log")
    assert "presence: caught up from version" in log and "a change was missed" not in log, log
    bob.screenshot(path=SHOTS / f"22-caught-up-{'reset' if thaw_reset else 'back'}.png")
    send(ada, "after the gap")
    expect(bob.locator("#chat-messages li.message .message-text")).to_have_text([*texts, "after the gap"])
    no_page_errors(ada_person, bob_person, carol_person)


@pytest.mark.heavy  # it waits out most of an idle TTL (30 s); run by make test-heavy and CI
def test_an_idle_page_is_warned_before_its_session_ends_and_the_button_keeps_it(browser: Any, proxied: Any) -> None:
    site = proxied("--session-ttl", str(IDLE_TTL_S))
    person = Person(browser, site.direct_url)
    page = person.context.new_page()
    reports: list[float] = []  # when the page said "active" (on the WebSocket, once upgraded)

    def note_active(frame: object) -> None:
        if isinstance(frame, str) and re.match(r'42\d*\["active"', frame):
            reports.append(time.monotonic())

    page.on("websocket", lambda socket: socket.on("framesent", note_active))
    page.goto(site.direct_url + "login")
    page.fill("#username", "Reader")
    page.click("#login-form button[type=submit]")
    wait_for_socket(page, "connected")
    logged_in_at = time.monotonic()
    notice = page.locator("#chat-idle")
    expect(notice).to_be_hidden()
    # Nobody touches the page. At the latest, the session ends one report interval (TTL / 3)
    # after the page's load plus the TTL; the warning comes 5 s before its end.
    expect(notice).to_be_visible(timeout=(IDLE_TTL_S + IDLE_TTL_S // 3 + 5) * 1000)
    warned_after = time.monotonic() - logged_in_at
    countdown = page.locator("#chat-idle-countdown").text_content()
    match = re.fullmatch(r"This session ends in (\d+) s unless you use it", countdown)
    assert match and 0 < int(match.group(1)) <= IDLE_TTL_S // 3, countdown
    assert page.locator("#chat-idle-said").text_content() != ""  # read out once
    assert in_first_screen(page, "#chat-stay", VIEWPORT)
    assert page.get_attribute("#socket-state", "data-state") == "connected"
    page.screenshot(path=SHOTS / "22-idle-warning.png")
    assert serious_violations(page) == []
    ends_at = time.monotonic() + int(match.group(1))
    clicked_at = time.monotonic()
    page.click("#chat-stay")
    expect(notice).to_be_hidden(timeout=1000)  # at once, not when the countdown runs out
    waited_until = time.monotonic() + 1
    while not any(at >= clicked_at for at in reports) and time.monotonic() < waited_until:
        page.wait_for_timeout(50)
    assert any(clicked_at <= at <= clicked_at + 1 for at in reports), "the button did not report the use at once"
    page.wait_for_timeout(max(0.0, ends_at - time.monotonic() + 3) * 1000)  # past the end it had
    assert page.get_attribute("#socket-state", "data-state") == "connected"
    page.click("#whoami-button")
    expect(page.locator("#whoami-result")).to_contain_text("You are Reader")
    assert warned_after < IDLE_TTL_S + IDLE_TTL_S // 3
    no_page_errors(person)


def test_a_page_that_could_not_catch_up_says_so_and_marks_where_messages_may_be_missing(browser: Any, proxied: Any) -> None:
    """A position the server cannot resume from (here the test moves the page's position into
    the future on its way out, as a page of an earlier history would hold): the latest
    messages, said as such, with the break in the list marked rather than silently mixed."""
    site = proxied("--history", "3")
    asked: list[str] = []

    def from_the_future(route: Any) -> None:
        body = route.request.post_data or ""
        if route.request.method == "POST" and '"history":' in body:
            body = re.sub(r'"history":"([A-Za-z0-9]+):\d+"', r'"history":"\1:999999"', body)
            asked.append(body)
            route.continue_(post_data=body)
        else:
            route.continue_()

    ada_person, ada = logged_in(browser, site.direct_url, "Ada")
    bob_person = Person(browser, site.url)
    bob = bob_person.open("/login")
    bob.route("**/socket.io/**", from_the_future)
    bob.fill("#username", "Bob")
    bob.click("#login-form button[type=submit]")
    wait_for_socket(bob, "connected")
    send(ada, "before the gap")
    expect(shown(bob, "before the gap")).to_have_count(1)

    site.proxy.freeze()
    for number in range(1, 6):
        send(ada, f"missed {number}")
        expect(ada.locator("#chat-messages li.is-me .message-text").last).to_have_text(f"missed {number}")
    expect(bob.locator("#chat-status-text")).to_have_text("Reconnecting…", timeout=SEEN_DEAD_WITHIN_S * 1000)
    site.proxy.thaw(reset=True)
    expect(bob.locator("#chat-status-text")).to_have_text("Reconnected; could not catch up: showing the latest 3",
                                                         timeout=RECONNECT_MS)
    assert asked, "the page's connect was not seen"
    items = bob.locator("#chat-messages li")
    texts = [text.strip().splitlines()[-1] for text in items.all_inner_texts()]
    assert texts == ["before the gap", "Some messages may be missing here", "missed 3", "missed 4", "missed 5"], texts
    bob.screenshot(path=SHOTS / "22-could-not-catch-up.png")
    send(ada, "after the gap")
    expect(bob.locator("#chat-messages li.message .message-text").last).to_have_text("after the gap")
    no_page_errors(ada_person, bob_person)


def test_your_own_message_is_never_shown_twice_not_even_for_a_moment(browser: Any, proxied: Any) -> None:
    """Its live copy comes before the server's answer: the item "sending…" gives way to it at
    once, and the answer finds it shown. A watch in the page counts, at every change, the
    items that hold the text."""
    site = proxied()
    person, page = logged_in(browser, site.direct_url, "Ada")
    page.evaluate("""() => {
        window.mostShown = {};
        new MutationObserver(() => {
            const counts = {};
            for (const node of document.querySelectorAll("#chat-scroll li.message .message-text")) {
                counts[node.textContent] = (counts[node.textContent] || 0) + 1;
            }
            for (const [text, count] of Object.entries(counts)) {
                window.mostShown[text] = Math.max(window.mostShown[text] || 0, count);
            }
        }).observe(document.getElementById("chat-scroll"), { childList: true, subtree: true });
    }""")
    texts = [f"only once {number}" for number in range(1, 6)]
    for text in texts:
        send(page, text)
    expect(page.locator("#chat-messages li.is-me .message-text")).to_have_text(texts)
    expect(page.locator("#chat-outbox li")).to_have_count(0)
    page.wait_for_timeout(500)
    assert page.evaluate("window.mostShown") == dict.fromkeys(texts, 1)
    no_page_errors(person)


@pytest.mark.heavy  # it waits out more than an idle TTL (30 s); run by make test-heavy and CI
def test_a_tab_left_alone_is_not_warned_while_another_tab_of_its_session_is_in_use(browser: Any, proxied: Any) -> None:
    """Before warning, the idle tab asks how long the session has left (asking is not a use):
    another tab's use kept it alive, so it waits again instead of warning wrongly."""
    site = proxied("--session-ttl", str(IDLE_TTL_S))
    person, idle_tab = logged_in(browser, site.direct_url, "Reader")
    used_tab = person.open("/")
    wait_for_socket(used_tab, "connected")
    until = time.monotonic() + 2 * IDLE_TTL_S
    while time.monotonic() < until:
        used_tab.keyboard.press("Shift")  # a person at the other tab
        used_tab.wait_for_timeout(500)
        assert idle_tab.is_hidden("#chat-idle"), "warned although the session was in use"
    assert idle_tab.get_attribute("#socket-state", "data-state") == "connected"
    no_page_errors(person)


def test_a_live_message_lost_on_its_way_is_asked_for_and_shown_in_its_place(browser: Any, proxied: Any) -> None:
    """In Redis mode a message can be lost between processes (a failover) while the page stays
    connected: the next one's position shows the gap, and after a short grace for messages
    merely out of order the page asks `catch_up` for what came after the last it holds. Here
    the test drops one message's frame on its way to the page."""
    lost = "lost on the way"
    dropped: list[str] = []
    asked: list[str] = []

    def to_page(frame: str | bytes) -> bool:
        if isinstance(frame, str) and frame.startswith('42["chat"') and lost in frame and not dropped:
            dropped.append(frame)
            return False
        return True

    def to_server(frame: str | bytes) -> None:
        if isinstance(frame, str) and '"catch_up"' in frame:
            asked.append(frame)

    _site, ada_person, ada, grace_person, grace = filtered(browser, proxied, to_page, to_server)

    texts = ["first", lost, "third"]
    for text in texts:
        send(grace, text)
        expect(grace.locator("#chat-messages li.is-me .message-text").last).to_have_text(text)
    expect(ada.locator("#chat-messages li.message .message-text")).to_have_text(texts, timeout=10000)
    assert dropped and len(asked) == 1, (dropped, asked)
    expect(ada.locator("#chat-messages .chat-gap")).to_have_count(0)
    no_page_errors(ada_person, grace_person)


def test_with_redis_hung_the_text_is_kept_and_after_it_is_back_retry_delivers_it_once(
        browser: Any, proxied: Any, redis_server: Any, redis_url: str) -> None:
    """Redis stopped (SIGSTOP): the page said "connected" and the message was cleared and never
    delivered. Now it stays on the page "not sent", with the store's refusal in words or, with
    no answer in 5 s, as such, and Retry (the same id: a write to the hung Redis may still
    land, so the text is not put back in the field to be sent anew); once Redis is back,
    Retry (or its copy, if the server got it through) delivers it once."""
    site = proxied("--redis-url", redis_url, "--cookie-secret", "r" * 32)
    ada_person, ada = logged_in(browser, site.direct_url, "Ada")
    grace_person, grace = logged_in(browser, site.direct_url, "Grace")
    text = "said while Redis hung"
    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        send(ada, text)
        mine = shown(ada, text)
        expect(mine).to_have_attribute("data-state", "failed", timeout=10000)
        said = mine.locator(".message-status").text_content()
        expect(mine.locator("button", has_text="Retry")).to_be_visible()
        expect(ada.locator("#chat-input")).to_have_value("")
        ada.screenshot(path=SHOTS / "22-redis-hung-text-kept.png")
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    assert "not sent" in said, said
    # Back: a server that was only waiting for Redis stores it now and sends it to everyone,
    # and its copy takes the place of the "not sent" item; else the person sends it again.
    ada.wait_for_timeout(3000)
    if mine.count() == 1 and mine.get_attribute("data-state") == "failed":
        mine.locator("button", has_text="Retry").click()
    for page in (ada, grace):
        expect(shown(page, text)).to_have_count(1, timeout=15000)
    expect(ada.locator("#chat-outbox li")).to_have_count(0, timeout=15000)
    expect(ada.locator("#chat-input")).to_have_value("")
    ada.wait_for_timeout(1500)
    for page in (ada, grace):
        expect(shown(page, text)).to_have_count(1)
    no_page_errors(ada_person, grace_person)
