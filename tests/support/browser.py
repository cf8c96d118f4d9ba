"""Debian's Chromium, as the browser tests launch it through Playwright (which never
downloads a browser), and a person using the page in it: for test_browser.py and every other
test that drives a page (test_nothing_lost.py, test_liveness.py, test_drain.py, the
`make cluster` tests...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def browser_missing() -> str | None:
    """Why no browser test can run here (for a skip), or None."""
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (make system-deps)"
    try:
        import playwright  # noqa: F401 (only whether it imports)
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


def launched_chromium(unavailable: Callable[[str], None]) -> Iterator[Any]:
    """Chromium launched headless for a module's tests (a fixture's body: yields it, then
    closes it); where it cannot run, `unavailable(why)` (tests/support/e2e.py's e2e_unavailable)."""
    missing = browser_missing()
    if missing:
        unavailable(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def plain_server() -> Iterator[Any]:
    """The plain server as `make serve` runs it, on a free port (a fixture's body: yields its
    ServerProcess, then stops it)."""
    from tests.support.processes import ServerProcess

    server = ServerProcess("--port", "0")
    assert server.url, f"the server did not say where it serves: {server.first_line!r}"
    yield server
    server.close()


VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 5000
PHONE = {"width": 390, "height": 844}


class Person:
    """One browser profile (its own cookies) with a console watch."""

    def __init__(self, browser: Any, base_url: str, viewport: dict[str, int] = VIEWPORT) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.base_url = base_url
        self.console_errors: list[str] = []

    def _note_console_error(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def open(self, path: str = "") -> Any:
        page = self.context.new_page()
        page.on("console", self._note_console_error)
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))
        page.goto(self.base_url + path.lstrip("/"))
        return page

    def log_in(self, username: str) -> Any:
        page = self.open("/login")
        page.fill("#username", username)
        page.click("#login-form button[type=submit]")
        return page


def socket_state(page: Any) -> str:
    return page.get_attribute("#socket-state", "data-state")


def wait_for_socket(page: Any, state: str) -> None:
    page.wait_for_selector(f"#socket-state[data-state={state}]")


def box(page: Any, selector: str) -> dict[str, float]:
    return page.locator(selector).bounding_box()


def in_first_screen(page: Any, selector: str, viewport: dict[str, int]) -> bool:
    """Whether the element is visible without scrolling (the page scrolled to its top)."""
    page.evaluate("window.scrollTo(0, 0)")
    where = box(page, selector)
    return where is not None and where["y"] >= 0 and where["y"] + where["height"] <= viewport["height"]


async def log_in_page(browser: Any, url: str, name: str) -> Any:
    """A person of their own (a browser context: their own cookies) logged in, connected."""
    context = await browser.new_context()
    context.set_default_timeout(30_000)
    page = await context.new_page()
    await page.goto(url + "/login")
    await page.fill("#username", name)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#socket-state[data-state=connected]")
    return page
