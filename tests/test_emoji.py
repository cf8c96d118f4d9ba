"""Emoji in the chat drawn as emoji, not as empty boxes: Debian's Chromium draws them only
with a colour emoji font installed (`make system-deps` installs fonts-noto-color-emoji; the
window's QtWebEngine finds its fonts through the same fontconfig).

The check draws the emoji of a sent message with that message's own font on a canvas: a
colour emoji font paints coloured pixels; the missing-glyph box is drawn in the text's one
colour, grey on grey."""

from __future__ import annotations

import shutil
import subprocess
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

pytestmark = pytest.mark.e2e

SHOTS = OUTPUT_DIR / "browser"
# A hand, a party popper and a grinning face: DejaVu Sans has none of the first two (boxes
# without a colour font) and the third as a black outline.
EMOJI = "👋🎉😀"
# A pixel counts as coloured when its channels differ by more than this (of 255): the
# anti-aliased grey edges of a box or of black text differ by a few at most.
COLOURED = 60
# How many coloured pixels make a colour emoji: one at 32 px paints hundreds; a box, or an
# emoji in a text font's black outline, none.
ENOUGH_COLOURED_PIXELS = 100

# The message's own font (its family list, size and weight), the emoji drawn in it on a
# canvas, and the coloured pixels counted.
COUNT_COLOURED = """([selector, text, coloured]) => {
  const style = getComputedStyle(document.querySelector(selector));
  const canvas = document.createElement("canvas");
  canvas.width = 240;
  canvas.height = 60;
  const context = canvas.getContext("2d");
  context.fillStyle = "#fff";
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.fillStyle = "#333";
  context.font = `${style.fontWeight} 32px ${style.fontFamily}`;
  context.textBaseline = "top";
  context.fillText(text, 4, 8);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
    if (Math.max(r, g, b) - Math.min(r, g, b) > coloured) {
      count += 1;
    }
  }
  return count;
}"""


def emoji_font_missing() -> str | None:
    """Why emoji cannot be drawn here (for a skip), or None: no colour font that fontconfig
    knows covers U+1F44B (👋). (DejaVu Sans has a few emoji, 😀 among them, in black outline,
    but not that one.)"""
    if shutil.which("fc-list") is None:
        return "fc-list is not installed (fontconfig: make system-deps)"
    fonts = subprocess.run(["fc-list", ":charset=1f44b:color=true", "family"], capture_output=True, text=True, timeout=30, check=True).stdout
    if not fonts.strip():
        return "no colour emoji font is installed (make system-deps installs fonts-noto-color-emoji)"
    return None


@pytest.fixture(scope="module")
def live_server() -> Iterator[ServerProcess]:
    yield from plain_server()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = emoji_font_missing()
    if missing:
        e2e_unavailable(missing)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield from launched_chromium(e2e_unavailable)


@pytest.mark.parametrize("viewport", [VIEWPORT, PHONE], ids=["1280x800", "390x844"])
def test_emoji_in_a_message_are_drawn_in_colour_not_as_boxes(browser: Any, live_server: ServerProcess, viewport: dict[str, int]) -> None:
    person = Person(browser, live_server.url, viewport)
    try:
        page = person.log_in("Emoji")
        wait_for_socket(page, "connected")
        page.fill("#chat-input", f"Hello {EMOJI}")
        page.click("#chat-send")
        message = page.locator(f"#chat-messages .message-text:has-text('{EMOJI}')").last
        message.wait_for()
        message.screenshot(path=SHOTS / f"emoji-{viewport['width']}.png")
        coloured = {emoji: page.evaluate(COUNT_COLOURED, [".message-text", emoji, COLOURED]) for emoji in EMOJI}
        assert min(coloured.values()) > ENOUGH_COLOURED_PIXELS, f"emoji drawn without colour, as boxes or a text font's outlines: {coloured}"
        # The box has no colour whatever the font: the measure tells the two apart.
        box = page.evaluate(COUNT_COLOURED, [".message-text", "\U0010fffd", COLOURED])
        assert box < ENOUGH_COLOURED_PIXELS / 10, f"a missing glyph painted {box} coloured pixels: the measure cannot tell"
        assert person.console_errors == []
    finally:
        person.context.close()
