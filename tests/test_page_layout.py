"""The live view on every screen and for every reader (issue 26, items 2 to 4): the order the
sections are read in is the order they are drawn in, a phone's header says who you are, each
event is announced once, a history goes in without being read out in one burst, the message
field fits a 320 px screen with any length pasted, and both colour schemes pass axe.

Each test saves screenshots of the states it reaches under test-output/page/.
"""

from __future__ import annotations

import itertools
import re
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import (
    PHONE,
    TIMEOUT_MS,
    VIEWPORT,
    Person,
    box,
    launched_chromium,
    plain_server,
    wait_for_socket,
)
from tests.support.constants import OUTPUT_DIR
from tests.support.e2e import e2e_unavailable
from tests.support.processes import ServerProcess
from tornado_app.redis.sessions import TRUSTED_SECONDS

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture says so, with the reason
    expect = None  # type: ignore[assignment]  # not used then

pytestmark = pytest.mark.e2e

SHOTS = OUTPUT_DIR / "page"
NARROW = {"width": 900, "height": 800}  # two columns
SMALLEST = {"width": 320, "height": 640}
WIDTHS = [VIEWPORT, NARROW, PHONE, SMALLEST]
WIDTH_IDS = ["1280x800", "900x800", "390x844", "320x640"]
RECONNECT_MS = 20_000

# Records, from the page's start, what a screen reader would be told of: for each change inside
# a live region (its nearest element with a role of status, alert or log, or an aria-live,
# which aria-live="off" silences), the region's id and what the change brought (the text of
# the nodes added, of a text changed, or of a region shown: one entry per task), and whether
# the region (or one around it) was aria-busy then. And each chat message added, with the log's aria-busy then.
RECORDER = """
(() => {
  window.__said = [];
  window.__added = [];
  const ROOT = '[role=status], [role=alert], [role=log], [aria-live]';
  const textOf = (node) => (node.nodeType === 1 ? node.innerText || '' : node.nodeType === 3 ? node.data : '').trim();
  new MutationObserver((mutations) => {
    // The changes of one task reach a screen reader together: one entry per region.
    const batch = new Map();
    for (const mutation of mutations) {
      const target = mutation.target.nodeType === 1 ? mutation.target : mutation.target.parentElement;
      // What is aria-hidden is not in the accessibility tree: nothing of it is read out.
      const region = target && !target.closest('[aria-hidden=true]') && target.closest(ROOT);
      if (region && !region.closest('[hidden]') && region.getAttribute('aria-live') !== 'off') {
        const busy = Boolean(region.closest('[aria-busy=true]'));
        const text = mutation.type === 'childList' ? [...mutation.addedNodes].map(textOf).join(' ').trim()
          : mutation.type === 'characterData' ? textOf(mutation.target) : target.closest('[hidden]') ? '' : textOf(target);
        const entry = batch.get(region) || { id: region.id, texts: [], busy };
        if (text && !entry.texts.includes(text)) {
          entry.texts.push(text);
        }
        batch.set(region, entry);
      }
      if (mutation.target.id === 'chat-messages') {
        for (const node of mutation.addedNodes) {
          if (node.nodeType === 1 && node.classList.contains('message')) {
            window.__added.push({ text: node.textContent, busy: document.getElementById('chat-scroll').getAttribute('aria-busy') });
          }
        }
      }
    }
    for (const entry of batch.values()) {
      window.__said.push({ id: entry.id, text: entry.texts.join(' '), busy: entry.busy });
    }
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['hidden'] });
})();
"""

# Every shown live region whose text holds the given words.
REGIONS_SAYING = """
(words) => [...document.querySelectorAll('[role=status], [role=alert], [role=log], [aria-live]:not([aria-live=off])')]
  .filter((region) => !region.closest("[hidden]") && region.innerText.includes(words)).map((region) => region.id)
"""


@pytest.fixture(scope="module")
def live_server() -> Iterator[ServerProcess]:
    yield from plain_server()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield from launched_chromium(e2e_unavailable)


def person(browser: Any, url: str, viewport: dict[str, int] = VIEWPORT, scheme: str = "light") -> Person:
    """A person whose pages record what their live regions say (RECORDER)."""
    someone = Person(browser, url, viewport)
    someone.context.close()
    someone.context = browser.new_context(viewport=viewport, color_scheme=scheme)
    someone.context.set_default_timeout(TIMEOUT_MS)
    someone.context.add_init_script(RECORDER)
    return someone


def logged_in(browser: Any, url: str, name: str, viewport: dict[str, int] = VIEWPORT, scheme: str = "light") -> Any:
    page = person(browser, url, viewport, scheme).log_in(name)
    wait_for_socket(page, "connected")
    expect(page.locator("#chat-scroll")).to_have_attribute("aria-busy", "false")  # the history is in
    return page


def send(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.press("#chat-input", "Enter")
    page.wait_for_selector(f"#chat-messages li.is-me:has-text({text!r})")


def said_since(page: Any, mark: int) -> list[dict[str, Any]]:
    """What the live regions said (non-empty, not while busy) since the mark'th record."""
    return [entry for entry in page.evaluate("window.__said")[mark:] if entry["text"] and not entry["busy"]]


@pytest.mark.parametrize("viewport", WIDTHS, ids=WIDTH_IDS)
def test_the_sections_are_read_in_the_order_they_are_drawn(browser, live_server: ServerProcess, viewport: dict[str, int]) -> None:
    """Each section in the DOM (the keyboard's and a screen reader's order) comes below the
    one before it, or in a column to its right: never above it, never to its left."""
    page = logged_in(browser, live_server.url, "Reader", viewport)
    ids = page.eval_on_selector_all("#live-view section.card", "sections => sections.map((s) => s.getAttribute('aria-labelledby'))")
    assert ids[0] == "chat-heading"  # the product first, at every width
    boxes = {heading: box(page, f"section[aria-labelledby={heading}]") for heading in ids}
    for first, then in itertools.pairwise(ids):
        before, after = boxes[first], boxes[then]
        below = after["y"] >= before["y"] + before["height"] - 1 and after["x"] < before["x"] + before["width"]
        right = after["x"] >= before["x"] + before["width"] - 1
        assert below or right, f"{then} is drawn before {first}, which comes first in the DOM: {before} {after}"
    assert page.locator("[tabindex]:not([tabindex='0']):not([tabindex='-1'])").count() == 0  # no reordered tab stops
    page.screenshot(path=SHOTS / f"order-{viewport['width']}.png", full_page=True)
    page.context.close()


@pytest.mark.parametrize("viewport", [PHONE, SMALLEST], ids=WIDTH_IDS[2:])
def test_a_phones_header_says_who_you_are(browser, live_server: ServerProcess, viewport: dict[str, int]) -> None:
    for name in ("Ada", "Augusta Ada King, Countess of L."):
        page = logged_in(browser, live_server.url, name, viewport)
        tag = page.text_content("#current-tag")
        shown_name, shown_tag = page.locator("#header-session .header-name"), page.locator("#header-session .header-tag")
        expect(shown_name).to_be_visible()
        expect(shown_name).to_have_text(name)
        expect(shown_tag).to_have_text(tag)
        name_box, tag_box, logout = box(page, ".header-name"), box(page, ".header-tag"), box(page, ".header-logout button")
        assert name_box["width"] >= 24  # at least the name's start (a long one is cut short with "…")
        assert name_box["x"] + name_box["width"] <= tag_box["x"] + 1  # the tag whole, after the name
        assert tag_box["x"] + tag_box["width"] <= logout["x"]  # and clear of "Log out"
        assert logout["x"] + logout["width"] <= viewport["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.screenshot(path=SHOTS / f"phone-header-{viewport['width']}-{len(name)}.png")
        page.context.close()


def test_a_logout_in_another_tab_is_announced_once(browser, live_server: ServerProcess) -> None:
    ada = person(browser, live_server.url)
    page = ada.log_in("Ada")
    wait_for_socket(page, "connected")
    mark = len(page.evaluate("window.__said"))
    other_tab = ada.open("/")
    other_tab.click("#logout-form button[type=submit]")
    sentence = "You logged out, here or in another tab, so this session has ended."
    expect(page.locator("#chat-ended")).to_contain_text(sentence)
    wait_for_socket(page, "disconnected")
    page.wait_for_timeout(300)  # anything else the page would say about it, said by now
    assert page.evaluate(REGIONS_SAYING, sentence) == ["chat-ended"]
    assert {entry["id"] for entry in said_since(page, mark)} == {"chat-ended"}, said_since(page, mark)
    ada.context.close()


def test_a_history_goes_in_unannounced_and_what_comes_after_it_is_announced(browser, live_server: ServerProcess) -> None:
    writer = logged_in(browser, live_server.url, "Writer")
    for number in range(3):
        send(writer, f"said before you came, {number}")
    reader = logged_in(browser, live_server.url, "Reader")
    reader.wait_for_selector("#chat-messages li:has-text('said before you came, 2')")
    expect(reader.locator("#chat-scroll")).to_have_attribute("aria-busy", "false")
    added = reader.evaluate("window.__added")
    assert len(added) >= 3 and all(entry["busy"] == "true" for entry in added), added
    send(writer, "news after you came")
    reader.wait_for_selector("#chat-messages li:has-text('news after you came')")
    assert reader.evaluate("window.__added")[-1]["busy"] == "false"
    # Read out: the news, not the history before it.
    said = [entry["text"] for entry in said_since(reader, 0) if entry["id"] == "chat-scroll"]
    assert any("news after you came" in text for text in said), said
    assert not any("said before you came" in text for text in said), said
    for page in (writer, reader):
        page.context.close()


def test_your_message_is_read_out_once_and_a_refused_one_once(browser, live_server: ServerProcess) -> None:
    """Your message is said once, as the conversation's (not also as "sending…" on its way);
    one the server refuses (too many in a row) once, by the notice that says why."""
    page = logged_in(browser, live_server.url, "Talker")
    mark = len(page.evaluate("window.__said"))
    send(page, "just one announcement")
    page.wait_for_timeout(300)
    said = [entry for entry in said_since(page, mark) if "just one announcement" in entry["text"]]
    assert [entry["id"] for entry in said] == ["chat-scroll"], said
    for number in range(30):  # past the chat rate (20 per 10 s): one is refused
        mark = len(page.evaluate("window.__said"))
        page.fill("#chat-input", f"in a row {number}")
        page.press("#chat-input", "Enter")
        page.wait_for_selector(f"#chat-messages li.is-me:has-text('in a row {number}'), #chat-notice:visible")
        if page.is_visible("#chat-notice"):
            break
    expect(page.locator("#chat-notice")).to_be_visible()
    refused = page.input_value("#chat-input")  # back in the field, with the reason above it
    assert refused.startswith("in a row")
    page.wait_for_timeout(300)
    said = [entry for entry in said_since(page, mark) if refused in entry["text"]]
    assert said == [], said  # the refused message itself: not read out on its way
    notices = [entry for entry in said_since(page, mark) if entry["id"] == "chat-notice"]
    assert len(notices) == 1, notices
    page.context.close()


def test_a_text_too_long_is_said_once_not_at_every_keystroke(browser, live_server: ServerProcess) -> None:
    """The alert that a text is too long is read out as it becomes too long; the keys typed
    after that change its numbers on screen without reading it out again."""
    page = logged_in(browser, live_server.url, "Typist")
    page.fill("#chat-input", "x" * 500)
    mark = len(page.evaluate("window.__said"))
    for _ in range(5):
        page.press("#chat-input", "y")  # too long, by one more each time
    expect(page.locator("#chat-notice")).to_contain_text("Shorten it by 5.")
    page.wait_for_timeout(300)
    notices = [entry for entry in said_since(page, mark) if entry["id"] == "chat-notice"]
    assert len(notices) == 1 and "at most 500" in notices[0]["text"], notices
    page.fill("#chat-input", "x" * 400)  # short enough: the alert goes
    expect(page.locator("#chat-notice")).to_be_hidden()
    page.context.close()


def test_a_message_the_server_never_answered_is_said_once(browser, live_server: ServerProcess) -> None:
    """No acknowledgement within 5 s (its packet dropped on the way): "not sent" is said once,
    and the message on its way was not read out before it."""
    someone = person(browser, live_server.url)

    def drop_chat_packets(socket: Any) -> None:
        server = socket.connect_to_server()
        # A Socket.IO event with an ack from the page: "42<id>[\"chat\",...]".
        socket.on_message(lambda message: None if re.match(r'^42\d+\["chat"', str(message)) else server.send(message))

    someone.context.route_web_socket(re.compile(r"/socket\.io/"), drop_chat_packets)
    page = someone.log_in("Unanswered")
    wait_for_socket(page, "connected")
    expect(page.locator("#chat-scroll")).to_have_attribute("aria-busy", "false")
    page.wait_for_selector("#handshake-log li:has-text('upgraded to websocket')")  # (no wait_for_function: the CSP forbids eval)
    mark = len(page.evaluate("window.__said"))
    page.fill("#chat-input", "into the void")
    page.press("#chat-input", "Enter")
    expect(page.locator("#chat-outbox li.message")).to_contain_text("not sent: the server did not answer in time", timeout=15_000)
    page.wait_for_timeout(300)
    said = [entry for entry in said_since(page, mark) if "into the void" in entry["text"]]
    assert said == [{"id": "chat-outbox-said", "busy": False,
                     "text": "Your message “into the void”: not sent: the server did not answer in time"}], said
    someone.context.close()


@pytest.fixture
def restartable_server() -> Iterator[Any]:
    """A server in memory on a fixed port that the test stops and starts again."""
    from deploy.services import free_port

    args = ["--port", str(free_port()), "--cookie-secret", "r" * 32]
    servers = [ServerProcess(*args)]

    def stop() -> None:
        servers[-1].stop()

    def start() -> None:
        servers.append(ServerProcess(*args))

    yield servers[0], stop, start
    for server in servers:
        server.close()


def test_a_drop_and_a_restart_are_each_announced_once(browser, restartable_server: Any) -> None:
    server, stop, start = restartable_server
    page = logged_in(browser, server.url, "Ada")
    mark = len(page.evaluate("window.__said"))
    stop()
    wait_for_socket(page, "connecting")
    expect(page.locator("#chat-status-text")).to_have_text("Reconnecting…")
    page.wait_for_timeout(300)
    assert {entry["id"] for entry in said_since(page, mark)} == {"chat-status"}, said_since(page, mark)
    mark = len(page.evaluate("window.__said"))
    start()
    # The page's next attempt may be up to 8.75 s away (5 s at most, +/- 75%: connection.js).
    page.wait_for_selector("#socket-state[data-state=refused]", timeout=RECONNECT_MS)
    expect(page.locator("#chat-ended")).to_be_visible()
    page.wait_for_timeout(300)
    assert {entry["id"] for entry in said_since(page, mark)} == {"chat-ended"}, said_since(page, mark)
    page.context.close()


def test_what_a_reconnect_caught_up_goes_in_unannounced_and_is_said_once(browser, redis_url: str) -> None:
    """Redis mode, two processes: the reader's process restarts while the writer, on the
    other, writes. Back, the reader's page inserts what it missed while its log is busy, and
    the status line says how many, once."""
    from deploy.services import free_port

    args = ["--cookie-secret", "r" * 32, "--redis-url", redis_url]
    port = str(free_port())
    servers = [ServerProcess("--port", port, *args), ServerProcess("--port", "0", *args)]
    try:
        reader = logged_in(browser, servers[0].url, "Reader")
        writer = logged_in(browser, servers[1].url, "Writer")
        servers[0].stop()
        wait_for_socket(reader, "connecting")
        for number in range(2):
            send(writer, f"missed {number}")
        mark = len(reader.evaluate("window.__said"))
        added = len(reader.evaluate("window.__added"))
        servers.append(ServerProcess("--port", port, *args))
        reader.wait_for_selector("#chat-messages li:has-text('missed 1')", timeout=RECONNECT_MS)
        expect(reader.locator("#chat-status-text")).to_have_text("Reconnected: 2 messages you missed are below")
        expect(reader.locator("#chat-scroll")).to_have_attribute("aria-busy", "false")
        caught_up = reader.evaluate("window.__added")[added:]
        assert len(caught_up) == 2 and all(entry["busy"] == "true" for entry in caught_up), caught_up
        said = said_since(reader, mark)
        assert not any("missed 0" in entry["text"] for entry in said), said
        assert [entry["text"] for entry in said if "you missed" in entry["text"]] == ["Reconnected: 2 messages you missed are below"]
        for page in (reader, writer):
            page.context.close()
    finally:
        for server in servers:
            server.close()


def test_a_store_away_at_a_reconnect_is_said_once_and_cleared_when_back(browser, own_redis: Any) -> None:
    """Redis hung, the page's link dropped: its reconnect is refused as "store
    unavailable" and retried. That is said once, by the status line (not also by the socket's
    help box), and once the store is back the page says it reconnected, not that it waits."""
    server = ServerProcess("--port", "0", "--cookie-secret", "r" * 32, "--redis-url", own_redis.url)
    links: list[Any] = []

    def keep(socket: Any) -> None:
        socket.connect_to_server()
        links.append(socket)

    try:
        someone = person(browser, server.url)
        someone.context.route_web_socket(re.compile(r"/socket\.io/"), keep)
        page = someone.log_in("Patient")
        wait_for_socket(page, "connected")
        page.wait_for_selector("#handshake-log li:has-text('upgraded to websocket')")  # (no wait_for_function: the CSP forbids eval)
        mark = len(page.evaluate("window.__said"))
        own_redis.process.send_signal(signal.SIGSTOP)  # hung: its data kept for when it goes on
        # A session read live this recently is trusted without Redis (redis/sessions.py), and a
        # reconnect within that window is rightly accepted: drop the link only once it is past.
        page.wait_for_timeout((TRUSTED_SECONDS + 1) * 1000)
        links[-1].close()  # the link drops; the page's reconnect meets a server without its store
        away = "The server cannot check your session right now; trying again every few seconds."
        expect(page.locator("#chat-status-text")).to_have_text(away, timeout=RECONNECT_MS)
        expect(page.locator("#socket-help")).to_be_visible()
        page.wait_for_timeout(300)
        assert page.evaluate(REGIONS_SAYING, "cannot check your session") == ["chat-status"]
        said = said_since(page, mark)
        assert [entry["text"] for entry in said if "cannot check" in entry["text"]] == [away], said
        own_redis.process.send_signal(signal.SIGCONT)
        # The page's next try (every 3 s).
        page.wait_for_selector("#socket-state[data-state=connected]", timeout=RECONNECT_MS)
        expect(page.locator("#chat-status-text")).to_have_text(re.compile(r"^Reconnected"))
        someone.context.close()
    finally:
        server.close()


def visible_text_box(page: Any) -> dict[str, float]:
    """Where the message field draws its text: its box less its padding and border."""
    return page.evaluate("""() => {
      const field = document.getElementById('chat-input');
      const style = getComputedStyle(field);
      const edge = (side) => parseFloat(style['padding' + side]) + parseFloat(style['border' + side + 'Width']);
      const r = field.getBoundingClientRect();
      return { x: r.x + edge('Left'), y: r.y + edge('Top'), width: r.width - edge('Left') - edge('Right'),
               height: r.height - edge('Top') - edge('Bottom') };
    }""")


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


# Whether the field's placeholder fits its text box: measured as a value in the same font.
PLACEHOLDER_FITS = """() => {
  const field = document.getElementById('chat-input');
  const value = field.value;
  field.value = field.placeholder;
  const fits = field.scrollWidth <= field.clientWidth;
  field.value = value;
  return fits;
}"""


@pytest.mark.parametrize("viewport", [SMALLEST, PHONE, VIEWPORT], ids=["320x640", "390x844", "1280x800"])
def test_the_message_field_fits_with_any_length_pasted(browser, live_server: ServerProcess, viewport: dict[str, int]) -> None:
    page = logged_in(browser, live_server.url, "Paster", viewport)
    assert page.get_attribute("#chat-input", "placeholder") == "Write a message…"
    assert page.evaluate(PLACEHOLDER_FITS), "the placeholder is cut short"
    for length in (0, 499, 1000, 2000, 5000):
        page.fill("#chat-input", "m" * length)
        expect(page.locator("#chat-count")).to_have_text(f"{length}/500")
        count, field, send_button = box(page, "#chat-count"), box(page, "#chat-input"), box(page, "#chat-send")
        assert not overlap(count, visible_text_box(page)), f"the count is drawn over the text at {length}"
        assert not overlap(count, send_button) and not overlap(field, send_button)
        assert send_button["x"] + send_button["width"] <= viewport["width"]
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        if length == 2000:
            page.screenshot(path=SHOTS / f"field-{viewport['width']}-2000.png")
    page.context.close()


# --- both colour schemes, every state, axe ------------------------------------------------

def axe_violations(axe: Any, page: Any) -> list[tuple[str, list[Any]]]:
    result = axe.run(page)
    return [(violation["id"], [node["target"] for node in violation["nodes"]]) for violation in result.response["violations"]]


def background_lightness(page: Any) -> float:
    """The page's background, 0 (black) to 1 (white): shows which scheme it is drawn in."""
    rgb = page.evaluate("getComputedStyle(document.body).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number)")
    return sum(rgb) / (3 * 255)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [VIEWPORT, PHONE, SMALLEST], ids=["1280x800", "390x844", "320x640"])
def test_every_state_passes_axe_in_both_colour_schemes(browser, restartable_server: Any, viewport: dict[str, int], scheme: str) -> None:
    """axe-core (WCAG 2.1 AA, contrast included) finds nothing in any state the page can be in,
    light or dark: logged out, the login, logout and error pages, logged in with a
    conversation and an answer, a refusal, a message on its way while reconnecting, and the
    session ended (a restart without it) with that message not sent."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        e2e_unavailable("axe-playwright-python is not installed (pip install -e '.[test]')")
    axe = Axe()
    server, stop, start = restartable_server
    size = f"{viewport['width']}-{scheme}"
    states: dict[str, Any] = {}
    ada = person(browser, server.url, viewport, scheme)
    page = ada.open("/")
    page.wait_for_selector("#socket-state[data-state=refused]")
    lightness = background_lightness(page)
    assert lightness < 0.2 if scheme == "dark" else lightness > 0.8, f"the page is not drawn {scheme}: {lightness}"
    states["logged out"] = axe_violations(axe, page)
    page.goto(server.url + "login")
    page.fill("#username", "x" * 40)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error")
    states["login refused"] = axe_violations(axe, page)
    page.goto(server.url + "no-such-page")
    states["error page"] = axe_violations(axe, page)

    grace = logged_in(browser, server.url, "Ada", VIEWPORT, scheme)
    send(grace, "Hello from the other Ada 👋")
    page = ada.log_in("Ada")
    wait_for_socket(page, "connected")
    send(page, "Hi! Two of us now, told apart by our tags ✨")
    page.wait_for_selector("#chat-messages li .message-tag")
    page.click("#whoami-button")
    page.wait_for_selector("#whoami-result .whoami-ok")
    states["logged in"] = axe_violations(axe, page)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SHOTS / f"logged-in-{size}.png")
    page.fill("#chat-input", "x" * 613)
    expect(page.locator("#chat-notice")).to_be_visible()
    states["too long"] = axe_violations(axe, page)
    page.screenshot(path=SHOTS / f"too-long-{size}.png")
    page.fill("#chat-input", "")
    page.goto(server.url + "logout")
    states["logout page"] = axe_violations(axe, page)
    page.goto(server.url)
    wait_for_socket(page, "connected")

    grace.context.close()
    stop()
    wait_for_socket(page, "connecting")
    page.fill("#chat-input", "written while the server was away")
    page.press("#chat-input", "Enter")
    expect(page.locator("#chat-outbox li.message")).to_contain_text("not sent yet")
    expect(page.locator("#chat-status-text")).to_have_text("Reconnecting…")
    assert page.evaluate(PLACEHOLDER_FITS), page.get_attribute("#chat-input", "placeholder")
    states["reconnecting"] = axe_violations(axe, page)
    page.screenshot(path=SHOTS / f"reconnecting-{size}.png")
    start()
    # The page's next attempt may be up to 8.75 s away (5 s at most, +/- 75%: connection.js).
    page.wait_for_selector("#socket-state[data-state=refused]", timeout=RECONNECT_MS)
    expect(page.locator("#chat-outbox li.message")).to_contain_text("this session has ended")
    expect(page.locator(".brand-name")).to_be_in_viewport()  # the header's name is back, in place of yours
    assert page.evaluate(PLACEHOLDER_FITS), page.get_attribute("#chat-input", "placeholder")
    states["ended, not sent"] = axe_violations(axe, page)
    page.screenshot(path=SHOTS / f"ended-{size}.png")
    page.goto(server.url)
    page.wait_for_selector("#session-ended")
    states["session ended notice"] = axe_violations(axe, page)
    ada.context.close()
    assert states == {state: [] for state in states}
