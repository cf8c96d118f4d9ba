"""Private messages on the page, in Chromium at both sizes: Write in the Online list, the box
that says to whom (Escape and "Back to everyone"), the message on both sides in words ("privately
to bob #…", "from Ada, privately"), nobody else's page, Reply privately, a recipient who
leaves, never in a history; axe with the private mode on, in both colour schemes.

Screenshots under test-output/browser/private-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import (
    PHONE,
    VIEWPORT,
    Person,
    launched_chromium,
    plain_server,
    wait_for_socket,
)
from tests.support.constants import OUTPUT_DIR
from tests.support.e2e import e2e_unavailable
from tests.support.processes import ServerProcess

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture says so, with the reason
    expect = None  # type: ignore[assignment]  # not used then

pytestmark = pytest.mark.e2e

SHOTS = OUTPUT_DIR / "browser"


@pytest.fixture
def live_server() -> Iterator[ServerProcess]:
    """A server of the test's own: names shared with an earlier test's people would show tags."""
    yield from plain_server()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield from launched_chromium(e2e_unavailable)


def serious_violations(page: Any) -> list[Any]:
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        e2e_unavailable("axe-playwright-python is not installed (pip install -e '.[test]')")
    result = Axe().run(page)
    return [(violation["id"], [node["target"] for node in violation["nodes"]]) for violation in result.response["violations"]
            if violation["impact"] in ("serious", "critical")]


def tag_of(page: Any) -> str:
    return page.get_attribute("#live-view", "data-tag")


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["1280x800", "390x844"])
def test_a_private_message_between_two_people_reaches_them_alone_said_in_words(
    browser, live_server: ServerProcess, viewport: dict[str, int], scheme: str
) -> None:
    people = [Person(browser, live_server.url, viewport) for _ in range(3)]
    try:
        ada_person, bob_person, carol_person = people
        size = f"{viewport['width']}x{viewport['height']}-{scheme}"
        ada, bob, carol = ada_person.log_in("Ada"), bob_person.log_in("bob"), carol_person.log_in("carol")
        bob_tab = bob_person.open("/")  # bob's other tab
        for page in (ada, bob, carol, bob_tab):
            page.emulate_media(color_scheme=scheme)  # prefers-color-scheme, as the system would set it
            wait_for_socket(page, "connected")
        bob_short, carol_short = "#" + tag_of(bob)[:4], "#" + tag_of(carol)[:4]
        for page in (ada, bob, carol):
            expect(page.locator("#online-users .person")).to_have_count(3)
        # No Write on yourself; one on each other person, named for a screen reader.
        expect(ada.locator("#online-users .person.is-me .person-write")).to_have_count(0)
        ada.get_by_role("button", name="Write privately to bob").click()
        box = ada.locator("#private-mode")
        expect(box).to_be_visible()
        expect(box).to_contain_text(f"Private message to bob {bob_short}")
        expect(box).to_contain_text("it is not kept")
        expect(ada.locator("#chat-input")).to_be_focused()
        assert "private-mode-to" in ada.get_attribute("#chat-input", "aria-describedby").split()
        expect(ada.locator("#chat-input")).to_have_accessible_description(f"Private message to bob {bob_short}")
        assert serious_violations(ada) == []
        ada.screenshot(path=SHOTS / f"private-1-mode-{size}.png")

        ada.keyboard.type("just between us, bob")
        ada.keyboard.press("Enter")
        sent = ada.locator("#chat-messages li.is-private", has_text="just between us, bob")
        expect(sent).to_contain_text(f"privately to bob {bob_short}")
        expect(box).to_be_visible()  # still writing to bob
        for page in (bob, bob_tab):
            received = page.locator("#chat-messages li.is-private", has_text="just between us, bob")
            expect(received).to_contain_text("from Ada, privately")
        expect(bob_tab.locator("#chat-messages li.is-private")).to_have_count(1)
        bob.screenshot(path=SHOTS / f"private-2-received-{size}.png")

        # Back to everyone with Escape: a public message reaches carol, the private one never did.
        ada.locator("#chat-input").press("Escape")
        expect(box).to_be_hidden()
        assert "private-mode-to" not in (ada.get_attribute("#chat-input", "aria-describedby") or "").split()
        ada.fill("#chat-input", "hello everyone")
        ada.press("#chat-input", "Enter")
        expect(carol.locator("#chat-messages li", has_text="hello everyone")).to_have_count(1)
        expect(carol.locator("#chat-messages li.is-private")).to_have_count(0)
        expect(ada.locator("#chat-messages li", has_text="hello everyone")).not_to_have_class("is-private")

        # bob replies from the message itself; the answer comes back to Ada alone.
        bob.get_by_role("button", name="Reply privately to Ada").click()
        expect(bob.locator("#private-mode")).to_contain_text("Private message to Ada #")
        bob.keyboard.type("got it")
        bob.keyboard.press("Enter")
        expect(ada.locator("#chat-messages li.is-private", has_text="got it")).to_contain_text("from bob, privately")
        expect(bob_tab.locator("#chat-messages li.is-private", has_text="got it")).to_contain_text("privately to Ada #")
        bob.click("#private-mode-leave")
        expect(bob.locator("#private-mode")).to_be_hidden()
        ada.screenshot(path=SHOTS / f"private-3-conversation-{size}.png")

        # carol leaves while Ada writes to her: the page says so, and a message is refused in words.
        ada.get_by_role("button", name="Write privately to carol").click()
        carol_person.context.close()
        expect(ada.locator("#private-mode-gone")).to_be_visible()
        expect(ada.locator("#chat-status")).to_contain_text(f"carol {carol_short} has left")
        ada.fill("#chat-input", "are you there?")
        ada.press("#chat-input", "Enter")
        expect(ada.locator("#chat-notice")).to_have_text(f"carol {carol_short} is no longer online: this message was not sent")
        expect(ada.locator("#chat-input")).to_have_value("are you there?")
        expect(box).to_contain_text("carol")  # the text stays addressed to her, never to everyone
        ada.screenshot(path=SHOTS / f"private-4-left-{size}.png")
        assert serious_violations(ada) == []

        # Never kept: a reload shows the public message only.
        bob_tab.reload()
        wait_for_socket(bob_tab, "connected")
        expect(bob_tab.locator("#chat-messages li", has_text="hello everyone")).to_have_count(1)
        expect(bob_tab.locator("#chat-messages li.is-private")).to_have_count(0)
        for person in people[:2]:
            assert [text for text in person.console_errors if "status of 4" not in text] == []
    finally:
        for person in people:
            person.context.close()
