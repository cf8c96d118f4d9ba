"""Debian's Chromium, as the browser tests launch it through Playwright (which never
downloads a browser): test_browser.py and test_cluster.py's page through `make cluster`."""

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
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


def launched_chromium(unavailable: Callable[[str], None]) -> Iterator[Any]:
    """Chromium launched headless for a module's tests (a fixture's body: yields it, then
    closes it); where it cannot run, `unavailable(why)` (conftest's e2e_unavailable)."""
    missing = browser_missing()
    if missing:
        unavailable(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
